// Shared pieces of the browser checks: launching Debian's Chromium through playwright-core
// (never a downloaded browser), signing in, running axe-core, and reporting results as JSON.
//
// Every script prints one JSON object on stdout: {"ok": bool, "checks": [...], ...extra}
// and exits 1 when a check failed (2 when the script itself crashed).

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

/** The flags the issue asks for: no sandbox (containers), nothing that phones home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export const VIEWPORT = { width: 1280, height: 800 };

/** `CHROMIUM_PATH`, else the first `chromium` (or `chromium-browser`) on PATH. */
export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ["chromium", "chromium-browser"]) {
    for (const dir of (process.env.PATH || "").split(delimiter)) {
      const p = join(dir, name);
      if (dir && existsSync(p)) return p;
    }
  }
  throw new Error("no Chromium: set CHROMIUM_PATH or put `chromium` on PATH");
}

export async function launch() {
  return chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, headless: true });
}

/** Reads `--name value` pairs from argv, falling back to environment variables. */
export function options(spec) {
  const out = {};
  const argv = process.argv.slice(2);
  for (const [key, env, fallback] of spec) {
    const i = argv.indexOf(`--${key}`);
    out[key] = i >= 0 ? argv[i + 1] : process.env[env] ?? fallback;
    if (out[key] === undefined) throw new Error(`missing --${key} (or ${env})`);
  }
  return out;
}

/** Collects named checks; `finish` prints them and sets the exit code. */
export class Report {
  constructor(name) {
    this.name = name;
    this.checks = [];
    this.extra = {};
  }

  check(name, ok, detail) {
    const entry = { name, ok: Boolean(ok) };
    if (detail !== undefined) entry.detail = detail;
    this.checks.push(entry);
    if (!ok) process.stderr.write(`FAILED: ${name}${detail !== undefined ? ` — ${JSON.stringify(detail)}` : ""}\n`);
    return Boolean(ok);
  }

  /** Runs `fn`; a throw becomes a failed check instead of ending the script. */
  async step(name, fn) {
    try {
      return await fn();
    } catch (e) {
      this.check(name, false, String(e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e));
      return undefined;
    }
  }

  get ok() {
    return this.checks.length > 0 && this.checks.every((c) => c.ok);
  }

  finish() {
    const out = { script: this.name, ok: this.ok, failed: this.checks.filter((c) => !c.ok).map((c) => c.name), checks: this.checks, ...this.extra };
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exitCode = this.ok ? 0 : 1;
  }
}

/** Runs a script body with a browser, reporting crashes as JSON too. */
export async function main(name, body) {
  const report = new Report(name);
  let browser;
  try {
    browser = await launch();
    report.extra.browser = browser.version();
    await body(browser, report);
  } catch (e) {
    report.check("script ran to the end", false, String(e && e.stack ? e.stack : e));
    report.finish();
    process.exitCode = 2;
    if (browser) await browser.close().catch(() => {});
    return;
  }
  await browser.close().catch(() => {});
  report.finish();
}

/** Signs in through the development form and lands on the dashboard. */
export async function signIn(page, base, name, admin) {
  await page.goto(`${base}/login`);
  await page.fill("#name", name);
  if (admin) await page.check("input[name=admin]");
  await Promise.all([page.waitForURL(`${base}/`), page.click("form[action='/login'] button[type=submit]")]);
}

const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core (WCAG 2 A/AA rules and best practices) on the page as it is now. Injected
 * through the DevTools protocol, so the app's CSP does not need to allow it.
 */
export async function axe(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(" "), summary: (n.failureSummary || "").slice(0, 300) })),
    }));
  });
  const serious = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  return { page: label, serious, minor: result.filter((v) => !serious.includes(v)).map((v) => `${v.impact}: ${v.id}`) };
}

/** Saves a screenshot when a directory was given. */
export async function screenshot(page, dir, name) {
  if (!dir) return null;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** The trace shown now (`#trace[data-trace-id]`), or null. */
export async function shownTrace(page) {
  return page.evaluate(() => {
    const el = document.getElementById("trace");
    return el ? el.getAttribute("data-trace-id") : null;
  });
}

/** Waits until the shown trace differs from `previous` (or the done page appears). */
export async function waitForTraceChange(page, previous, timeout = 10000) {
  await page.waitForFunction(
    (prev) => {
      const el = document.getElementById("trace");
      if (document.getElementById("all-done")) return true;
      return el && el.getAttribute("data-trace-id") !== prev && !document.querySelector(".htmx-request");
    },
    previous,
    { timeout },
  );
  return shownTrace(page);
}

/** A trace's own URL, as the app builds it (RFC 3986 unreserved characters kept). */
export function traceUrl(base, slug, traceId) {
  const enc = Array.from(new TextEncoder().encode(traceId))
    .map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`))
    .join("");
  return `${base}/d/${slug}/t/${enc}`;
}

export { dirname };
