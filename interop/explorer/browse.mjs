// Drives the explorer in Debian's chromium (playwright-core, no downloaded browser) and prints
// one JSON object of what it saw, for crates/cli/tests/explorer.rs to check:
//   {firstRenderMs, pages: {NAME: {text, missing[], consoleErrors[]}}, live: {before, after, ms},
//    searches: {TERM: hash}, race: {title, receiptShown}, receipts: {NAME: verdict}, reruns: {NAME: verdict},
//    phone: {overflow}, consoleErrors: []}
//
//   node browse.mjs --url http://127.0.0.1:8545/explorer --shots DIR --plan '{"pages": [...], "searches": [...]}'
// A page is {"name", "hash", "expect": [text, ...]}: shown at URL#hash, it must show every text
// (30 s), then a screenshot DIR/NAME.png is written.
// A receipt is {"name", "json", "rerun"?: true}: pasted into the receipt page and checked; with
// "rerun", the re-run button is clicked and the validator's verdict read (2 min).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const url = arg("--url");
// How long a step may take before the run fails: generous, since CI runs this beside the other
// tests on two cores (the live view's own limit is checked by the test from the measured time).
const WAIT = 30000;
const shots = arg("--shots");
const plan = JSON.parse(arg("--plan") ?? "{}");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox"],
});
const out = { pages: {}, searches: {}, consoleErrors: [] };
let errors = out.consoleErrors; // where console errors go: the page being checked, else global
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  // Requests that leave the node: none are allowed.
  const origin = new URL(url).origin;
  page.on("request", (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) out.consoleErrors.push(`request left the node: ${r.url()}`);
  });

  // Home: first render, then the live view shows a new block.
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector("#height a", { timeout: WAIT });
  out.firstRenderMs = Date.now() - t0;
  const before = await page.textContent("#height");
  const t1 = Date.now();
  await page.waitForFunction((b) => document.querySelector("#height")?.textContent !== b, before, { timeout: WAIT });
  out.live = { before, after: await page.textContent("#height"), ms: Date.now() - t1 };
  await page.screenshot({ path: `${shots}/home.png`, fullPage: true });

  for (const p of plan.pages ?? []) {
    const pageErrors = [];
    errors = pageErrors;
    await page.goto(`${url}#${p.hash}`);
    // The page is drawn when the title names it (the router sets it after rendering).
    const title = `mycel explorer · ${p.hash.replace(/^\/?/, "")}`;
    await page.waitForFunction((t) => document.title === t || document.querySelector("#main .error"), title, { timeout: WAIT }).catch(() => {});
    const missing = [];
    for (const text of p.expect ?? []) {
      try {
        await page.waitForFunction((t) => document.getElementById("main")?.innerText.includes(t), text, { timeout: WAIT });
      } catch {
        missing.push(text);
      }
    }
    out.pages[p.name] = { missing, consoleErrors: pageErrors, text: (await page.innerText("#main")).slice(0, 2000) };
    await page.screenshot({ path: `${shots}/${p.name}.png`, fullPage: true });
    errors = out.consoleErrors;
  }

  for (const term of plan.searches ?? []) {
    await page.goto(url);
    await page.waitForSelector("#height a", { timeout: WAIT });
    await page.fill("#q", term);
    await page.click("#search button");
    await page.waitForFunction(() => location.hash.length > 2 || document.querySelector("#main .error"), null, { timeout: WAIT });
    out.searches[term] = await page.evaluate(() => location.hash || document.querySelector("#main .error")?.textContent);
  }

  // A reader who leaves a page before it is drawn: the page they left must not draw over the
  // one they went to (plan.race is a page that fetches, e.g. "/block/1").
  if (plan.race) {
    await page.goto(url);
    await page.waitForSelector("#height a", { timeout: WAIT });
    // Leave the page once its render has started (the app's own hashchange listener runs
    // first and is then waiting for its data).
    await page.evaluate(
      (hash) =>
        new Promise((done) => {
          window.addEventListener(
            "hashchange",
            () => {
              location.hash = "#/receipt";
              done();
            },
            { once: true },
          );
          location.hash = hash;
        }),
      plan.race,
    );
    // Long enough for the left page's requests to have come back on a loaded machine.
    await page.waitForTimeout(3000);
    out.race = { title: await page.title(), receiptShown: (await page.$("#receipt-input")) !== null };
  }

  // Receipts checked in the page: [{name, json}] → the verdict's text.
  out.receipts = {};
  out.reruns = {};
  for (const r of plan.receipts ?? []) {
    await page.goto(`${url}#/receipt`);
    await page.waitForSelector("#receipt-input", { timeout: WAIT });
    await page.fill("#receipt-input", r.json);
    await page.click("#receipt-check");
    await page.waitForSelector("#verdict p", { timeout: WAIT });
    out.receipts[r.name] = await page.textContent("#verdict p");
    if (r.rerun) {
      await page.click("#receipt-rerun", { timeout: WAIT });
      await page.waitForFunction(() => {
        const t = document.getElementById("rerun-verdict")?.textContent ?? "";
        return t && !t.startsWith("Re-running");
      }, null, { timeout: 120000 });
      out.reruns[r.name] = await page.textContent("#rerun-verdict");
    }
    await page.screenshot({ path: `${shots}/receipt-${r.name}.png`, fullPage: true });
  }

  // At phone width the page fits (wide tables scroll inside their own box).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(url);
  await page.waitForSelector("#height a", { timeout: WAIT });
  out.phone = { overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth) };
  await page.screenshot({ path: `${shots}/home-phone.png`, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
