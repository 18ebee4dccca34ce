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
      await page.screenshot({ path: `${outdir}/status-page-${name}.png`, fullPage: true });
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
    const history = await page.evaluate((name) => {
      const row = document.querySelector(`#rows tr[data-connection="${CSS.escape(name)}"]`);
      return row.querySelector('[data-field="transitions"]').textContent;
    }, name);
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

const [mode, ...args] = process.argv.slice(2);
const run = mode === "audit" ? audit : mode === "live" ? live : null;
if (!run) {
  console.error("usage: node page.mjs audit URL OUTDIR | live URL NAME STATE");
  process.exit(2);
}
run(...args).catch((error) => {
  console.error(String(error && error.stack || error));
  process.exit(1);
});
