// The basic flow with JavaScript switched off: sign in, import (the progress page refreshes
// itself), pass, fail (refused without a note, then saved), skip, next/previous — plain
// forms that post and redirect, plain links.
//
//   node nojs.mjs --base http://127.0.0.1:PORT --csv FILE

import { main, options, shownTrace, signIn, traceUrl, VIEWPORT } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["csv", "IMPORT_CSV"],
]);
const base = opt.base.replace(/\/$/, "");

await main("nojs", async (browser, report) => {
  const context = await browser.newContext({ viewport: VIEWPORT, javaScriptEnabled: false });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  const visible = (sel) => page.isVisible(sel);

  await signIn(page, base, "Nora No-Script", true);
  report.check("sign-in posts and redirects to the dashboard", page.url() === `${base}/`, page.url());

  // Import: the form posts the file; the import's page refreshes itself until it is done.
  await page.goto(`${base}/admin/import`);
  await page.fill("#dataset", "No script");
  await page.setInputFiles("#file", opt.csv);
  await Promise.all([page.waitForURL(/\/admin\/imports\/\d+$/, { timeout: 120000 }), page.click("#import-form button[type=submit]")]);
  const states = [];
  const deadline = Date.now() + 300000;
  for (;;) {
    const state = await page.getAttribute("#import-status", "data-state").catch(() => null);
    if (state && states[states.length - 1] !== state) states.push(state);
    if (state === "done" || state === "failed" || Date.now() > deadline) break;
    await page.waitForTimeout(200);
  }
  report.extra.import_states = states;
  report.check("the import page reaches done on its own (refreshing without JavaScript)", states[states.length - 1] === "done", states);

  await Promise.all([page.waitForURL(/\/d\/[^/]+\/t\//), page.click("text=Start annotating")]);
  const slug = new URL(page.url()).pathname.split("/")[2];
  const own = async () => {
    const id = await shownTrace(page);
    return { id, ok: page.url() === traceUrl(base, slug, id) };
  };
  let at = await own();
  report.check("next unannotated redirects to the trace's own URL", at.ok, page.url());

  report.check("without JavaScript the fail form is open", await visible("#note"));
  report.check("without JavaScript the JS-only buttons are hidden", !(await visible("#fail-btn")) && !(await visible("#help-btn")) && !(await visible("#fail-cancel")));

  // Pass: the form posts and redirects to the next trace.
  const first = at.id;
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith(`/${encodeURIComponent(first)}`)), page.click("#pass-btn")]);
  at = await own();
  report.check("Pass posts and redirects to the next trace's own URL", at.ok && at.id !== first, { url: page.url(), first });

  // Fail without a note: refused with the form open and the message shown.
  const second = at.id;
  await Promise.all([page.waitForLoadState("load"), page.waitForURL(/\/annotate$/), page.click("#fail-submit")]);
  report.check("a fail without a note is refused with a message", await visible("#form-errors"), page.url());
  report.check("the refused page shows the same trace", (await shownTrace(page)) === second);
  await page.fill("#note", "Promised a refund it cannot give");
  await page.fill("#codes", "overpromise");
  await Promise.all([page.waitForURL(/\/d\/[^/]+\/t\/[^/]+$/), page.click("#fail-submit")]);
  at = await own();
  report.check("Fail with a note posts and redirects to the next trace", at.ok && at.id !== second, page.url());

  // Skip is a plain form; next and previous are plain links.
  const third = at.id;
  await Promise.all([page.waitForURL((u) => u.pathname.includes("/t/") && !u.pathname.endsWith(`/${encodeURIComponent(third)}`)), page.click("#skip-btn")]);
  at = await own();
  report.check("Skip redirects to the next unannotated trace's own URL", at.ok && at.id !== third, page.url());
  const skippedTo = at.id;
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith(`/${encodeURIComponent(skippedTo)}`)), page.click("#next-link")]);
  at = await own();
  report.check("Next is a plain link to the next trace", at.ok && at.id !== skippedTo, page.url());
  await Promise.all([page.waitForURL((u) => u.pathname.endsWith(`/${encodeURIComponent(skippedTo)}`)), page.click("#prev-link")]);
  at = await own();
  report.check("Previous is a plain link back", at.ok && at.id === skippedTo, page.url());

  report.check("no dialog ever opened", dialogs.length === 0, dialogs);
  await context.close();
});
