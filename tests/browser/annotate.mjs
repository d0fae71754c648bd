// The annotator's day in a real browser: sign in, import a CSV through the HTML form and
// watch its progress, then annotate traces with the keyboard alone (p, f + typing +
// Ctrl+Enter, s, j/k, ?, Esc), with the back button, the address bar, the live region and
// axe-core checked along the way. Screenshots go to --shots when given.
//
//   node annotate.mjs --base http://127.0.0.1:PORT --csv FILE [--dataset NAME]
//                     [--annotate 30] [--shots DIR]

import { axe, main, options, screenshot, shownTrace, signIn, traceUrl, VIEWPORT, waitForTraceChange } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["csv", "IMPORT_CSV"],
  ["dataset", "DATASET", "Browser run"],
  ["annotate", "ANNOTATE_COUNT", "30"],
  ["shots", "SCREENSHOT_DIR", ""],
]);
const base = opt.base.replace(/\/$/, "");
const target = Number(opt.annotate);

await main("annotate", async (browser, report) => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() !== "error" || /favicon/.test(m.location().url || "")) return;
    // The refused save (no note) is a 422 on purpose; the browser and htmx both log it.
    if (/\b422\b/.test(m.text())) return;
    const last = report.checks[report.checks.length - 1];
    consoleErrors.push(`${m.text()} (at ${page.url()}, after "${last ? last.name : "start"}")`);
  });
  const statusPolls = [];
  const annotatePosts = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (/^\/admin\/imports\/\d+\/status$/.test(path)) statusPolls.push(path);
    if (r.method() === "POST" && path.endsWith("/annotate")) annotatePosts.push(path);
  });
  // Counts settled HTMX swaps in every document, so a step can wait for the swap to finish.
  await context.addInitScript(() => {
    window.__settled = 0;
    document.addEventListener("htmx:afterSettle", () => {
      window.__settled += 1;
    });
  });

  const axeResults = [];
  async function audit(label) {
    const r = await axe(page, label);
    axeResults.push(r);
    report.check(`axe: no serious or critical findings on ${label}`, r.serious.length === 0, r.serious);
  }

  // ---- Sign in and import through the form --------------------------------------------
  await page.goto(`${base}/login`);
  await audit("sign-in page");
  await signIn(page, base, "Annie Admin", true);
  report.check("signed in lands on the dashboard", page.url() === `${base}/`, page.url());

  await page.goto(`${base}/admin/import`);
  await audit("import form");
  await page.fill("#dataset", opt.dataset);
  await page.setInputFiles("#file", opt.csv);
  await page.click("#import-form button[type=submit]");
  await report.step("upload shows that it is under way", async () => {
    await page.waitForFunction(() => /Upload|Import/.test(document.getElementById("upload-status")?.textContent || ""), null, { timeout: 5000 });
    report.check("upload shows that it is under way", true);
  });
  await page.waitForURL(/\/admin\/imports\/\d+$/, { timeout: 120000 });
  const importUrl = page.url();
  report.check("the upload lands on the import's own page", /\/admin\/imports\/\d+$/.test(importUrl), importUrl);
  await page.evaluate(() => {
    window.__samePage = true;
  });

  const seen = [];
  let progressShot = false;
  const deadline = Date.now() + 300000;
  for (;;) {
    const s = await page.evaluate(() => {
      const el = document.getElementById("import-status");
      const bar = el && el.querySelector("progress");
      return el ? { state: el.getAttribute("data-state"), value: bar ? Number(bar.value) : null, text: el.textContent.replace(/\s+/g, " ").trim() } : null;
    });
    if (s && (seen.length === 0 || seen[seen.length - 1].state !== s.state || seen[seen.length - 1].value !== s.value)) seen.push(s);
    if (s && s.state === "running" && !progressShot && (s.value > 0 || seen.length > 2)) {
      progressShot = true;
      await screenshot(page, opt.shots, "import-progress");
      await audit("import in progress");
    }
    if (!s || s.state !== "running" || Date.now() > deadline) break;
    await page.waitForTimeout(150);
  }
  report.extra.import = { url: importUrl, states: seen.map((s) => `${s.state}${s.value === null ? "" : ` ${s.value}%`}`), status_polls: statusPolls.length };
  const sawRunning = seen.some((s) => s.state === "running");
  report.check("the import page showed the import running", sawRunning, seen);
  report.check("the running page polled /admin/imports/{id}/status", statusPolls.length >= 1, statusPolls.length);
  report.check(
    "progress went up while polling",
    seen.filter((s) => s.state === "running").length >= 2 || !sawRunning,
    seen.map((s) => s.value),
  );
  report.check(
    "progress is told in rows, with the file's estimated total",
    seen.some((s) => s.state === "running" && /[\d,]+ of about [\d,]+ rows read/.test(s.text)) || !sawRunning,
    seen.map((s) => s.text),
  );
  report.check("the import finished as done", seen.length > 0 && seen[seen.length - 1].state === "done", seen[seen.length - 1]);
  report.check("polling updated the page in place (no reload)", await page.evaluate(() => window.__samePage === true));
  const resultText = (await page.textContent("#import-result").catch(() => "")) || "";
  report.check("the result says how many traces were imported", /Imported [\d,]+ traces/.test(resultText), resultText);
  report.extra.import.result = resultText.trim();
  await screenshot(page, opt.shots, "import-result");
  await audit("import result");

  // ---- Annotate with the keyboard alone -------------------------------------------------
  await page.click("text=Start annotating");
  await page.waitForURL(/\/d\/[^/]+\/t\//);
  const slug = new URL(page.url()).pathname.split("/")[2];
  report.extra.slug = slug;
  report.check("htmx is loaded (the JavaScript path is under test)", await page.evaluate(() => typeof window.htmx === "object"));
  await audit("trace view");
  await screenshot(page, opt.shots, "trace-view");

  const annotated = []; // {trace, verdict}
  const urlMismatches = [];
  const titleMismatches = [];
  const flashProblems = [];

  async function markFlash() {
    await page.evaluate(() => {
      const f = document.getElementById("flash");
      if (f) f.__original = true;
    });
  }
  await markFlash();

  async function settledCount() {
    return page.evaluate(() => window.__settled);
  }
  async function waitSettled(before) {
    await page.waitForFunction((n) => window.__settled > n, before, { timeout: 15000 });
  }
  async function checkUrl(step) {
    const id = await shownTrace(page);
    const expected = id === null ? null : traceUrl(base, slug, id);
    if (page.url() !== expected) urlMismatches.push({ step, url: page.url(), expected });
    const title = await page.title();
    if (id !== null && title !== `Trace ${id} · Tracecoder`) titleMismatches.push({ step, title, id });
    return id;
  }
  async function checkFlash(verdict, traceId) {
    const f = await page.evaluate(() => {
      const el = document.getElementById("flash");
      return el && { same: el.__original === true, role: el.getAttribute("role"), live: el.getAttribute("aria-live"), text: el.textContent.trim(), count: document.querySelectorAll("#flash").length };
    });
    const want = `saved ${verdict} for ${traceId}.`;
    if (!f || !f.same || f.role !== "status" || f.live !== "polite" || f.text.toLowerCase() !== want || f.count !== 1) flashProblems.push({ want, got: f });
  }
  /** Presses a key that should show another trace; returns [before, after]. */
  async function step(key, label) {
    const before = await shownTrace(page);
    const n = await settledCount();
    await page.keyboard.press(key);
    const after = await waitForTraceChange(page, before);
    await waitSettled(n);
    await checkUrl(label);
    return [before, after];
  }
  async function pass(label) {
    const [before, after] = await step("p", label);
    annotated.push({ trace: before, verdict: "pass" });
    await checkFlash("pass", before);
    return after;
  }
  async function active() {
    return page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
  }
  async function failOpen() {
    return page.evaluate(() => {
      const f = document.getElementById("fail-form");
      return !!f && !f.hidden && f.getBoundingClientRect().height > 0;
    });
  }

  await checkUrl("start");

  // ? opens the help, Esc closes it and gives focus back.
  await report.step("help dialog", async () => {
    await page.keyboard.press("?");
    const open = await page.evaluate(() => !document.getElementById("help").hidden);
    report.check("? shows the shortcut help", open);
    report.check("the help takes focus", (await active()) === "help-close", await active());
    report.check("the help button says it is expanded", (await page.getAttribute("#help-btn", "aria-expanded")) === "true");
    await audit("shortcut help");
    await page.keyboard.press("Escape");
    report.check("Esc closes the help", await page.evaluate(() => document.getElementById("help").hidden));
    report.check("focus returns to the help button", (await active()) === "help-btn", await active());
  });

  // Tab through the page: every focused control shows a visible focus ring.
  await report.step("visible focus", async () => {
    const rings = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press("Tab");
      rings.push(
        await page.evaluate(() => {
          const el = document.activeElement;
          const cs = getComputedStyle(el);
          return { el: el.id || `${el.tagName.toLowerCase()}${el.className ? "." + el.className : ""}`, style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
        }),
      );
    }
    const invisible = rings.filter((r) => r.style === "none" || r.width < 2);
    report.check("every control reached with Tab shows a focus outline of 2px or more", invisible.length === 0, invisible.length ? invisible : rings.map((r) => r.el));
    await page.keyboard.press("Escape");
  });

  let i = 0;
  let triedValidation = false;
  let triedEsc = false;
  let triedSkip = false;
  let triedJk = false;
  let triedBack = false;
  while (annotated.length < target) {
    i += 1;
    const here = await shownTrace(page);
    if (here === null) {
      report.check("enough unannotated traces to annotate", false, { annotated: annotated.length });
      break;
    }
    if (!triedValidation && annotated.length === 3) {
      triedValidation = true;
      await report.step("fail without a note is refused in place", async () => {
        await page.keyboard.press("f");
        report.check("f opens the fail form", await failOpen());
        report.check("f puts the cursor in the note", (await active()) === "note", await active());
        report.check("the Fail button says it is expanded", (await page.getAttribute("#fail-btn", "aria-expanded")) === "true");
        await audit("fail form");
        const n = await settledCount();
        await page.keyboard.press("Control+Enter");
        await waitSettled(n);
        const err = await page.evaluate(() => ({
          errors: document.getElementById("form-errors")?.textContent.trim() || null,
          fieldError: document.getElementById("note-error")?.textContent.trim() || null,
          invalid: document.getElementById("note")?.getAttribute("aria-invalid"),
          describedBy: document.getElementById("note")?.getAttribute("aria-describedby"),
        }));
        report.check("an empty note is refused with a message", !!err.errors && !!err.fieldError, err);
        report.check("the note is marked invalid and points at its message", err.invalid === "true" && err.describedBy === "note-error", err);
        report.check("a refused save stays on the same trace", (await shownTrace(page)) === here);
        report.check("a refused save keeps the trace's URL", page.url() === traceUrl(base, slug, here), page.url());
        report.check("after a refused save the cursor is back in the note", (await active()) === "note", await active());
        await screenshot(page, opt.shots, "fail-form");
        await audit("fail form with an error");
        await page.keyboard.type("Answered in the wrong language");
        const [before] = await step("Control+Enter", "fail after a refused save");
        annotated.push({ trace: before, verdict: "fail" });
        await checkFlash("fail", before);
      });
      continue;
    }
    if (!triedEsc && annotated.length === 6) {
      triedEsc = true;
      await report.step("Esc closes the fail form", async () => {
        await page.keyboard.press("f");
        report.check("f opens the fail form (again)", await failOpen());
        await page.keyboard.type("half a tho");
        await page.keyboard.press("Escape");
        report.check("Esc closes the fail form", !(await failOpen()));
        report.check("Esc gives focus back to the Fail button", (await active()) === "fail-btn", await active());
        report.check("closing the form saved nothing", (await shownTrace(page)) === here);
      });
      await pass(`pass after Esc (${i})`);
      continue;
    }
    if (annotated.length % 5 === 1) {
      // Fail with a note that contains the letter p: typing must not pass the trace.
      const postsBefore = annotatePosts.length;
      await page.keyboard.press("f");
      if (!(await failOpen()) || (await active()) !== "note") report.check(`f opens the form with the cursor in the note (${here})`, false, await active());
      const note = "Wrong policy quoted; p should not pass. Also j k s f ? typed here.";
      await page.keyboard.type(note);
      await page.keyboard.press("Tab");
      await page.keyboard.type("wrong-policy, tone, p");
      await page.keyboard.press("Tab");
      await page.keyboard.type("Maybe the prompt skips the refund page.");
      const still = (await shownTrace(page)) === here && annotatePosts.length === postsBefore && (await failOpen());
      const typed = await page.inputValue("#note");
      if (!still || typed !== note) report.check(`typing p (and j, k, s, f, ?) in the form does nothing but type (${here})`, false, { still, typed });
      const [before] = await step("Control+Enter", `fail ${i}`);
      annotated.push({ trace: before, verdict: "fail" });
      await checkFlash("fail", before);
      continue;
    }
    if (!triedSkip && annotated.length === 9) {
      triedSkip = true;
      await report.step("s skips", async () => {
        const posts = annotatePosts.length;
        const [before, after] = await step("s", "skip");
        report.check("s shows another trace without saving", after !== before && annotatePosts.length === posts, { before, after });
        report.extra.skipped = before;
      });
      continue;
    }
    if (!triedJk && annotated.length === 12) {
      triedJk = true;
      await report.step("j and k", async () => {
        const nextHref = await page.getAttribute("#next-link", "href");
        const [before, after] = await step("j", "j");
        report.check("j shows the next trace in order", traceUrl(base, slug, after) === `${base}${nextHref}`, { nextHref, after });
        const [, back] = await step("k", "k");
        report.check("k shows the previous trace again", back === before, { before, back });
      });
      continue;
    }
    if (!triedBack && annotated.length === 15) {
      triedBack = true;
      await report.step("the back button", async () => {
        const from = await shownTrace(page);
        const to = await pass("pass before back");
        await page.goBack();
        await page.waitForFunction((id) => document.getElementById("trace")?.getAttribute("data-trace-id") === id, from);
        report.check("Back shows the previous trace", (await shownTrace(page)) === from);
        report.check("Back restores the previous trace's URL", page.url() === traceUrl(base, slug, from), page.url());
        const saved = await page.textContent(".annotate .current");
        report.check("the restored trace shows the verdict just saved", /pass/.test(saved || ""), saved);
        await page.goForward();
        await page.waitForFunction((id) => document.getElementById("trace")?.getAttribute("data-trace-id") === id, to);
        report.check("Forward shows the next trace again", page.url() === traceUrl(base, slug, to), page.url());
        await markFlash();
        // Keys still work after a history restore.
        await pass("pass after back and forward");
      });
      continue;
    }
    await pass(`pass ${i}`);
  }

  report.check(`annotated ${target} traces with the keyboard`, annotated.length === target, annotated.length);
  report.check("each annotated trace is a different trace", new Set(annotated.map((a) => a.trace)).size === annotated.length);
  report.check("the URL was the shown trace's own URL after every step", urlMismatches.length === 0, urlMismatches.slice(0, 5));
  report.check("the window title named the shown trace after every step", titleMismatches.length === 0, titleMismatches.slice(0, 5));
  report.check("every save was announced in the one #flash live region", flashProblems.length === 0, flashProblems.slice(0, 5));
  report.check("all the special steps ran", triedValidation && triedEsc && triedSkip && triedJk && triedBack);
  report.extra.annotated = annotated;
  report.extra.passes = annotated.filter((a) => a.verdict === "pass").length;
  report.extra.fails = annotated.filter((a) => a.verdict === "fail").length;

  // ---- The list and the dashboard ------------------------------------------------------
  await page.goto(`${base}/d/${slug}/traces`);
  const counts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll(".filters a")].map((a) => [new URL(a.href).searchParams.get("status"), Number(a.querySelector(".count").textContent.replace(/,/g, ""))])));
  report.check("the list counts the passes", counts.pass === report.extra.passes, counts);
  report.check("the list counts the fails", counts.fail === report.extra.fails, counts);
  const rows = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("tr[data-trace-id]")].map((r) => [r.getAttribute("data-trace-id"), r.querySelector(".status").textContent.trim()])));
  const wrong = annotated.filter((a) => a.trace in rows && rows[a.trace] !== a.verdict);
  report.check("the list shows each verdict on its row", wrong.length === 0, wrong);
  if (report.extra.skipped) report.check("the skipped trace is listed as skipped (its own status, not done)", rows[report.extra.skipped] === "skipped", rows[report.extra.skipped]);
  await screenshot(page, opt.shots, "trace-list");
  await audit("trace list");
  await page.goto(`${base}/`);
  await audit("dashboard");
  await screenshot(page, opt.shots, "dashboard");

  report.check("no dialog ever opened", dialogs.length === 0, dialogs);
  report.check("no console errors (CSP violations, script errors)", consoleErrors.length === 0, consoleErrors.slice(0, 5));
  report.extra.axe = axeResults.map((r) => ({ page: r.page, serious: r.serious.length, minor: r.minor }));
  await context.close();
});
