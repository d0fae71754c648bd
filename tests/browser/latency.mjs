// Key → next trace painted: from the keydown of `p` to the next trace's content in the DOM
// (a MutationObserver sees #trace[data-trace-id] change) and to the first frame after it
// (requestAnimationFrame, then a task: the frame has been produced). All times are
// performance.now() in the page. Prints p50/p95 (nearest rank); asserts nothing on timing.
//
//   node latency.mjs --base http://127.0.0.1:PORT --slug DATASET_SLUG [--steps 60]

import { main, options, shownTrace, signIn, traceUrl, VIEWPORT } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["slug", "DATASET_SLUG"],
  ["steps", "STEPS", "60"],
  ["pause", "PAUSE_MS", "150"],
]);
const base = opt.base.replace(/\/$/, "");
const steps = Number(opt.steps);

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
const round = (v) => Math.round(v * 10) / 10;
function stats(values) {
  return { p50: round(percentile(values, 50)), p95: round(percentile(values, 95)), max: round(Math.max(...values)), min: round(Math.min(...values)) };
}

await main("latency", async (browser, report) => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await signIn(page, base, "Lena Latency", false);
  await page.goto(`${base}/d/${opt.slug}/next`);
  const start = await shownTrace(page);
  report.check("the dataset opens on a trace", start !== null, page.url());

  await page.evaluate(() => {
    const lat = { t0: null, last: null, samples: [] };
    window.__lat = lat;
    window.addEventListener("keydown", (e) => {
      if (e.key === "p") lat.t0 = performance.now();
    }, true);
    lat.last = document.getElementById("trace")?.getAttribute("data-trace-id") ?? null;
    new MutationObserver(() => {
      const id = document.getElementById("trace")?.getAttribute("data-trace-id") ?? null;
      if (lat.t0 !== null && id !== null && id !== lat.last) {
        const t0 = lat.t0;
        const dom = performance.now() - t0;
        lat.t0 = null;
        requestAnimationFrame(() => setTimeout(() => lat.samples.push({ id, dom, paint: performance.now() - t0 }), 0));
      }
      lat.last = id;
    }).observe(document.getElementById("main"), { childList: true, subtree: true });
  });

  const ids = [start];
  const urls = [];
  for (let i = 0; i < steps; i++) {
    await page.keyboard.press("p");
    await page.waitForFunction((n) => window.__lat.samples.length > n, i);
    // A short pause: an annotator reads before the next key, the browser finishes settling.
    await page.waitForTimeout(Number(opt.pause));
    const id = await shownTrace(page);
    ids.push(id);
    if (page.url() !== traceUrl(base, opt.slug, id)) urls.push({ step: i, url: page.url(), id });
  }
  const samples = await page.evaluate(() => window.__lat.samples);
  const server = await page.evaluate(() =>
    performance
      .getEntriesByType("resource")
      .filter((e) => e.name.endsWith("/annotate"))
      .map((e) => e.responseEnd - e.startTime),
  );
  report.check(`${steps} steps measured`, samples.length === steps, samples.length);
  report.check("every step showed a new trace", new Set(ids).size === ids.length, ids);
  report.check("the URL was the trace's own after every step", urls.length === 0, urls.slice(0, 3));
  report.extra.latency_ms = {
    samples: samples.length,
    key_to_dom: stats(samples.map((s) => s.dom)),
    key_to_painted: stats(samples.map((s) => s.paint)),
    request_round_trip: server.length ? stats(server) : null,
  };
  await context.close();
});
