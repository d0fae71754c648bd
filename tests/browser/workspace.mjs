// The annotator's workspace in a real browser: what is on the first screen of a BotDojo
// turn with three tool calls, the sticky decision panel, Markdown rendered and hostile
// Markdown inert, the raw toggle, right-to-left text, a verdict change asked first, undo,
// a recorded skip, keys never downgraded to full-page posts, phone width, dark mode (a lead's
// pages too: import, codebook, agreement, review, judges) and the
// help at 200% zoom. Screenshots go to --shots when given.
//
//   node workspace.mjs --base http://127.0.0.1:PORT --slug SLUG [--shots DIR]
//
// The dataset (made by tests/api/browser.rs): conversation "order" (turns o-1, o-2 with
// three tool calls each; o-2 has a long Markdown answer with hostile parts), "arabic" (ar-1),
// "plain" (p-1 … p-4).

import { axe, main, options, screenshot, shownTrace, signIn, traceUrl, waitForTraceChange } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["slug", "DATASET_SLUG"],
  ["shots", "SCREENSHOT_DIR", ""],
]);
const base = opt.base.replace(/\/$/, "");
const slug = opt.slug;
const url = (id) => traceUrl(base, slug, id);

await main("workspace", async (browser, report) => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  // Every page load and form post the browser makes as a whole document: a key that falls
  // back to a full-page post shows up here.
  const documentPosts = [];
  page.on("request", (r) => {
    if (r.resourceType() === "document" && r.method() === "POST") documentPosts.push(new URL(r.url()).pathname);
  });
  await context.addInitScript(() => {
    window.__settled = 0;
    document.addEventListener("htmx:afterSettle", () => {
      window.__settled += 1;
    });
  });
  await signIn(page, base, "Wanda Workspace", false);

  // ---- 1. The first screen of a turn with three tool calls ---------------------------------
  await page.goto(url("o-2"));
  const first = await page.evaluate(() => {
    const r = (sel) => document.querySelector(sel).getBoundingClientRect();
    const cards = Array.from(document.querySelectorAll("#tool-calls details.tool-card"));
    return {
      user: r("#user-message").top,
      ai: r("#ai-response").top,
      height: innerHeight,
      cards: cards.length,
      open: cards.filter((d) => d.open).length,
      summaries: cards.map((d) => d.querySelector("summary").textContent.replace(/\s+/g, " ").trim()),
      earlierOpen: document.querySelector("details.earlier").open,
      thinking: document.getElementById("thinking") ? { open: document.getElementById("thinking").open, text: document.getElementById("thinking").textContent } : null,
    };
  });
  report.extra.first_screen = first;
  report.check("the user message starts on the first screen (1366×900)", first.user < first.height, first);
  report.check("the AI response starts on the first screen (1366×900)", first.ai < first.height - 40, first);
  report.check("three tool calls, each a closed one-line summary", first.cards === 3 && first.open === 0, first);
  report.check(
    "a summary names the tool, ok/failed and the duration",
    /lookup_order ok 120 ms/.test(first.summaries[0]) && /refund_policy failed/.test(first.summaries[1]),
    first.summaries,
  );
  report.check("earlier turns are collapsed above", first.earlierOpen === false);
  report.check("BotDojo thinking steps are shown collapsed", first.thinking && first.thinking.open === false && /look the order up/.test(first.thinking.text), first.thinking);
  await screenshot(page, opt.shots, "workspace-light");
  // Nothing decided yet in this session: u says so in the flash area, and the keys after it
  // still act at once (the answer swapped nothing into the page).
  await page.keyboard.press("u");
  await page.waitForSelector("#flash #nothing-to-undo");
  report.check("u with nothing to undo says so and stays", (await shownTrace(page)) === "o-2");
  await page.keyboard.press("t");
  const opened = await page.evaluate(() => ({
    open: document.querySelectorAll("#tool-calls details[open]").length,
    result: (document.querySelector("#tool-calls details pre:last-of-type") || {}).offsetHeight || 0,
  }));
  report.check("t opens every tool call, results included", opened.open === 3 && opened.result > 0, opened);
  await page.keyboard.press("t");
  report.check("t again closes them", (await page.locator("#tool-calls details[open]").count()) === 0);

  // ---- 2. Markdown rendered, hostile Markdown inert, the raw toggle -----------------------
  const md = await page.evaluate(() => {
    const ai = document.querySelector("#ai-response");
    const visible = (el) => !!el && el.offsetParent !== null;
    return {
      table: visible(ai.querySelector(".md table")),
      strong: (ai.querySelector(".md strong") || {}).textContent || null,
      heading: !!ai.querySelector(".md h2"),
      safeLink: (ai.querySelector(".md a[href]") || {}).href || null,
      hrefs: Array.from(ai.querySelectorAll(".md a[href]")).map((a) => a.getAttribute("href")),
      deadLinks: ai.querySelectorAll(".md a:not([href])").length,
      img: document.querySelectorAll("#main img").length,
      script: document.querySelectorAll("#main script").length,
      rawShown: visible(ai.querySelector(".raw")),
      owned: window.__owned === undefined,
    };
  });
  report.check("Markdown is rendered: heading, bold, table", md.heading && md.strong === "refund" && md.table, md);
  report.check(
    "only https links are live; the javascript: link and the image are not",
    md.safeLink === "https://shop.example/refunds" && md.hrefs.every((h) => h.startsWith("https://")) && md.deadLinks === 1,
    md,
  );
  report.check("hostile Markdown is inert: no img, no script, nothing ran", md.img === 0 && md.script === 0 && md.owned && dialogs.length === 0, { md, dialogs });
  report.check("the raw text is hidden until asked for", md.rawShown === false);
  await page.keyboard.press("r");
  const raw = await page.evaluate(() => ({
    raw: document.querySelector("#ai-response .raw").offsetParent !== null,
    md: document.querySelector("#ai-response .md").offsetParent !== null,
    text: document.querySelector("#ai-response .raw").textContent.includes("**refund**"),
    pressed: document.getElementById("raw-toggle").getAttribute("aria-pressed"),
  }));
  report.check("r shows the raw text instead", raw.raw && !raw.md && raw.text && raw.pressed === "true", raw);
  await page.keyboard.press("r");
  report.check("r again shows the formatted text", await page.evaluate(() => document.querySelector("#ai-response .md").offsetParent !== null));

  // ---- 1b. The decision panel stays in view ----------------------------------------------
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  const sticky = await page.evaluate(() => {
    const b = document.getElementById("pass-btn").getBoundingClientRect();
    return { scrolled: scrollY, top: b.top, bottom: b.bottom, height: innerHeight };
  });
  report.check("the page is long enough to scroll", sticky.scrolled > 400, sticky);
  report.check("scrolled down, Pass is still on screen (sticky panel)", sticky.top >= 0 && sticky.bottom <= sticky.height, sticky);

  // ---- 2b. Right to left ------------------------------------------------------------------
  await page.goto(url("ar-1"));
  const dir = await page.evaluate(() => ({
    user: getComputedStyle(document.querySelector("#user-message .text")).direction,
    ai: getComputedStyle(document.querySelector("#ai-response .text")).direction,
  }));
  report.check("an Arabic message reads right to left", dir.user === "rtl" && dir.ai === "rtl", dir);
  await page.goto(url("p-1"));
  const ltr = await page.evaluate(() => getComputedStyle(document.querySelector("#user-message .text")).direction);
  report.check("an English message reads left to right", ltr === "ltr", ltr);

  // ---- 3. A verdict change asks first; undo ------------------------------------------------
  async function settle(before) {
    await page.waitForFunction((n) => window.__settled > n, before, { timeout: 15000 });
  }
  const settled = () => page.evaluate(() => window.__settled);
  await page.goto(url("o-1"));
  await page.keyboard.press("f");
  await page.keyboard.type("Quoted the wrong refund window");
  await page.keyboard.press("Tab");
  await page.keyboard.type("policy");
  let n = await settled();
  await page.keyboard.press("Control+Enter");
  report.check("the fail is saved and the next trace shown", (await waitForTraceChange(page, "o-1")) === "o-2");
  await settle(n);
  n = await settled();
  await page.keyboard.press("k");
  await waitForTraceChange(page, "o-2");
  await settle(n);
  n = await settled();
  await page.keyboard.press("p");
  await settle(n);
  const asked = await page.evaluate(() => ({
    trace: document.getElementById("trace").getAttribute("data-trace-id"),
    notice: (document.getElementById("confirm-replace") || {}).textContent || "",
    focusOk: !document.activeElement || document.activeElement.tagName !== "TEXTAREA",
  }));
  report.check("p on a trace saved as Fail asks first and stays", asked.trace === "o-1" && /saved as Fail/.test(asked.notice) && /wrong refund window/.test(asked.notice), asked);
  report.check("the question leaves focus out of the text fields (p works again)", asked.focusOk, asked);
  await screenshot(page, opt.shots, "confirm-replace");
  n = await settled();
  await page.keyboard.press("p");
  report.check("p again replaces it and goes on", (await waitForTraceChange(page, "o-1")) === "o-2");
  await settle(n);
  n = await settled();
  await page.keyboard.press("u");
  const back = await waitForTraceChange(page, "o-2");
  await settle(n);
  const flash = await page.evaluate(() => document.getElementById("flash").textContent);
  report.check("u goes back to the trace just decided", back === "o-1", back);
  report.check("u says what came back", /earlier Fail is back/.test(flash), flash);
  report.extra.url_after_undo = page.url();
  report.check("the address bar follows the undo", page.url() === url("o-1"), page.url());

  // ---- 4. A skip is recorded ----------------------------------------------------------------
  await page.goto(url("o-2"));
  n = await settled();
  await page.keyboard.press("s");
  const afterSkip = await waitForTraceChange(page, "o-2");
  await settle(n);
  report.check("s moves on past the skipped trace", afterSkip === "ar-1", afterSkip);
  await page.goto(`${base}/d/${slug}/traces?status=skipped`);
  const skippedRows = await page.evaluate(() => Array.from(document.querySelectorAll(".trace-list tbody tr")).map((r) => r.getAttribute("data-trace-id")));
  report.check("the skip is listed under Skipped", skippedRows.length === 1 && skippedRows[0] === "o-2", skippedRows);

  // ---- 6. Keys never downgraded: quick keys, and a key before htmx has loaded -------------
  await page.goto(url("p-1"));
  const postsBefore = documentPosts.length;
  n = await settled();
  await page.keyboard.press("p");
  // As soon as the next trace is in the page (before HTMX has settled and wired it), p again.
  await page.waitForFunction(() => document.getElementById("trace").getAttribute("data-trace-id") !== "p-1");
  await page.keyboard.press("p");
  await page.waitForFunction(() => document.getElementById("trace") && document.getElementById("trace").getAttribute("data-trace-id") === "p-3" && !document.querySelector(".htmx-request"));
  await page.waitForFunction((m) => window.__settled >= m + 2, n);
  report.check("two quick p's pass two traces, one each", (await shownTrace(page)) === "p-3");
  report.check("quick keys went through HTMX (no full-page post)", documentPosts.length === postsBefore, documentPosts.slice(postsBefore));

  // htmx.js held back: the page is on screen and a key is pressed before htmx is there.
  let releaseHtmx;
  const held = new Promise((resolve) => {
    releaseHtmx = resolve;
  });
  await page.route(/htmx-2\.0\.11\.min\.js$/, async (route) => {
    await held;
    await route.continue();
  });
  const early = documentPosts.length;
  await page.goto(url("p-3"), { waitUntil: "commit" });
  await page.waitForSelector("#pass-form", { state: "attached" });
  const htmxThere = await page.evaluate(() => typeof window.htmx);
  await page.keyboard.press("p");
  releaseHtmx();
  await page.waitForFunction(() => document.getElementById("trace") && document.getElementById("trace").getAttribute("data-trace-id") === "p-4" && !document.querySelector(".htmx-request"));
  await page.unroute(/htmx-2\.0\.11\.min\.js$/);
  report.check("the key came before htmx had loaded", htmxThere === "undefined", htmxThere);
  report.check("a key before htmx loaded still went through HTMX", documentPosts.length === early, documentPosts.slice(early));
  report.check("no dialog ever opened", dialogs.length === 0, dialogs);

  // ---- 5. Dark mode, light mode: axe clean in both -----------------------------------------
  const axeResults = [];
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [label, path] of [
      ["trace", url("o-2")],
      ["list", `${base}/d/${slug}/traces`],
      ["dashboard", `${base}/`],
      ["dataset", `${base}/d/${slug}`],
    ]) {
      await page.goto(path);
      const r = await axe(page, `${label} (${scheme})`);
      axeResults.push(r);
      report.check(`axe: no serious findings on the ${label} page in ${scheme} mode`, r.serious.length === 0, r.serious);
    }
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const lum = bg.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0) / 3;
    report.check(`the ${scheme} scheme is ${scheme}`, scheme === "dark" ? lum < 60 : lum > 200, bg);
    if (scheme === "dark") {
      await page.goto(url("o-2"));
      await screenshot(page, opt.shots, "workspace-dark");
    }
  }
  // A lead's pages, in both schemes too: import, codebook, agreement, review, judges.
  const leadContext = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const lead = await leadContext.newPage();
  lead.setDefaultTimeout(15000);
  await signIn(lead, base, "Lena Lead", true);
  for (const scheme of ["light", "dark"]) {
    await lead.emulateMedia({ colorScheme: scheme });
    for (const [label, path] of [
      ["import", `${base}/admin/import`],
      ["codebook", `${base}/d/${slug}/codebook`],
      ["agreement", `${base}/d/${slug}/agreement`],
      ["review", `${base}/d/${slug}/review`],
      ["judges", `${base}/d/${slug}/judges`],
    ]) {
      const res = await lead.goto(path);
      report.check(`the ${label} page opens for a lead (${scheme})`, res.status() === 200, res.status());
      const r = await axe(lead, `${label} (${scheme})`);
      axeResults.push(r);
      report.check(`axe: no serious findings on the ${label} page in ${scheme} mode`, r.serious.length === 0, r.serious);
    }
  }
  await leadContext.close();
  report.extra.axe = axeResults.map((r) => ({ page: r.page, serious: r.serious.length, minor: r.minor }));
  await page.emulateMedia({ colorScheme: "light" });

  // ---- 5b. Help at 200% zoom: a 683×450 CSS-pixel window -----------------------------------
  await page.setViewportSize({ width: 683, height: 450 });
  await page.goto(url("o-2"));
  await page.keyboard.press("?");
  const help = await page.evaluate(() => {
    const h = document.getElementById("help");
    h.scrollTop = h.scrollHeight;
    const c = document.getElementById("help-close").getBoundingClientRect();
    const r = h.getBoundingClientRect();
    return { bottom: r.bottom, height: innerHeight, closeTop: c.top, closeBottom: c.bottom, scrolls: h.scrollHeight > h.clientHeight };
  });
  report.check("at 200% zoom the help fits the window and scrolls to its end", help.bottom <= help.height && help.closeBottom <= help.height && help.closeTop >= 0, help);
  await page.keyboard.press("Escape");
  await context.close();

  // ---- 5c. A phone: 390 px wide, touch ----------------------------------------------------
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await phone.newPage();
  mobile.setDefaultTimeout(15000);
  await signIn(mobile, base, "Wanda Workspace", false);
  const widths = {};
  for (const [label, path] of [
    ["trace", url("o-2")],
    ["list", `${base}/d/${slug}/traces`],
    ["dashboard", `${base}/`],
    ["history", `${url("o-1")}/history`],
    ["dataset", `${base}/d/${slug}`],
    ["not found", `${base}/no/such/page`],
    ["sign-in", `${base}/login`],
  ]) {
    await mobile.goto(path);
    widths[label] = await mobile.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: innerWidth }));
    report.check(`no sideways scrolling at 390 px: ${label}`, widths[label].scroll <= widths[label].view, widths[label]);
  }
  await mobile.goto(url("o-2"));
  const bar = await mobile.evaluate(() => {
    const r = (id) => document.getElementById(id).getBoundingClientRect();
    const kbd = document.querySelector("#pass-btn kbd");
    return { pass: r("pass-btn"), fail: r("fail-btn"), skip: r("skip-btn"), height: innerHeight, kbd: kbd ? getComputedStyle(kbd).display : null };
  });
  const onScreen = (b) => b.top >= 0 && b.bottom <= bar.height;
  report.check("on a phone Pass, Fail and Skip are on the first screen", onScreen(bar.pass) && onScreen(bar.fail) && onScreen(bar.skip), bar);
  report.check("keyboard hints are hidden on a touch screen", bar.kbd === "none", bar.kbd);
  await screenshot(mobile, opt.shots, "workspace-phone");
  await mobile.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  const barLater = await mobile.evaluate(() => {
    const b = document.getElementById("pass-btn").getBoundingClientRect();
    return { top: b.top, bottom: b.bottom, height: innerHeight };
  });
  report.check("scrolled to the end, the phone bar is still on screen", barLater.top >= 0 && barLater.bottom <= barLater.height, barLater);
  await phone.close();
});
