// Open-code suggestions by keyboard: in the fail form's "Open codes" field the codes used in
// the dataset are offered as one types (a failure mode first), chosen with the arrow keys and
// taken with Enter or Tab, for each comma-separated code; Escape closes the list without
// closing the form; the combobox is announced (role, expanded, active option) and axe-clean.
// Then Ctrl+Enter saves what was chosen.
//
//   node codes.mjs --base http://127.0.0.1:PORT --slug SLUG

import { axe, main, options, shownTrace, signIn, VIEWPORT, waitForTraceChange } from "./lib.mjs";

const opt = options([
  ["base", "BASE_URL"],
  ["slug", "DATASET_SLUG"],
]);
const base = opt.base.replace(/\/$/, "");

await main("codes", async (browser, report) => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await signIn(page, base, "Kim Keys", false);
  await page.goto(`${base}/d/${opt.slug}/next`);
  await page.waitForSelector("#trace");
  const first = await shownTrace(page);
  await page.keyboard.press("f");
  await page.waitForSelector("#note:focus");
  await page.keyboard.type("Picked the wrong tool.");
  await page.keyboard.press("Tab");
  report.check("Tab moves from the note to the codes field", await page.evaluate(() => document.activeElement.id === "codes"));

  const state = () => page.evaluate(() => {
    const input = document.getElementById("codes");
    const list = document.getElementById("codes-list");
    return {
      value: input.value,
      expanded: input.getAttribute("aria-expanded"),
      activedescendant: input.getAttribute("aria-activedescendant"),
      open: !list.hidden,
      options: Array.from(list.querySelectorAll("[role=option]")).map((o) => o.firstChild.textContent),
      selected: Array.from(list.querySelectorAll("[aria-selected=true]")).map((o) => o.id),
      formOpen: !document.getElementById("fail-form").hidden,
    };
  });

  await page.keyboard.type("wro");
  await page.waitForFunction(() => !document.getElementById("codes-list").hidden);
  let s = await state();
  report.check("typing offers the matching code", s.open && s.expanded === "true" && s.options[0] === "wrong tool", s);
  await page.keyboard.press("ArrowDown");
  s = await state();
  report.check("ArrowDown highlights it (aria-activedescendant, aria-selected)", s.activedescendant === "codes-opt-0" && s.selected[0] === "codes-opt-0", s);
  const a11y = await axe(page, "fail form with the suggestions open");
  report.check("axe: no serious violation with the list open", a11y.serious.length === 0, a11y.serious);
  await page.keyboard.press("Enter");
  s = await state();
  report.check("Enter takes it and does not submit the form", s.value === "wrong tool, " && !s.open && s.formOpen && (await shownTrace(page)) === first, s);

  await page.keyboard.type("tool m");
  await page.waitForFunction(() => !document.getElementById("codes-list").hidden);
  s = await state();
  report.check("the next code is completed on its own: the failure mode is offered", s.options[0] === "Tool misuse" && !s.options.includes("wrong tool"), s);
  await page.keyboard.press("Escape");
  s = await state();
  report.check("Escape closes the list, not the form", !s.open && s.expanded === "false" && s.formOpen, s);
  await page.keyboard.press("ArrowDown");
  s = await state();
  report.check("ArrowDown opens it again on the first match", s.open && s.activedescendant === "codes-opt-0", s);
  await page.keyboard.press("Tab");
  s = await state();
  report.check("Tab takes the highlighted code", s.value === "wrong tool, Tool misuse, ", s);

  await page.keyboard.press("Control+Enter");
  const next = await waitForTraceChange(page, first);
  report.check("Ctrl+Enter saves and goes next", next !== null && next !== first, next);
  report.check("no script error", errors.length === 0, errors);
  report.extra.saved_on = first;
});
