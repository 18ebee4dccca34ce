// The status page in Debian's chromium, driven by playwright-core (no browser download):
//
//   node page.mjs audit URL OUTDIR   axe-core at desktop and phone widths; prints one JSON
//                                    line {"desktop": [...], "phone": [...]} of violations,
//                                    and saves a screenshot of each width in OUTDIR
//   node page.mjs live URL NAME STATE
//                                    prints {"rows": ..., "api": ...} as the page first
//                                    shows them, then "ready"; exits 0 once the row NAME
//                                    shows STATE without the page having reloaded (1 if it
//                                    does not within 30 s), checks the pause button, then
//                                    waits for the mark that the daemon stopped answering
//   node page.mjs scale URL NAME      a large fleet: prints {"first": ...} (the rows in the DOM
//                                    and in the first screen, the totals), {"refreshes": ...}
//                                    (every byte fetched by two refreshes), {"filtered": ...}
//                                    (the rows once NAME is typed in the search box), then
//                                    "moving"; the caller breaks credentials, and it prints
//                                    {"moved": ...} once the rows it names in stdin's line
//                                    show `invalid`, with the page's rows and the API's page
//
// tests/page.rs runs it; `.ci/run` installs the packages with `npm ci`.
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const WIDTHS = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

async function audit(url, outdir) {
  const browser = await launch();
  const found = {};
  try {
    for (const [name, viewport] of Object.entries(WIDTHS)) {
      const page = await browser.newPage({ viewport });
      await page.goto(url, { waitUntil: "load" });
      await page.addScriptTag({ path: AXE });
      const result = await page.evaluate(() =>
        window.axe.run(document, { resultTypes: ["violations"] }));
      found[name] = result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
      }));
      // The first screen, as a person sees it at this size (docs/ shows these).
      await page.screenshot({ path: `${outdir}/status-page-${name}.png` });
      await page.close();
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(found));
}

async function live(url, name, state) {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: WIDTHS.desktop });
    await page.goto(url, { waitUntil: "load" });
    // A mark that a reload would wipe.
    await page.evaluate(() => { window.credwatchTestMark = "loaded once"; });
    const first = await page.evaluate(async () => {
      const rows = {};
      document.querySelectorAll("#rows tr[data-connection]").forEach((row) => {
        rows[row.dataset.connection] = { state: row.dataset.state, reason: row.dataset.reason };
      });
      const api = {};
      const answer = await (await fetch("/api/v1/connections")).json();
      answer.forEach((c) => { api[c.name] = { state: c.state, reason: c.reason || "not probed yet" }; });
      return { rows, api };
    });
    console.log(JSON.stringify(first));
    console.log("ready");
    await page.waitForFunction(
      ([name, state]) => {
        const row = document.querySelector(`#rows tr[data-connection="${CSS.escape(name)}"]`);
        return row && row.dataset.state === state &&
          row.querySelector('[data-field="badge"]').textContent.endsWith(state);
      },
      [name, state],
      { timeout: 30000, polling: 100 },
    );
    const mark = await page.evaluate(() => window.credwatchTestMark);
    if (mark !== "loaded once") {
      console.log("the page reloaded");
      process.exitCode = 1;
      return;
    }
    // The row's details fetch its history when opened.
    const row = `#rows tr[data-connection="${name}"]`;
    await page.click(`${row} summary`);
    await page.waitForFunction(
      (row) => document.querySelector(`${row} [data-field="transitions"]`).textContent.includes("→"),
      row,
      { timeout: 10000, polling: 100 },
    );
    const history = await page.evaluate((row) =>
      document.querySelector(`${row} [data-field="transitions"]`).textContent, row);
    console.log(JSON.stringify({ changed: true, history }));
    // The pause button: pressed, it says so and stops the updates; pressed again, they resume.
    await page.click("#pause");
    const paused = await page.evaluate(() => ({
      pressed: document.getElementById("pause").getAttribute("aria-pressed"),
      note: document.getElementById("refresh-note").textContent,
    }));
    await page.click("#pause");
    console.log(JSON.stringify({ paused }));
    // The test stops the daemon now: the page must say that it stopped answering.
    await page.waitForSelector("#stale:not([hidden])", { timeout: 20000 });
    const stale = await page.evaluate(() => document.getElementById("stale").textContent);
    console.log(JSON.stringify({ stale }));
  } finally {
    await browser.close();
  }
}


function rowsOf() {
  const rows = [...document.querySelectorAll("#rows tr[data-connection]")];
  return rows.map((row) => {
    const box = row.getBoundingClientRect();
    return {
      name: row.dataset.connection,
      state: row.dataset.state,
      rank: Number(row.dataset.rank),
      visible: box.top >= 0 && box.bottom <= window.innerHeight && !row.hidden,
    };
  });
}

async function scale(url, name) {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: WIDTHS.desktop });
    // Every response's bytes as they came over the wire (compressed, headers included).
    const fetched = [];
    page.on("requestfinished", (request) => {
      fetched.push(request.sizes().then((sizes) => ({
        url: request.url(),
        bytes: sizes.responseBodySize + sizes.responseHeadersSize,
      })));
    });
    await page.addInitScript({ content: `window.rowsOf = ${rowsOf.toString()};` });
    await page.goto(url, { waitUntil: "load" });
    const first = await page.evaluate(() => {
      const totals = {};
      document.querySelectorAll("[data-summary-state]").forEach((tile) => {
        totals[tile.dataset.summaryState] = Number(tile.querySelector(".n").textContent);
      });
      return { rows: window.rowsOf(), totals };
    });
    const loaded = await Promise.all(fetched.splice(0));
    console.log(JSON.stringify({ first, loaded }));
    // Two refreshes: everything the page fetches until the second answer of changed_since.
    for (let i = 0; i < 2; i++) {
      await page.waitForEvent("requestfinished", {
        predicate: (request) => request.url().includes("changed_since="),
        timeout: 30000,
      });
    }
    const refreshes = await Promise.all(fetched.splice(0));
    console.log(JSON.stringify({ refreshes }));
    // The filter answers as you type.
    await page.fill("#filter-text", name);
    await page.waitForFunction((name) => {
      const rows = document.querySelectorAll("#rows tr[data-connection]");
      return rows.length === 1 && rows[0].dataset.connection === name;
    }, name, { timeout: 30000, polling: 50 });
    console.log(JSON.stringify({ filtered: await page.evaluate(rowsOf) }));
    await page.fill("#filter-text", "");
    await page.waitForFunction(() => document.querySelectorAll("#rows tr[data-connection]").length > 1,
      null, { timeout: 30000, polling: 50 });
    console.log("moving");
    const names = await new Promise((resolve) => {
      process.stdin.once("data", (data) => {
        process.stdin.pause();
        resolve(String(data).trim().split(" "));
      });
    });
    await page.waitForFunction((names) => names.every((name) =>
      [...document.querySelectorAll("#rows tr[data-connection]")]
        .some((row) => row.dataset.connection === name && row.dataset.state === "invalid")),
    names, { timeout: 60000, polling: 100 });
    const moved = await page.evaluate(async () => {
      const answer = await (await fetch("/api/v1/connections?limit=" +
        document.getElementById("pager").dataset.limit)).json();
      return { rows: window.rowsOf(), api: answer.connections.map((c) => c.name) };
    });
    console.log(JSON.stringify({ moved }));
  } finally {
    await browser.close();
  }
}

const [mode, ...args] = process.argv.slice(2);
const modes = { audit, live, scale };
const run = modes[mode];
if (!run) {
  console.error("usage: node page.mjs audit URL OUTDIR | live URL NAME STATE | scale URL NAME");
  process.exit(2);
}
run(...args).catch((error) => {
  console.error(String(error && error.stack || error));
  process.exit(1);
});
