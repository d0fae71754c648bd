// Hostile trace content never runs: a dataset whose messages, tool calls, metadata and ids
// are full of <script>, <img onerror>, javascript: links and the like is imported, annotated
// (with a hostile note) and read through every page. Any dialog fails the run.
//
// The admin pass runs with the browser told to ignore the CSP (`bypassCSP`): the CSP is the
// second wall, and this proves the first one (escaping) holds on its own.
//
//   node hostile.mjs --base http://127.0.0.1:PORT --csv FILE [--traces 4]

import { axe, main, options, shownTrace, signIn, traceUrl, VIEWPORT, waitForTraceChange } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["csv", "IMPORT_CSV"],
  ["traces", "TRACE_COUNT", "4"],
]);
const base = opt.base.replace(/\/$/, "");
const traces = Number(opt.traces);
const DATASET = "<svg onload=alert(20)> Hostile";
const NOTE = "Bad: <img src=x onerror=alert(21)></textarea><script>alert(22)</script>";

await main("hostile", async (browser, report) => {
  const dialogs = [];
  const consoleErrors = [];
  const injected = [];
  let visited = 0;

  async function newPage(contextOptions) {
    const context = await browser.newContext({ viewport: VIEWPORT, ...contextOptions });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on("dialog", (d) => {
      dialogs.push({ url: page.url(), message: d.message() });
      d.dismiss().catch(() => {});
    });
    page.on("console", (m) => {
      if (m.type() === "error" && !/favicon/.test(m.location().url || "")) consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    return page;
  }

  /** Opens every <details>, lets any handler fire, and looks for markup that became live. */
  async function inspect(page, label) {
    visited += 1;
    await page.evaluate(() => document.querySelectorAll("details").forEach((d) => (d.open = true)));
    await page.waitForTimeout(250);
    const found = await page.evaluate(() => {
      const bad = [
        ...document.querySelectorAll(
          "body script, body img, body iframe, body svg, body style, body b, body [onerror], body [onload], body [onmouseover], [href^='javascript:' i], [src^='javascript:' i]",
        ),
      ];
      return bad.map((el) => el.outerHTML.slice(0, 120));
    });
    if (found.length) injected.push({ label, url: page.url(), found });
    return found.length === 0;
  }

  // ---- The admin imports the file through the form ---------------------------------------
  const admin = await newPage({});
  await signIn(admin, base, "Hal Admin", true);
  await admin.goto(`${base}/admin/import`);
  await admin.fill("#dataset", DATASET);
  await admin.setInputFiles("#file", opt.csv);
  await admin.click("#import-form button[type=submit]");
  await admin.waitForURL(/\/admin\/imports\/\d+$/, { timeout: 60000 });
  await admin.waitForSelector("#import-status[data-state=done]", { timeout: 60000 });
  const result = (await admin.textContent("#import-result")) || "";
  report.check("the hostile file imports", result.includes(`Imported ${traces} traces`), result);
  await inspect(admin, "import result");
  await admin.click("text=Start annotating");
  await admin.waitForURL(/\/d\/[^/]+\/t\//);
  const slug = new URL(admin.url()).pathname.split("/")[2];
  report.extra.slug = slug;
  const first = await shownTrace(admin);

  // ---- An annotator writes a hostile note, then passes everything with the keyboard -------
  const ann = await newPage({});
  await signIn(ann, base, "Mallory", false);
  await inspect(ann, "dashboard (annotator)");
  await ann.goto(`${base}/d/${slug}/next`);
  report.check("the annotator starts at the first trace", (await shownTrace(ann)) === first, await shownTrace(ann));
  await inspect(ann, "first trace (annotator)");
  await ann.keyboard.press("f");
  await ann.keyboard.type(NOTE);
  await ann.keyboard.press("Tab");
  await ann.keyboard.type("<b>xss</b>, <img src=x onerror=alert(23)>");
  await ann.keyboard.press("Tab");
  await ann.keyboard.type("<script>alert(24)</script>");
  await ann.keyboard.press("Control+Enter");
  let here = await waitForTraceChange(ann, first);
  await inspect(ann, "after the hostile note");
  for (let n = 0; n < traces && here !== null; n++) {
    report.check(`the annotator's URL is the trace's own (${n})`, ann.url() === traceUrl(base, slug, here), { url: ann.url(), here });
    await ann.keyboard.press("p");
    here = await waitForTraceChange(ann, here);
    await inspect(ann, `annotator step ${n}`);
  }
  report.check("the annotator reaches the done page", (await ann.$("#all-done")) !== null);
  const done = await axe(ann, "done page");
  report.check("axe: no serious or critical findings on the done page", done.serious.length === 0, done.serious);

  // ---- The admin, with the CSP switched off, reads everything ------------------------------
  const open = await newPage({ bypassCSP: true });
  await signIn(open, base, "Hal Admin", true);
  await inspect(open, "dashboard (no CSP)");
  await open.goto(`${base}/d/${slug}/traces`);
  await inspect(open, "list (no CSP)");
  const links = await open.$$eval("tr[data-trace-id] a", (as) => as.map((a) => a.getAttribute("href")));
  report.check("the list links every trace", links.length === traces, links);
  for (const href of links) {
    await open.goto(`${base}${href}`);
    await inspect(open, `full page ${href}`);
    const id = await shownTrace(open);
    report.check(`the trace link is the trace's own URL (${id})`, open.url() === traceUrl(base, slug, id), { url: open.url(), id });
  }
  // Keyboard through the whole set with HTMX swaps: j forward, k back, p to save.
  await open.goto(`${base}${links[0]}`);
  const text = await open.textContent("#main");
  report.check("the first trace shows the script tag as text", text.includes("<script>alert(1)</script>"), text.slice(0, 200));
  // Blind coding: the annotator's note shows only after the admin's own save (below).
  report.check("the admin does not see the annotator's note before their own save", !text.includes(NOTE), "others panel");
  for (let n = 1; n < traces; n++) {
    const before = await shownTrace(open);
    await open.keyboard.press("j");
    await waitForTraceChange(open, before);
    await inspect(open, `j ${n} (no CSP)`);
  }
  for (let n = 1; n < traces; n++) {
    const before = await shownTrace(open);
    await open.keyboard.press("k");
    await waitForTraceChange(open, before);
    await inspect(open, `k ${n} (no CSP)`);
  }
  for (let n = 0; n < traces; n++) {
    const before = await shownTrace(open);
    await open.keyboard.press("p");
    await waitForTraceChange(open, before);
    await inspect(open, `p ${n} (no CSP)`);
  }
  report.check("the admin reaches the done page", (await open.$("#all-done")) !== null);
  await open.goto(`${base}${links[0]}`);
  const after = await open.textContent("#main");
  report.check("after their own save the admin sees the annotator's note as text", after.includes(NOTE), "others panel");
  await inspect(open, "trace with others' annotations (no CSP)");
  await open.goto(`${base}/admin/import`);
  await inspect(open, "import page (no CSP)");

  report.extra.visited = visited;
  report.check("no dialog ever opened", dialogs.length === 0, dialogs);
  report.check("no hostile markup became elements", injected.length === 0, injected.slice(0, 5));
  report.check("no console errors (no CSP violations: nothing even tried to run)", consoleErrors.length === 0, consoleErrors.slice(0, 5));
});
