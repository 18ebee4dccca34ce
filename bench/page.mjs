// The status page at scale, in Debian's chromium (playwright-core from tests/browser; run
// `npm ci` there first): for each fleet size, `credwatch simulate --scale N` and the daemon
// over it, then RUNS fresh page loads, each measuring the first contentful paint, the load
// event, the bytes the document took over the wire, and how long the search box takes to show
// one credential of the last page: after one input event holding the whole name, and with the
// name typed key by key. Prints one JSON line per run and the medians. See
// BENCHMARKS.md.
//
//   node bench/page.mjs --binary target/release/credwatch --sizes 1000,5000,20000 --runs 5
//
// Everything runs on 127.0.0.1.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(ROOT, "tests/browser/package.json"));
const { chromium } = require("playwright-core");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}
const BINARY = option("binary", join(ROOT, "target/release/credwatch"));
const SIZES = option("sizes", "1000,5000,20000").split(",").map(Number);
const RUNS = Number(option("runs", "5"));

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Starts `credwatch ARGS`; resolves once its output satisfies `until` (at once without one).
function start(args, until) {
  const child = spawn(BINARY, args, { stdio: ["ignore", "pipe", "ignore"] });
  if (!until) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stdout.on("data", (data) => {
      seen += String(data);
      if (until(seen)) resolve(child);
    });
    child.on("exit", (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

async function ready(base) {
  for (;;) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// One fresh load: paint, load, document bytes, and the search for `name`.
async function measure(browser, url, name) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  let documentBytes = 0;
  page.on("requestfinished", async (request) => {
    if (request.resourceType() === "document") {
      const sizes = await request.sizes();
      documentBytes = sizes.responseBodySize + sizes.responseHeadersSize;
    }
  });
  await page.goto(url, { waitUntil: "load", timeout: 180000 });
  const timing = await page.evaluate(async () => ({
    // The paint entry may come after the load event: wait for it.
    paint: await new Promise((resolve) => {
      new PerformanceObserver((list, observer) => {
        const entry = list.getEntriesByName("first-contentful-paint")[0];
        if (entry) {
          observer.disconnect();
          resolve(entry.startTime);
        }
      }).observe({ type: "paint", buffered: true });
    }),
    load: performance.getEntriesByType("navigation")[0].loadEventEnd,
    rows: document.querySelectorAll("#rows tr[data-connection]").length,
  }));
  // From the keystroke to the frame that shows the one matching row (the page of old hides
  // rows in the browser; the new one asks the server).
  const filter = await page.evaluate((name) => new Promise((resolve) => {
    const input = document.getElementById("filter-text");
    const started = performance.now();
    input.value = name;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    (function check() {
      const shown = [...document.querySelectorAll("#rows tr[data-connection]")].filter((r) => !r.hidden);
      if (shown.length === 1 && shown[0].dataset.connection === name) {
        requestAnimationFrame(() => resolve(performance.now() - started));
      } else {
        requestAnimationFrame(check);
      }
    })();
  }), name);
  // As a person types it, key by key, from the first key to the frame that shows the row.
  await page.evaluate(() => {
    const input = document.getElementById("filter-text");
    input.value = "";
    input.dispatchEvent(new Event("input", { bubbles: true }));
  });
  await page.waitForFunction(() => [...document.querySelectorAll("#rows tr[data-connection]")]
    .filter((r) => !r.hidden).length > 1, null, { timeout: 120000 });
  await page.focus("#filter-text");
  const started = Date.now();
  await page.keyboard.type(name);
  await page.waitForFunction((name) => {
    const shown = [...document.querySelectorAll("#rows tr[data-connection]")].filter((r) => !r.hidden);
    return shown.length === 1 && shown[0].dataset.connection === name;
  }, name, { timeout: 120000, polling: "raf" });
  const typed = Date.now() - started;
  await page.close();
  return { ...timing, filter, typed, documentBytes };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  for (const size of SIZES) {
    const dir = mkdtempSync(join(tmpdir(), "credwatch-page-bench-"));
    const simulator = await start(
      ["simulate", "--listen", "127.0.0.1:0", "--scale", String(size), "--no-rate-limit",
        "--interval", "60s", "--write-config", dir],
      (seen) => seen.includes("configuration written"));
    const port = await freePort();
    const daemon = await start(
      ["run", "--config", join(dir, "credwatch.toml"), "--listen", `127.0.0.1:${port}`, "--no-state"],
      null);
    const base = `http://127.0.0.1:${port}`;
    try {
      await ready(base);
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        const run = await measure(browser, `${base}/`, `scale-${size - 7}`);
        console.log(JSON.stringify({ size, run: i + 1, ...run }));
        runs.push(run);
      }
      const pick = (key) => Math.round(median(runs.map((r) => r[key])));
      console.log(JSON.stringify({
        size, median: { paint_ms: pick("paint"), load_ms: pick("load"), filter_ms: pick("filter"), typed_ms: pick("typed"),
          document_bytes: pick("documentBytes"), rows: pick("rows") },
      }));
    } finally {
      daemon.kill("SIGTERM");
      simulator.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  }
} finally {
  await browser.close();
}
