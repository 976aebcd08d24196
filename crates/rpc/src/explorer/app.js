// mycel explorer: a hash-routed page over this node's API (docs/node-api.md). Every figure shown
// is read from a /v1 route a script could call too; nothing is fetched from anywhere else.
"use strict";

const DECIMALS = { MYC: 9, mUSD: 6, alpha: 9 };
const main = () => document.getElementById("main");
let live = null; // the block stream of the page shown, closed on navigation
let ticker = null;

// ---------- helpers ----------
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The page being drawn owns `pageRequests`; leaving it aborts its requests, so a slow page
// never draws over the one the reader moved on to.
let pageRequests = new AbortController();

async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" }, signal: pageRequests.signal });
  let body = null;
  try {
    body = await res.json();
  } catch {
    throw new Error(`${path}: HTTP ${res.status}`);
  }
  if (!res.ok) {
    const e = new Error(body?.error?.message || `${path}: HTTP ${res.status}`);
    e.code = body?.error?.code;
    e.status = res.status;
    throw e;
  }
  return body;
}

// Base units (decimal string) as whole tokens, trailing zeros dropped.
function units(amount, token) {
  const d = DECIMALS[token] ?? 0;
  let s = String(amount ?? "0");
  const neg = s.startsWith("-");
  if (neg) s = s.slice(1);
  s = s.padStart(d + 1, "0");
  const whole = s.slice(0, s.length - d).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = d ? s.slice(s.length - d).replace(/0+$/, "") : "";
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
}

// Whole tokens without the fraction once there are thousands of them (a card's headline).
const whole = (amount, token) => {
  const u = units(amount, token);
  return u.replace(/,/g, "").split(".")[0].length >= 4 ? u.split(".")[0] : u;
};

const short = (h) => (h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-6)}` : h ?? "");
const blockLink = (h) => `<a href="#/block/${esc(h)}">${esc(h)}</a>`;
const txLink = (h) => `<a class="hash" href="#/tx/${esc(h)}" title="${esc(h)}">${esc(short(h))}</a>`;
const addrLink = (a) => (a ? `<a class="hash" href="#/account/${esc(a)}" title="${esc(a)}">${esc(short(a))}</a>` : "—");
const agentLink = (id) => `<a href="#/agent/${esc(id)}">#${esc(id)}</a>`;

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function card(label, value, unit, id) {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value"${id ? ` id="${id}"` : ""}>${value}</div>${unit ? `<div class="unit">${esc(unit)}</div>` : ""}</div>`;
}

function table(headers, rows, numeric = []) {
  const th = headers.map((h, i) => `<th${numeric.includes(i) ? ' class="num"' : ""}>${esc(h)}</th>`).join("");
  const tr = rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ' class="num"' : ""}>${c}</td>`).join("")}</tr>`)
    .join("");
  return `<div class="table-wrap"><table><thead><tr>${th}</tr></thead><tbody>${tr || `<tr><td colspan="${headers.length}" class="muted">none</td></tr>`}</tbody></table></div>`;
}

function fields(pairs) {
  return `<dl class="fields">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

// A fixed-point u16 score (0–65535) as a fraction with 4 decimals.
const score = (v) => (Number(v ?? 0) / 65535).toFixed(4);

function outcome(result) {
  if (!result) return '<span class="muted">pending</span>';
  if (result.ok) return '<span class="ok">ok</span>';
  return `<span class="bad" title="${esc(result.err?.message)}">${esc(result.err?.code || "failed")}</span>`;
}

// ---------- charts (SVG, drawn here: no library) ----------
const COLORS = ["#1f6f43", "#0b5394", "#b45f06", "#741b47", "#38761d", "#990000", "#134f5c", "#7f6000"];

// A line chart of `series` ([{name, points: [[x, y], ...]}]) with labelled axes: x is a block
// height, y a number in `unit`. Readable without hovering: axis ends and midpoints are written.
function lineChart(series, { xLabel = "block", yLabel = "", unit = "" } = {}) {
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) return `<p class="muted">Not enough history yet for a chart (${all.length} point${all.length === 1 ? "" : "s"}).</p>`;
  const W = 640, H = 220, L = 78, R = 12, T = 12, B = 42;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys) || 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0 || 1)) * (H - T - B);
  const fmt = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : Number(v.toPrecision(4)).toString());
  const yTicks = [y0, (y0 + y1) / 2, y1];
  const xTicks = [x0, Math.round((x0 + x1) / 2), x1];
  const lines = series
    .map((s, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")}"/>`)
    .join("");
  // Points as dots too while they are few, so a series of one point shows.
  const dots = series
    .filter((s) => s.points.length <= 60)
    .map((s) => s.points.map((p) => `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3" fill="${COLORS[series.indexOf(s) % COLORS.length]}"/>`).join(""))
    .join("");
  const legend = series
    .map((s, i) => `<span class="legend"><svg class="swatch" viewBox="0 0 10 10"><rect width="10" height="10" fill="${COLORS[i % COLORS.length]}"/></svg>${esc(s.name)}</span>`)
    .join(" ");
  return `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(yLabel)} by ${esc(xLabel)}">
    <line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>
    ${yTicks.map((v) => `<text x="${L - 6}" y="${sy(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text><line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`).join("")}
    ${xTicks.map((v) => `<text x="${sx(v)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${v}</text>`).join("")}
    <text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>
    ${lines}${dots}</svg><figcaption><span class="axis">↑ ${esc(yLabel)}${unit ? ` (${esc(unit)})` : ""} · → ${esc(xLabel)}</span> ${legend}</figcaption></figure>`;
}

// A flow EMA (MYC base units per block, a decimal string) in MYC per block, 4 significant digits.
const flow = (v) => Number((Number(v ?? 0) / 1e9).toPrecision(4)).toString();

// A base-unit amount as a float of whole tokens, for charts only.
const tokens = (amount, token) => Number(BigInt(amount ?? "0")) / 10 ** (DECIMALS[token] ?? 0);

// ---------- pages ----------
const SAMPLE = 20; // blocks the home page's rates are measured over

async function home() {
  const [status, emission, recent, subnets, pays, today, jobsToday] = await Promise.all([
    api("/v1/status"),
    api("/v1/emission"),
    api(`/v1/blocks?limit=${SAMPLE}`),
    api("/v1/subnets"),
    api("/v1/payments?limit=1"),
    api(`/v1/payments?limit=1&since_ms=${Date.now() - 86400000}`),
    api(`/v1/payments?limit=1&kind=job_paid&since_ms=${Date.now() - 86400000}`),
  ]);
  const blocks = recent.blocks;
  const span = blocks.length > 1 ? (blocks[0].timestamp_ms - blocks[blocks.length - 1].timestamp_ms) / 1000 : 0;
  const txs = blocks.slice(0, -1).reduce((n, b) => n + b.tx_count, 0);
  const tps = span > 0 ? (txs / span).toFixed(2) : "—";
  const blockTime = span > 0 ? (span / (blocks.length - 1)).toFixed(2) : "—";
  const toHalving = BigInt(emission.next_halving_at) - BigInt(emission.issuance);
  const perBlock = BigInt(emission.block_emission);
  const blocksToHalving = perBlock > 0n ? toHalving / perBlock : 0n;
  main().innerHTML = `
    <h1>Network</h1>
    <div class="cards">
      ${card("finalized height", `<a href="#/block/${status.height}">${status.height}</a>`, "", "height")}
      ${card("last block", ago(status.timestamp_ms), "", "last-block")}
      ${card("block time", blockTime, `seconds, last ${blocks.length} blocks`)}
      ${card("finality", "…", "seconds from a block's time to its finalized copy here (median of the blocks seen live)", "finality")}
      ${card("transactions / s", tps, `last ${blocks.length} blocks`)}
      ${card("MYC issued", whole(emission.issuance, "MYC"), `of ${whole(emission.total_supply, "MYC")} MYC`)}
      ${card("emission per block", units(emission.block_emission, "MYC"), "MYC")}
      ${card("next halving", blocksToHalving.toLocaleString("en-US"), `blocks (≈ ${(Number(blocksToHalving) * Number(blockTime === "—" ? 1 : blockTime) / 86400).toFixed(1)} days), halvings so far ${emission.halvings}`)}
      ${card("mUSD paid, last 24 h", `<a href="#/payments">${units(today.paid_total, "mUSD")}</a>`, `for inference (x402, sessions) and jobs; ${units(pays.paid_total, "mUSD")} in all`, "paid-today")}
      ${card("jobs paid, last 24 h", esc(jobsToday.total), `${units(jobsToday.paid_total, "mUSD")} mUSD to providers`)}
      ${card("subnets", subnets.subnets.length, "", "")}
      ${card("validators", status.validators.length, "", "")}
      ${card("mempool", status.mempool_size, "transactions waiting")}
    </div>
    <h2>Latest blocks <span class="muted" id="live-state">(live)</span></h2>
    <div id="blocks">${blockTable(blocks.slice(0, 10))}</div>
    <h2>Latest transactions</h2>
    <div id="txs">${await recentTxs(blocks)}</div>`;
  let shown = blocks.slice(0, 10);
  let lastMs = status.timestamp_ms;
  ticker = setInterval(() => {
    const el = document.getElementById("last-block");
    if (el) el.textContent = ago(lastMs);
  }, 1000);
  live = new EventSource("/v1/events/blocks");
  const lags = [];
  live.addEventListener("block", (ev) => {
    const b = JSON.parse(ev.data);
    lags.push(Math.max(0, Date.now() - b.timestamp_ms) / 1000);
    const sorted = [...lags.slice(-50)].sort((x, y) => x - y);
    const fin = document.getElementById("finality");
    if (fin) fin.textContent = sorted[Math.floor(sorted.length / 2)].toFixed(2);
    lastMs = b.timestamp_ms;
    const failed = b.txs.filter((t) => t.result && t.result.err).length;
    shown = [{ height: b.height, hash: b.hash, timestamp_ms: b.timestamp_ms, proposer: b.proposer, tx_count: b.tx_count, failed }, ...shown].slice(0, 10);
    const h = document.getElementById("height");
    if (h) h.innerHTML = `<a href="#/block/${b.height}">${b.height}</a>`;
    const el = document.getElementById("blocks");
    if (el) el.innerHTML = blockTable(shown);
    if (b.txs.length) {
      recentShown = b.txs.map((x) => ({ ...x, height: b.height })).concat(recentShown).slice(0, 10);
      const t = document.getElementById("txs");
      if (t) t.innerHTML = txTable(recentShown);
    }
    const el2 = document.getElementById("last-block");
    if (el2) el2.textContent = ago(lastMs);
  });
  live.onerror = () => {
    const s = document.getElementById("live-state");
    if (s) s.textContent = "(reconnecting…)";
  };
  live.onopen = () => {
    const s = document.getElementById("live-state");
    if (s) s.textContent = "(live)";
  };
}

let recentShown = [];

async function recentTxs(blocks) {
  const withTxs = blocks.filter((b) => b.tx_count > 0).slice(0, 5);
  const full = await Promise.all(withTxs.map((b) => api(`/v1/blocks/${b.height}`)));
  recentShown = full.flatMap((b) => b.txs.map((t) => ({ ...t, height: b.height }))).slice(0, 10);
  return txTable(recentShown);
}

function blockTable(blocks) {
  return table(
    ["height", "hash", "time", "transactions", "failed"],
    blocks.map((b) => [blockLink(b.height), `<span class="hash">${esc(short(b.hash))}</span>`, esc(ago(b.timestamp_ms)), esc(b.tx_count), b.failed ? `<span class="bad">${b.failed}</span>` : "0"]),
    [3, 4],
  );
}

function txTable(txs) {
  return table(
    ["hash", "block", "type", "from", "outcome"],
    txs.map((t) => [txLink(t.hash), blockLink(t.height), esc(t.tx.type), addrLink(t.tx.message?.from), outcome(t.result)]),
  );
}

async function blocksPage(before) {
  const q = before ? `?before=${encodeURIComponent(before)}&limit=50` : "?limit=50";
  const list = await api(`/v1/blocks${q}`);
  main().innerHTML = `<h1>Blocks</h1>${blockTable(list.blocks)}
    <div class="pager">${list.next_before ? `<a href="#/blocks/${list.next_before + 1}">older →</a>` : ""}</div>`;
}

async function block(height) {
  const b = await api(`/v1/blocks/${encodeURIComponent(height)}`);
  main().innerHTML = `<h1>Block ${esc(b.height)}</h1>
    ${fields([
      ["hash", `<span class="hash">${esc(b.hash)}</span>`],
      ["parent", b.height > 0 ? `<a class="hash" href="#/block/${b.height - 1}">${esc(b.parent)}</a>` : esc(b.parent)],
      ["time", `${esc(new Date(b.timestamp_ms).toISOString())} (${esc(ago(b.timestamp_ms))})`],
      ["state root", `<span class="hash">${esc(b.state_root)}</span>`],
      ["proposer", `<span class="hash">${esc(b.proposer ?? "genesis")}</span>`],
      ["view", esc(b.view)],
      ["transactions", esc(b.tx_count)],
    ])}
    <h2>Transactions</h2>
    ${txTable(b.txs.map((t) => ({ ...t, height: b.height })))}
    <div class="pager">${b.height > 0 ? `<a href="#/block/${b.height - 1}">← ${b.height - 1}</a>` : ""} <a href="#/block/${b.height + 1}">${b.height + 1} →</a></div>`;
}

async function tx(hash) {
  const t = await api(`/v1/txs/${encodeURIComponent(hash)}`);
  let body = "";
  if (t.status === "finalized") {
    const b = await api(`/v1/blocks/${t.height}`);
    const inBlock = b.txs.find((x) => x.hash.toLowerCase() === t.hash.toLowerCase());
    const msg = inBlock?.tx?.message ?? {};
    body = `${fields([
      ["status", '<span class="ok">finalized</span>'],
      ["block", blockLink(t.height)],
      ["index", esc(t.index)],
      ["type", esc(t.receipt.type)],
      ["signer", addrLink(t.receipt.from)],
      ["nonce", esc(t.receipt.nonce)],
    ])}
      <h2>Fields</h2>${fields(Object.entries(msg).map(([k, v]) => [k, /^0x[0-9a-fA-F]{40}$/.test(String(v)) ? addrLink(v) : `<span class="hash">${esc(typeof v === "object" ? JSON.stringify(v) : v)}</span>`]))}
      <h2>Events</h2>${table(["event", "details"], t.receipt.events.map((e) => [esc(e.event + (e.action ? ` · ${e.action}` : "")), `<span class="hash">${esc(JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => k !== "event" && k !== "action"))))}</span>`]))}`;
  } else if (t.status === "failed") {
    body = fields([["status", `<span class="bad">failed in block</span> ${blockLink(t.height)}`], ["code", `<span class="bad">${esc(t.error?.code)}</span>`], ["message", esc(t.error?.message)]]);
  } else {
    body = fields([["status", esc(t.status)], ["details", `<span class="hash">${esc(JSON.stringify(t))}</span>`]]);
  }
  main().innerHTML = `<h1>Transaction</h1><p class="hash">${esc(t.hash)}</p>${body}`;
}

async function account(address, before) {
  const [a, stakes, agents, txs, pays] = await Promise.all([
    api(`/v1/accounts/${encodeURIComponent(address)}`),
    api(`/v1/stakes/${encodeURIComponent(address)}`).catch(() => ({ stakes: [] })),
    api(`/v1/agents?owner=${encodeURIComponent(address)}`).catch(() => ({ agents: [] })),
    api(`/v1/accounts/${encodeURIComponent(address)}/txs?limit=25${before ? `&before=${encodeURIComponent(before)}` : ""}`),
    api(`/v1/payments?limit=10&address=${encodeURIComponent(address)}`),
  ]);
  main().innerHTML = `<h1>Account</h1><p class="hash">${esc(a.address)}</p>
    <div class="cards">
      ${card("MYC", units(a.myc, "MYC"), "", "balance-myc")}
      ${card("mUSD", units(a.musd, "mUSD"), "", "balance-musd")}
      ${card("next nonce", esc(a.next_nonce), "transactions sent")}
    </div>
    <h2>Stake</h2>
    ${table(["subnet", "hotkey", "alpha"], stakes.stakes.map((p) => [`<a href="#/subnet/${p.netuid}">${p.netuid}</a>`, addrLink(p.hotkey), esc(units(p.alpha, "alpha"))]), [2])}
    <h2>Agents owned</h2>
    ${table(["agent", "URI"], agents.agents.map((g) => [agentLink(g.agent_id), esc(g.uri)]))}
    <h2>Transactions <span class="muted">(${esc(txs.total)})</span></h2>
    ${table(["hash", "block", "type", "outcome"], txs.txs.map((t) => [txLink(t.hash), blockLink(t.height), esc(t.type ?? "—"), t.error ? `<span class="bad">${esc(t.error)}</span>` : '<span class="ok">ok</span>']))}
    <div class="pager">${txs.next_before ? `<a href="#/account/${esc(a.address)}/${txs.next_before}">older →</a>` : ""}</div>
    <h2>Payments <span class="muted">(${esc(pays.total)}; ${esc(units(pays.paid_total, "mUSD"))} mUSD paid)</span></h2>
    ${paymentTable(pays.payments)}`;
}

const KINDS = { x402: "x402", session_opened: "session opened", session_topped_up: "session topped up", session_claimed: "session claimed", session_refunded: "session refunded", job_paid: "job paid" };

function paymentTable(list) {
  return table(
    ["transaction", "block", "kind", "payer", "payee", "mUSD", "what"],
    list.map((p) => [txLink(p.hash), blockLink(p.height), esc(KINDS[p.kind] ?? p.kind), addrLink(p.payer), addrLink(p.payee), esc(units(p.amount, "mUSD")), p.channel ? `channel <span class="hash">${esc(short(p.channel))}</span>` : p.job_id != null ? `job ${esc(p.job_id)}` : ""]),
    [5],
  );
}

async function paymentsPage(before) {
  const list = await api(`/v1/payments?limit=50${before ? `&before=${encodeURIComponent(before)}` : ""}`);
  main().innerHTML = `<h1>Payments</h1>
    <div class="cards">
      ${card("mUSD paid", units(list.paid_total, "mUSD"), "x402 settlements, session claims and job payouts")}
      ${card("payments", esc(list.total), "including session deposits and refunds")}
    </div>
    ${paymentTable(list.payments)}
    <div class="pager">${list.next_before ? `<a href="#/payments/${list.next_before}">older →</a>` : ""}</div>`;
}

async function subnets() {
  const [list, pools] = await Promise.all([api("/v1/subnets"), api("/v1/pools")]);
  const pool = Object.fromEntries(pools.pools.map((p) => [p.netuid, p]));
  // Each subnet's share of the last block's emission (Taoflow: by flow).
  const latest = list.subnets.length ? await api("/v1/emission/receipts/latest") : { subnets: [], block_emission: "0" };
  const share = Object.fromEntries(latest.subnets.map((x) => [x.netuid, x.myc_share]));
  const pct = (part) => (BigInt(latest.block_emission) > 0n ? `${(Number((BigInt(part ?? "0") * 1000000n) / BigInt(latest.block_emission)) / 10000).toFixed(2)} %` : "—");
  main().innerHTML = `<h1>Subnets</h1>${table(
    ["netuid", "owner", "neurons", "tempo", "price (MYC/α)", "MYC reserve", "emission share", "registration burn (MYC)", "flow EMA (MYC/block)"],
    list.subnets.map((s) => [
      `<a href="#/subnet/${s.netuid}">${s.netuid}</a>`,
      addrLink(s.owner),
      esc(s.neurons),
      esc(s.tempo),
      esc(units(s.price, "MYC")),
      esc(units(pool[s.netuid]?.myc_reserve ?? "0", "MYC")),
      esc(pct(share[s.netuid])),
      esc(units(s.burn, "MYC")),
      esc(flow(s.flow_ema)),
    ]),
    [2, 3, 4, 5, 6, 7, 8],
  )}
  <p class="muted">Emission share: each subnet's part of block ${esc(latest.height ?? "—")}'s MYC emission, set by its net stake flow (flow EMA).</p>`;
}

async function subnet(netuid) {
  const [s, graph] = await Promise.all([api(`/v1/subnets/${encodeURIComponent(netuid)}`), api(`/v1/subnets/${encodeURIComponent(netuid)}/metagraph`)]);
  main().innerHTML = `<h1>Subnet ${esc(s.netuid)}</h1>
    <div class="cards">
      ${card("neurons", esc(s.neurons), `of ${s.params.max_uids}`)}
      ${card("price", units(s.pool.spot_price, "MYC"), "MYC per alpha")}
      ${card("tempo", esc(s.params.tempo), "blocks per epoch")}
      ${card("next epoch", esc(s.next_epoch_at), "block")}
      ${card("registration burn", units(s.burn, "MYC"), "MYC")}
      ${card("pending alpha", units(s.pending_alpha, "alpha"), "α until the epoch")}
    </div>
    ${fields([["owner", addrLink(s.owner)], ["owner hotkey", addrLink(s.owner_hotkey)], ["registered at", blockLink(s.registered_at)], ["lock", `${esc(units(s.lock, "MYC"))} MYC`]])}
    <h2>Over time</h2>
    <div id="charts"><p class="muted">Loading history…</p></div>
    <h2>What this node's validator found</h2>
    <div id="findings"><p class="muted">Loading…</p></div>
    <h2>Metagraph</h2>
    ${table(
      ["uid", "hotkey", "coldkey", "stake (α)", "permit", "trust", "consensus", "incentive", "dividends", "emission (α)", "endpoint", "last update"],
      graph.neurons.map((n) => [
        esc(n.uid),
        addrLink(n.hotkey),
        addrLink(n.coldkey),
        esc(units(n.stake, "alpha")),
        n.validator_permit ? "yes" : "no",
        esc(score(n.validator_trust)),
        esc(score(n.consensus)),
        esc(score(n.incentive)),
        esc(score(n.dividends)),
        esc(units(n.emission, "alpha")),
        n.endpoint ? esc(`${n.endpoint.host}:${n.endpoint.port}`) : "—",
        blockLink(n.last_update),
      ]).map((row, i) => {
        const uid = graph.neurons[i].uid;
        row[0] = `<a href="#/subnet/${esc(s.netuid)}/uid/${esc(uid)}">${esc(uid)}</a>`;
        return row;
      }),
      [0, 3, 5, 6, 7, 8, 9],
    )}`;
  const findings = document.getElementById("findings");
  const found = await validatorFindings(Number(netuid));
  if (findings) findings.innerHTML = found;
  const [receipts, epochs] = await Promise.all([api("/v1/emission/receipts?limit=100"), api(`/v1/subnets/${encodeURIComponent(netuid)}/epochs?limit=50`)]);
  const mine = receipts.receipts
    .map((r) => [r.height, r.subnets.find((x) => x.netuid === Number(netuid))])
    .filter(([, x]) => x)
    .reverse();
  const byUid = new Map();
  for (const e of [...epochs.epochs].reverse()) {
    for (const n of e.epoch.neurons) {
      if (!byUid.has(n.uid)) byUid.set(n.uid, []);
      byUid.get(n.uid).push([e.height, tokens(n.incentive, "alpha") + tokens(n.dividends, "alpha")]);
    }
  }
  const top = [...byUid.entries()].sort((a, b) => b[1].reduce((t, p) => t + p[1], 0) - a[1].reduce((t, p) => t + p[1], 0)).slice(0, 8);
  const charts = document.getElementById("charts");
  if (charts) {
    charts.innerHTML = `
      <h3>Emission per epoch, by UID</h3>
      ${lineChart(top.map(([uid, points]) => ({ name: `UID ${uid}`, points })), { xLabel: "epoch block", yLabel: "paid", unit: "α" })}
      <h3>Pool price, per block</h3>
      ${lineChart([{ name: "price", points: mine.filter(([, x]) => x.pool_alpha !== "0").map(([h, x]) => [h, tokens(x.pool_myc, "MYC") / tokens(x.pool_alpha, "alpha")]) }], { yLabel: "price", unit: "MYC per α" })}
      <h3>MYC injected into the pool, per block</h3>
      ${lineChart([{ name: "MYC injected", points: mine.map(([h, x]) => [h, tokens(x.myc_injected, "MYC")]) }], { yLabel: "injected", unit: "MYC" })}
      <h3>Flow EMA (Taoflow), per block</h3>
      ${lineChart([{ name: "flow EMA", points: mine.map(([h, x]) => [h, Number(x.flow_ema) / 1e9]) }], { yLabel: "flow", unit: "MYC / block" })}`;
  }
}

// The last round of the validator this node runs (GET /v1/validator/status), for `netuid`:
// each miner's score, weight, faults and speed.
async function validatorFindings(netuid) {
  if (!(await api("/v1/validator")).running) return '<p class="muted">This node runs no validator (<code>mycel up</code> runs one): scores, faults and latency are what a validator measures.</p>';
  const st = await api("/v1/validator/status");
  if (st.netuid !== netuid) return `<p class="muted">This node's validator works on subnet <a href="#/subnet/${esc(st.netuid)}">${esc(st.netuid)}</a>.</p>`;
  const round = st.last_round;
  if (!round) return `<p class="muted">Validator ${addrLink(st.hotkey)} has not finished a round yet.</p>`;
  const faults = (m) => (m.faults.length ? m.faults.map((f) => `<span class="bad" title="${esc(f.detail)}">${esc(f.kind)}</span>`).join(" ") : '<span class="ok">none</span>');
  return `<p>Validator ${addrLink(st.hotkey)} (UID ${esc(st.uid ?? "—")}), round ${esc(st.rounds)} at block ${blockLink(round.height)}: every miner challenged, a sample re-run bit for bit; ${esc(round.weights.kind)}${round.weights.tx ? ` in ${txLink(round.weights.tx)}` : ""}.</p>
    ${table(
      ["uid", "hotkey", "answered", "re-runs matched", "faults", "median tokens/s", "mean latency (ms)", "score", "weight (of 65535)", "verdict"],
      round.miners.map((m) => [`<a href="#/subnet/${esc(netuid)}/uid/${esc(m.uid)}">${esc(m.uid)}</a>`, addrLink(m.hotkey), `${esc(m.answered)} / ${esc(m.challenges)}`, `${esc(m.reruns_matched)} / ${esc(m.reruns)}`, faults(m), esc(m.median_tokens_per_second == null ? "—" : m.median_tokens_per_second.toFixed(1)), esc(m.mean_latency_ms ?? "—"), esc(m.score.toFixed(3)), esc(m.weight), `<span class="${m.verdict === "ok" ? "ok" : "bad"}">${esc(m.verdict)}</span>`]),
      [2, 3, 5, 6, 7, 8],
    )}`;
}

async function neuron(netuid, uid, before) {
  const history = await api(`/v1/subnets/${encodeURIComponent(netuid)}/neurons/${encodeURIComponent(uid)}/emissions?limit=100${before ? `&before=${encodeURIComponent(before)}` : ""}`);
  const rows = history.epochs;
  main().innerHTML = `<h1>Subnet ${esc(netuid)} · UID ${esc(uid)}</h1>
    <p class="muted">Payouts per epoch the node keeps (from block ${esc(history.oldest_height ?? "—")}).</p>
    ${lineChart([
      { name: "incentive", points: [...rows].reverse().map((e) => [e.height, tokens(e.incentive, "alpha")]) },
      { name: "dividends", points: [...rows].reverse().map((e) => [e.height, tokens(e.dividends, "alpha")]) },
    ], { xLabel: "epoch block", yLabel: "paid", unit: "α" })}
    ${table(["epoch block", "hotkey", "incentive (α)", "dividends (α)", "take (α)", "to stakers (α)"], rows.map((e) => [blockLink(e.height), addrLink(e.hotkey), esc(units(e.incentive, "alpha")), esc(units(e.dividends, "alpha")), esc(units(e.take, "alpha")), esc(units(e.to_stakers, "alpha"))]), [2, 3, 4, 5])}
    <div class="pager">${history.next_before ? `<a href="#/subnet/${esc(netuid)}/uid/${esc(uid)}/${history.next_before}">older →</a>` : ""}</div>`;
}

async function emissionPage(before) {
  const list = await api(`/v1/emission/receipts?limit=50${before ? `&before=${encodeURIComponent(before)}` : ""}`);
  main().innerHTML = `<h1>Emission</h1>
    <p class="muted">Where every block's MYC emission went, as the node keeps it (from block ${esc(list.oldest_height ?? "—")} on; <a href="#/emission/latest">the latest</a>).</p>
    ${table(
      ["block", "emission (MYC)", "injected (MYC)", "recycled (MYC)", "unassigned (MYC)", "subnets", "epochs", "swaps"],
      list.receipts.map((r) => [
        `<a href="#/emission/${r.height}">${r.height}</a>`,
        esc(units(r.block_emission, "MYC")),
        esc(units(r.subnets.reduce((t, s) => t + BigInt(s.myc_injected), 0n).toString(), "MYC")),
        esc(units(r.subnets.reduce((t, s) => t + BigInt(s.myc_recycled), 0n).toString(), "MYC")),
        esc(units(r.myc_unassigned, "MYC")),
        esc(r.subnets.length),
        esc(r.subnets.filter((s) => s.epoch).length),
        esc(r.swaps.length),
      ]),
      [1, 2, 3, 4, 5, 6, 7],
    )}
    <div class="pager">${list.next_before ? `<a href="#/emission/before/${list.next_before}">older →</a>` : ""}</div>`;
}

async function emissionReceipt(height) {
  const r = await api(`/v1/emission/receipts/${encodeURIComponent(height)}`);
  const epochs = r.subnets.filter((s) => s.epoch);
  main().innerHTML = `<h1>Emission of block ${esc(r.height)}</h1>
    <div class="cards">
      ${card("block emission", units(r.block_emission, "MYC"), "MYC")}
      ${card("unassigned", units(r.myc_unassigned, "MYC"), "MYC, never minted")}
      ${card("issuance before", whole(r.issuance, "MYC"), "MYC")}
    </div>
    <h2>Subnets</h2>
    ${table(
      ["subnet", "share (MYC)", "injected (MYC)", "recycled (MYC)", "alpha injected", "alpha emission", "owner cut (α)", "pending added (α)", "flow EMA (MYC/block)"],
      r.subnets.map((s) => [`<a href="#/subnet/${s.netuid}">${s.netuid}</a>`, esc(units(s.myc_share, "MYC")), esc(units(s.myc_injected, "MYC")), esc(units(s.myc_recycled, "MYC")), esc(units(s.alpha_injected, "alpha")), esc(units(s.alpha_emission, "alpha")), esc(units(s.owner_cut, "alpha")), esc(units(s.pending_added, "alpha")), esc(flow(s.flow_ema))]),
      [1, 2, 3, 4, 5, 6, 7],
    )}
    ${epochs
      .map((s) => `<h2>Epoch of subnet ${s.netuid}: ${esc(units(s.epoch.paid, "alpha"))} α paid</h2>
        ${fields([["owner cut", `${esc(units(s.epoch.owner_cut, "alpha"))} α`], ["recycled", `${esc(units(s.epoch.recycled, "alpha"))} α`]])}
        ${table(["uid", "hotkey", "incentive (α)", "dividends (α)", "take (α)", "to stakers (α)"], s.epoch.neurons.map((n) => [esc(n.uid), addrLink(n.hotkey), esc(units(n.incentive, "alpha")), esc(units(n.dividends, "alpha")), esc(units(n.take, "alpha")), esc(units(n.to_stakers, "alpha"))]), [0, 2, 3, 4, 5])}`)
      .join("")}
    <h2>Stake swaps</h2>
    ${table(["subnet", "coldkey", "hotkey", "side", "in", "out", "price (MYC/α)"], r.swaps.map((w) => [esc(w.netuid), addrLink(w.coldkey), addrLink(w.hotkey), esc(w.side), esc(units(w.amount_in, w.side === "stake" ? "MYC" : "alpha")), esc(units(w.amount_out, w.side === "stake" ? "alpha" : "MYC")), esc(units(w.price, "MYC"))]), [4, 5, 6])}`;
}

async function agents(cursor) {
  const list = await api(`/v1/agents?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  main().innerHTML = `<h1>Agents <span class="muted">(${esc(list.total)} registered)</span></h1>
    ${table(["agent", "owner", "wallet", "URI", "feedback"], list.agents.map((g) => [agentLink(g.agent_id), addrLink(g.owner), addrLink(g.wallet), esc(g.uri), esc(g.feedback_count ?? "")]), [4])}
    <div class="pager">${list.next_cursor ? `<a href="#/agents/${list.next_cursor}">next →</a>` : ""}</div>`;
}

async function agent(id) {
  const [g, all, verified, validations] = await Promise.all([
    api(`/v1/agents/${encodeURIComponent(id)}`),
    api(`/v1/agents/${encodeURIComponent(id)}/reputation`),
    api(`/v1/agents/${encodeURIComponent(id)}/reputation?verified=true`).catch(() => null),
    api(`/v1/agents/${encodeURIComponent(id)}/validations?limit=50`),
  ]);
  main().innerHTML = `<h1>Agent #${esc(g.agent_id)}</h1>
    ${fields([["owner", addrLink(g.owner)], ["wallet", addrLink(g.wallet)], ["registration file", registrationLink(g.uri)]])}

    <div class="cards">
      ${card("feedback", esc(all.count), `average ${esc(all.average ?? "—")}`)}
      ${card("verified (paid) feedback", esc(verified?.count ?? "—"), `average ${esc(verified?.average ?? "—")}`)}
    </div>
    <h2>Metadata</h2>${table(["key", "value"], Object.entries(g.metadata ?? {}).map(([k, v]) => [esc(k), `<span class="hash">${esc(v)}</span>`]))}
    <h2>Validations</h2>${table(
      ["request", "validator", "response (0–100)", "tag", "requested at", "answers"],
      validations.validations.map((v) => [`<span class="hash" title="${esc(v.request_hash)}">${esc(short(v.request_hash))}</span>`, addrLink(v.validator), v.response == null ? '<span class="muted">pending</span>' : `<span class="${v.response >= 50 ? "ok" : "bad"}">${esc(v.response)}</span>`, esc(v.tag), blockLink(v.requested_height), esc(v.responses)]),
      [2, 5],
    )}`;
}

// An agent's registration URI: a link that opens the file in a new tab when it is http(s) (this
// page itself fetches nothing from elsewhere: its Content-Security-Policy is 'self'), text
// otherwise (an ipfs: or data: URI, or anything else an owner wrote).
function registrationLink(uri) {
  if (!uri) return "—";
  if (!/^https?:\/\/[^\s"'<>]+$/i.test(uri)) return `<span class="hash">${esc(uri)}</span>`;
  return `<a class="hash" id="registration-link" href="${esc(uri)}" target="_blank" rel="noopener noreferrer nofollow">${esc(uri)} ↗</a>`;
}

const JOB_STATES = ["open", "funded", "submitted", "completed", "rejected", "expired"];

async function jobs(cursor, status) {
  const list = await api(`/v1/jobs?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}${status ? `&status=${encodeURIComponent(status)}` : ""}`);
  const tabs = [`<a href="#/jobs"${status ? "" : ' class="current"'}>all</a>`, ...JOB_STATES.map((st) => `<a href="#/jobs/state/${st}"${st === status ? ' class="current"' : ""}>${st}</a>`)].join(" · ");
  main().innerHTML = `<h1>Jobs${status ? ` <span class="muted">(${esc(status)})</span>` : ""}</h1>
    <p class="tabs">${tabs}</p>
    ${table(["job", "status", "client", "provider", "evaluator", "budget (mUSD)", "escrow (mUSD)"], list.jobs.map((j) => [esc(j.job_id), esc(j.status), addrLink(j.client), addrLink(j.provider), addrLink(j.evaluator), esc(units(j.budget, "mUSD")), esc(units(j.escrowed, "mUSD"))]), [5, 6])}
    <div class="pager">${list.next_cursor ? `<a href="#/jobs/${list.next_cursor}${status ? `/${esc(status)}` : ""}">next →</a>` : ""}</div>`;
}

// The receipt checker (viem's EIP-712, bundled: /explorer/receipt.js), loaded on first use.
let checker = null;
function loadChecker() {
  checker ??= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/explorer/receipt.js";
    s.onload = () => resolve(globalThis.mycelReceipt);
    s.onerror = () => reject(new Error("cannot load the receipt checker"));
    document.head.appendChild(s);
  });
  return checker;
}

async function receiptPage() {
  main().innerHTML = `<h1>Check an inference receipt</h1>
    <p>Paste a miner's answer (the completion JSON with its <code>receipt</code>) or a receipt's JSON, or drop a file on the box.
    It is checked here, in the browser: the EIP-712 signature must recover to the miner it names, and the request it carries must hash to its <code>requestHash</code> (docs/receipts.md).</p>
    <textarea id="receipt-input" rows="12" spellcheck="false" placeholder='{"chainId": 1337, "type": "InferenceReceipt", "message": {…}, "signature": "0x…", "request": {…}}'></textarea>
    <p><button id="receipt-check" type="button">Check</button></p>
    <div id="verdict" aria-live="polite"></div>
    <div id="rerun" aria-live="polite"></div>
    <p class="muted">A valid answer can be re-run bit for bit by the validator this node runs (<code>POST /v1/validator/rerun</code>), by you (<code>mycel receipt verify answer.json --rerun</code>), or by any subnet validator (an ERC-8004 validation request, docs/agents.md).</p>`;
  const input = document.getElementById("receipt-input");
  input.addEventListener("dragover", (ev) => ev.preventDefault());
  input.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer?.files?.[0];
    if (file) input.value = await file.text();
  });
  document.getElementById("receipt-check").addEventListener("click", async () => {
    const verdict = document.getElementById("verdict");
    let parsed;
    try {
      parsed = JSON.parse(input.value);
    } catch (e) {
      verdict.innerHTML = `<p class="error">Not JSON: ${esc(e.message)}</p>`;
      return;
    }
    const { checkReceipt } = await loadChecker();
    const v = await checkReceipt(parsed);
    const r = parsed.receipt ?? parsed;
    const rerun = document.getElementById("rerun");
    rerun.innerHTML = "";
    verdict.innerHTML = v.valid
      ? `<p class="ok verdict" id="verdict-text">✔ valid: ${esc(v.reason)}</p>${fields([["miner", addrLink(v.miner)], ["model", `<span class="hash">${esc(r.message.modelId)}</span>`], ["subnet", `<a href="#/subnet/${esc(r.message.netuid)}">${esc(r.message.netuid)}</a>`], ["tokens", `${esc(r.message.promptTokenCount)} in, ${esc(r.message.outputTokenCount)} out`], ["block seen", blockLink(r.message.blockHeight)]])}`
      : `<p class="bad verdict" id="verdict-text">✘ rejected: ${esc(v.reason)}</p>`;
    if (!v.valid) return;
    if (parsed.choices) verdict.insertAdjacentHTML("beforeend", '<p class="muted">The receipt signs the prompt and output tokens\' hashes; the answer\'s text is checked only by re-running it.</p>');
    if (!parsed.choices) {
      rerun.innerHTML = '<p class="muted">To re-run it, paste the whole answer (the completion with its text), not the receipt alone.</p>';
      return;
    }
    if (!(await api("/v1/validator")).running) {
      rerun.innerHTML = '<p class="muted" id="rerun-verdict">This node runs no validator to re-run it (<code>mycel up</code> runs one).</p>';
      return;
    }
    rerun.innerHTML = '<p><button id="receipt-rerun" type="button">Re-run it on this node\'s validator</button></p>';
    document.getElementById("receipt-rerun").addEventListener("click", () => rerunAnswer(input.value, rerun));
  });
}

// Asks the node's validator to re-run an answer; shows its verdict (or why it would not).
async function rerunAnswer(text, box) {
  box.innerHTML = '<p class="muted" id="rerun-verdict">Re-running on the validator… (a few seconds per hundred tokens)</p>';
  let body = null;
  let status = 0;
  try {
    const res = await fetch("/v1/validator/rerun", { method: "POST", headers: { "content-type": "application/json", accept: "application/json" }, body: text });
    status = res.status;
    body = await res.json();
  } catch (e) {
    box.innerHTML = `<p class="error" id="rerun-verdict">The re-run failed: ${esc(e.message)}</p>`;
    return;
  }
  if (body?.error) {
    box.innerHTML = `<p class="error" id="rerun-verdict">Not re-run (${esc(body.error.code)}, HTTP ${status}): ${esc(body.error.message)}</p>`;
    return;
  }
  box.innerHTML = `<p class="${body.response === 100 ? "ok" : "bad"} verdict" id="rerun-verdict">${body.response === 100 ? "✔" : "✘"} ${esc(body.verdict)}: ${esc(body.detail)}</p>
    ${fields([["request hash", `<span class="hash">${esc(body.hash)}</span>`], ["miner", addrLink(body.miner)], ["score", `${esc(body.response)} / 100`]])}`;
}

// What a search term names (the node answers: GET /v1/search): a block (height or hash), a
// transaction, an address or an agent; null for nothing.
async function searchTarget(raw) {
  const q = raw.trim();
  if (!q) return null;
  const found = await api(`/v1/search?q=${encodeURIComponent(q)}`);
  switch (found.kind) {
    case "block":
      return `#/block/${found.height}`;
    case "tx":
      return `#/tx/${found.hash}`;
    case "account":
      return `#/account/${found.address}`;
    case "agent":
      return `#/agent/${found.agent_id}`;
    default:
      return null;
  }
}

// ---------- router ----------
const routes = [
  [/^$/, home],
  [/^blocks(?:\/(\d+))?$/, blocksPage],
  [/^block\/(\d+)$/, block],
  [/^tx\/(0x[0-9a-fA-F]{64})$/, tx],
  [/^account\/(0x[0-9a-fA-F]{40})(?:\/(\d+))?$/, account],
  [/^payments(?:\/(\d+))?$/, paymentsPage],
  [/^subnets$/, subnets],
  [/^subnet\/(\d+)$/, subnet],
  [/^subnet\/(\d+)\/uid\/(\d+)(?:\/(\d+))?$/, neuron],
  [/^emission$/, emissionPage],
  [/^emission\/before\/(\d+)$/, emissionPage],
  [/^emission\/(\d+|latest)$/, emissionReceipt],
  [/^agents(?:\/(\d+))?$/, agents],
  [/^agent\/(\d+)$/, agent],
  [/^jobs(?:\/(\d+))?(?:\/(open|funded|submitted|completed|rejected|expired))?$/, jobs],
  [/^jobs\/state\/(open|funded|submitted|completed|rejected|expired)$/, (st) => jobs(undefined, st)],
  [/^receipt$/, receiptPage],
];

async function render() {
  pageRequests.abort();
  const mine = (pageRequests = new AbortController());
  if (live) {
    live.close();
    live = null;
  }
  if (ticker) {
    clearInterval(ticker);
    ticker = null;
  }
  const path = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  for (const [pattern, page] of routes) {
    const m = path.match(pattern);
    if (m) {
      try {
        await page(...m.slice(1));
        if (mine === pageRequests) document.title = `mycel explorer · ${path || "home"}`;
      } catch (e) {
        if (mine !== pageRequests) return; // left before it was drawn
        main().innerHTML = `<p class="error">${esc(e.message)}${e.code ? ` <span class="muted">(${esc(e.code)})</span>` : ""}</p>`;
      }
      return;
    }
  }
  main().innerHTML = `<p class="error">Nothing here: ${esc(path)}. Try the search box.</p>`;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = document.getElementById("q").value;
    let target = null;
    try {
      target = await searchTarget(q);
    } catch (e) {
      main().innerHTML = `<p class="error">${esc(e.message)}</p>`;
      return;
    }
    if (target) location.hash = target;
    else main().innerHTML = `<p class="error">"${esc(q)}" is not a block height or hash, transaction hash, address or agent (#id) this node knows.</p>`;
  });
  window.addEventListener("hashchange", render);
  render();
});
