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

async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
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

// ---------- pages ----------
const SAMPLE = 20; // blocks the home page's rates are measured over

async function home() {
  const [status, emission, recent, subnets] = await Promise.all([
    api("/v1/status"),
    api("/v1/emission"),
    api(`/v1/blocks?limit=${SAMPLE}`),
    api("/v1/subnets"),
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
      ${card("transactions / s", tps, `last ${blocks.length} blocks`)}
      ${card("MYC issued", whole(emission.issuance, "MYC"), `of ${whole(emission.total_supply, "MYC")} MYC`)}
      ${card("emission per block", units(emission.block_emission, "MYC"), "MYC")}
      ${card("next halving", blocksToHalving.toLocaleString("en-US"), `blocks (≈ ${(Number(blocksToHalving) * Number(blockTime === "—" ? 1 : blockTime) / 86400).toFixed(1)} days), halvings so far ${emission.halvings}`)}
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
  live.addEventListener("block", (ev) => {
    const b = JSON.parse(ev.data);
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

async function account(address) {
  const [a, stakes, agents] = await Promise.all([
    api(`/v1/accounts/${encodeURIComponent(address)}`),
    api(`/v1/stakes/${encodeURIComponent(address)}`).catch(() => ({ stakes: [] })),
    api(`/v1/agents?owner=${encodeURIComponent(address)}`).catch(() => ({ agents: [] })),
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
    ${table(["agent", "URI"], agents.agents.map((g) => [agentLink(g.agent_id), esc(g.uri)]))}`;
}

async function subnets() {
  const [list, pools] = await Promise.all([api("/v1/subnets"), api("/v1/pools")]);
  const pool = Object.fromEntries(pools.pools.map((p) => [p.netuid, p]));
  main().innerHTML = `<h1>Subnets</h1>${table(
    ["netuid", "owner", "neurons", "tempo", "price (MYC/α)", "MYC reserve", "registration burn (MYC)", "flow EMA"],
    list.subnets.map((s) => [
      `<a href="#/subnet/${s.netuid}">${s.netuid}</a>`,
      addrLink(s.owner),
      esc(s.neurons),
      esc(s.tempo),
      esc(units(s.price, "MYC")),
      esc(units(pool[s.netuid]?.myc_reserve ?? "0", "MYC")),
      esc(units(s.burn, "MYC")),
      esc(s.flow_ema),
    ]),
    [2, 3, 4, 5, 6],
  )}`;
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
      ]),
      [0, 3, 5, 6, 7, 8, 9],
    )}`;
}

async function agents(cursor) {
  const list = await api(`/v1/agents?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  main().innerHTML = `<h1>Agents <span class="muted">(${esc(list.total)} registered)</span></h1>
    ${table(["agent", "owner", "wallet", "URI", "feedback"], list.agents.map((g) => [agentLink(g.agent_id), addrLink(g.owner), addrLink(g.wallet), esc(g.uri), esc(g.feedback_count ?? "")]), [4])}
    <div class="pager">${list.next_cursor ? `<a href="#/agents/${list.next_cursor}">next →</a>` : ""}</div>`;
}

async function agent(id) {
  const [g, all, verified] = await Promise.all([
    api(`/v1/agents/${encodeURIComponent(id)}`),
    api(`/v1/agents/${encodeURIComponent(id)}/reputation`),
    api(`/v1/agents/${encodeURIComponent(id)}/reputation?verified=true`).catch(() => null),
  ]);
  main().innerHTML = `<h1>Agent #${esc(g.agent_id)}</h1>
    ${fields([["owner", addrLink(g.owner)], ["wallet", addrLink(g.wallet)], ["registration", g.uri ? `<span class="hash">${esc(g.uri)}</span>` : "—"]])}
    <div class="cards">
      ${card("feedback", esc(all.count), `average ${esc(all.average ?? "—")}`)}
      ${card("verified (paid) feedback", esc(verified?.count ?? "—"), `average ${esc(verified?.average ?? "—")}`)}
    </div>
    <h2>Metadata</h2>${table(["key", "value"], Object.entries(g.metadata ?? {}).map(([k, v]) => [esc(k), `<span class="hash">${esc(v)}</span>`]))}`;
}

async function jobs(cursor) {
  const list = await api(`/v1/jobs?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  main().innerHTML = `<h1>Jobs</h1>
    ${table(["job", "status", "client", "provider", "evaluator", "budget (mUSD)", "escrow (mUSD)"], list.jobs.map((j) => [esc(j.job_id), esc(j.status), addrLink(j.client), addrLink(j.provider), addrLink(j.evaluator), esc(units(j.budget, "mUSD")), esc(units(j.escrowed, "mUSD"))]), [5, 6])}
    <div class="pager">${list.next_cursor ? `<a href="#/jobs/${list.next_cursor}">next →</a>` : ""}</div>`;
}

// What a search term names: a height, a transaction hash, an address or an agent.
function searchTarget(raw) {
  const q = raw.trim();
  if (/^\d+$/.test(q)) return `#/block/${q}`;
  if (/^#\d+$/.test(q) || /^agent\s+\d+$/i.test(q)) return `#/agent/${q.replace(/\D/g, "")}`;
  if (/^0x[0-9a-fA-F]{64}$/.test(q)) return `#/tx/${q}`;
  if (/^0x[0-9a-fA-F]{40}$/.test(q)) return `#/account/${q}`;
  return null;
}

// ---------- router ----------
const routes = [
  [/^$/, home],
  [/^blocks(?:\/(\d+))?$/, blocksPage],
  [/^block\/(\d+)$/, block],
  [/^tx\/(0x[0-9a-fA-F]{64})$/, tx],
  [/^account\/(0x[0-9a-fA-F]{40})$/, account],
  [/^subnets$/, subnets],
  [/^subnet\/(\d+)$/, subnet],
  [/^agents(?:\/(\d+))?$/, agents],
  [/^agent\/(\d+)$/, agent],
  [/^jobs(?:\/(\d+))?$/, jobs],
];

async function render() {
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
        document.title = `mycel explorer · ${path || "home"}`;
      } catch (e) {
        main().innerHTML = `<p class="error">${esc(e.message)}${e.code ? ` <span class="muted">(${esc(e.code)})</span>` : ""}</p>`;
      }
      return;
    }
  }
  main().innerHTML = `<p class="error">Nothing here: ${esc(path)}. Try the search box.</p>`;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = document.getElementById("q").value;
    const target = searchTarget(q);
    if (target) location.hash = target;
    else main().innerHTML = `<p class="error">"${esc(q)}" is not a block height, transaction hash, address or agent (#id).</p>`;
  });
  window.addEventListener("hashchange", render);
  render();
});
