// A save that fails on the way keeps what the annotator typed: the annotate POST is answered
// with a 500, a 503 (the server's own error fragments), a 413 and a 429 (plain text, no
// fragment of ours), a real 413 from the server's body limit, and a network failure. After
// each, the fail form still holds the note and codes typed, and an announced message says
// it was not saved. A failed Pass says so too. Then a real save goes through.
//
//   node save-errors.mjs --base http://127.0.0.1:PORT --slug SLUG
//        --fragment-500 FILE --message-500 TEXT --fragment-503 FILE --message-503 TEXT

import { readFileSync } from "node:fs";
import { axe, main, options, shownTrace, signIn, traceUrl, VIEWPORT, waitForTraceChange } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["slug", "DATASET_SLUG"],
  ["fragment-500", "FRAGMENT_500"],
  ["message-500", "MESSAGE_500"],
  ["fragment-503", "FRAGMENT_503"],
  ["message-503", "MESSAGE_503"],
]);
const base = opt.base.replace(/\/$/, "");
const NOTE = "Quoted the wrong refund policy; p and j typed here.";
const CODES = "wrong-policy, tone";
const KEEP = "What you typed is still here; try again.";

await main("save-errors", async (browser, report) => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const unexpected = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // The failures this script causes on purpose: the browser and htmx both log them.
    if (/status of (413|429|500|503)|Response Status Error|ERR_FAILED|htmx:sendError|htmx:afterRequest|favicon/.test(m.text() + (m.location().url || ""))) return;
    unexpected.push(m.text());
  });
  page.on("pageerror", (e) => unexpected.push(String(e)));
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });

  await signIn(page, base, "Sam Saver", false);
  await page.goto(`${base}/d/${opt.slug}/next`);
  await page.waitForSelector("#trace");
  const here = await shownTrace(page);
  const hereUrl = page.url();
  report.check("the trace page is shown", here !== null && hereUrl === traceUrl(base, opt.slug, here), hereUrl);
  report.check("htmx is loaded (the JavaScript path is under test)", await page.evaluate(() => typeof window.htmx === "object"));

  const isAnnotate = (url) => new URL(url).pathname.endsWith("/annotate");
  async function state() {
    return page.evaluate(() => {
      const box = document.getElementById("save-error");
      const form = document.getElementById("fail-form");
      return {
        trace: document.getElementById("trace")?.getAttribute("data-trace-id") ?? null,
        note: document.getElementById("note")?.value ?? null,
        codes: document.getElementById("codes")?.value ?? null,
        formOpen: !!form && !form.hidden && form.getBoundingClientRect().height > 0,
        message: box ? box.textContent.replace(/\s+/g, " ").trim() : null,
        role: box?.getAttribute("role") ?? null,
        visible: !!box && box.getBoundingClientRect().height > 0,
        errorPage: !!document.querySelector("#main .error-card"),
      };
    });
  }
  /** Sends the form with `key`, waits for the message, and checks that nothing was lost. */
  async function failedSave(label, key, expect, typed) {
    const posted = page.waitForRequest((r) => r.method() === "POST" && isAnnotate(r.url()));
    await page.keyboard.press(key);
    await posted;
    await page.waitForFunction(() => (document.getElementById("save-error")?.textContent || "").includes("Not saved"));
    const s = await state();
    report.check(`${label}: the message says it was not saved, and why`, s.message.startsWith("Not saved:") && s.message.includes(expect), s.message);
    report.check(`${label}: the message is shown in an alert (announced)`, s.visible && s.role === "alert", s);
    report.check(`${label}: the same trace stays on screen, no error page`, s.trace === here && !s.errorPage && page.url() === hereUrl, s);
    if (typed) {
      report.check(`${label}: the message says what was typed is still there`, s.message.endsWith(KEEP), s.message);
      report.check(`${label}: the fail form is still open`, s.formOpen, s);
      report.check(`${label}: the note typed is still in the form`, s.note === typed.note, s.note.length > 200 ? `${s.note.length} characters` : s.note);
      report.check(`${label}: the codes typed are still in the form`, s.codes === typed.codes, s.codes);
    }
    return s;
  }
  async function withAnswer(answer, fn) {
    const handler = (route) => (answer === "abort" ? route.abort("failed") : route.fulfill(answer));
    await page.route(isAnnotate, handler);
    try {
      return await fn();
    } finally {
      await page.unroute(isAnnotate, handler);
    }
  }

  // Type a fail: note and codes.
  await page.keyboard.press("f");
  await page.keyboard.type(NOTE);
  await page.fill("#codes", CODES);
  await page.focus("#note");
  const typed = { note: NOTE, codes: CODES };
  const html = (file) => ({ contentType: "text/html; charset=utf-8", body: readFileSync(file, "utf8") });

  await withAnswer({ status: 500, ...html(opt["fragment-500"]) }, () => failedSave("500", "Control+Enter", opt["message-500"], typed));
  await axe(page, "trace with a save error").then((r) => report.check("axe: no serious or critical findings with a save error shown", r.serious.length === 0, r.serious));
  const s503 = await withAnswer({ status: 503, headers: { "retry-after": "5" }, ...html(opt["fragment-503"]) }, () =>
    failedSave("503", "Control+Enter", opt["message-503"], typed),
  );
  report.check("503: the message never claims that nothing was lost", !/nothing was lost/i.test(s503.message), s503.message);
  await withAnswer({ status: 413, contentType: "text/plain; charset=utf-8", body: "Failed to buffer the request body: length limit exceeded" }, () =>
    failedSave("413 without a fragment", "Control+Enter", "too large to send", typed),
  );
  await withAnswer({ status: 429, contentType: "text/plain", body: "Too Many Requests! Wait for 1s" }, () => failedSave("429 without a fragment", "Control+Enter", "Too many requests", typed));
  await withAnswer("abort", () => failedSave("network failure", "Control+Enter", "could not be reached", typed));

  // A real 413: a note larger than the server accepts in one form post.
  const huge = "x".repeat(3 * 1024 * 1024);
  await page.fill("#note", huge);
  await page.focus("#note");
  await failedSave("a real 413 from the server", "Control+Enter", "", { note: huge, codes: CODES });
  await page.fill("#note", NOTE);

  // A failed Pass says so, on the same trace.
  await page.keyboard.press("Escape");
  await withAnswer({ status: 503, ...html(opt["fragment-503"]) }, async () => {
    const s = await failedSave("a failed Pass", "p", opt["message-503"], null);
    report.check("a failed Pass says the verdict was not recorded", s.message.includes("Your verdict was not recorded"), s.message);
  });

  // The next request clears the message; a real save goes through with what was typed.
  await page.keyboard.press("f");
  const s = await state();
  report.check("the note and codes are still there when the form is opened again", s.note === NOTE && s.codes === CODES, s);
  const after = await (async () => {
    await page.keyboard.press("Control+Enter");
    return waitForTraceChange(page, here);
  })();
  report.check("a later real save goes through and shows the next trace", after !== null && after !== here, { here, after });
  const flash = (await page.textContent("#flash"))?.trim() ?? "";
  report.check("the save is announced", flash.toLowerCase() === `saved fail for ${here}.`, flash);
  const cleared = await state();
  report.check("the next trace shows no save error", cleared.message === "" && !cleared.visible, cleared);
  report.extra.saved_trace = here;
  report.extra.note = NOTE;
  report.extra.codes = CODES;

  report.check("no dialog ever opened", dialogs.length === 0, dialogs);
  report.check("no unexpected console errors (CSP violations, script errors)", unexpected.length === 0, unexpected.slice(0, 5));
  await context.close();
});
