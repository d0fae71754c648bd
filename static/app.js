// Tracecoder keyboard shortcuts and small behaviours. Loaded from /static (the CSP allows
// scripts from self only); everything also works without it through plain forms and links.
(function () {
  "use strict";

  // Loaded in <head> without `defer`, so this runs before the body is painted: CSS keeps the
  // fail form open (and hides JS-only buttons) on `html:not(.js)`, i.e. when scripts are off.
  document.documentElement.classList.add("js");

  function byId(id) { return document.getElementById(id); }

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    return el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  // A key can come before HTMX has wired a freshly swapped-in form (or before htmx.js has
  // run at all on a first load): the form is then wired on the spot, or the submit waits
  // for htmx, so it never falls back to a full-page post while htmx is on its way.
  function submit(form) {
    if (!form) return;
    var go = function () {
      if (window.htmx && form.hasAttribute("hx-post")) window.htmx.process(form);
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    };
    if (window.htmx || !document.querySelector("script[src*='htmx']")) { go(); return; }
    document.addEventListener("DOMContentLoaded", function () { setTimeout(go, 0); }, { once: true });
  }

  function openFail() {
    var form = byId("fail-form");
    if (!form) return;
    form.hidden = false;
    var btn = byId("fail-btn");
    if (btn) btn.setAttribute("aria-expanded", "true");
    var note = byId("note");
    if (note) { note.focus(); note.setSelectionRange(note.value.length, note.value.length); }
  }

  function closeFail() {
    var form = byId("fail-form");
    if (!form || form.hidden) return false;
    form.hidden = true;
    var btn = byId("fail-btn");
    if (btn) { btn.setAttribute("aria-expanded", "false"); btn.focus(); }
    return true;
  }

  function setHelp(show) {
    var help = byId("help");
    if (!help) return;
    help.hidden = !show;
    var btn = byId("help-btn");
    if (btn) btn.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) { var c = byId("help-close"); if (c) c.focus(); } else if (btn) { btn.focus(); }
  }

  function helpOpen() { var h = byId("help"); return h && !h.hidden; }

  function click(id) { var el = byId(id); if (el) el.click(); }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.isComposing) return;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      var form = e.target && e.target.closest ? e.target.closest("form") : null;
      if (!form) { var fail = byId("fail-form"); if (fail && !fail.hidden) form = fail; }
      if (form) { e.preventDefault(); submit(form); }
      return;
    }
    if (e.key === "Escape") {
      if (helpOpen()) { e.preventDefault(); setHelp(false); return; }
      if (closeFail()) { e.preventDefault(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (!(e.key in KEYS)) return;
    e.preventDefault();
    // While the main area is being replaced, a key waits for the new trace instead of
    // acting on the one being left (see `busy` below).
    if (busy && QUEUED[e.key]) { if (queue.length < 5) queue.push(e.key); return; }
    KEYS[e.key]();
  });

  var KEYS = {
    p: function () { submit(byId("pass-form")); },
    f: openFail,
    s: function () { submit(byId("skip-form")); },
    u: function () { submit(byId("undo-form")); },
    j: function () { click("next-link"); },
    k: function () { click("prev-link"); },
    r: toggleRaw,
    t: toggleTools,
    "?": function () { setHelp(!helpOpen()); },
  };
  // Keys that act on the trace on screen: held while #main is being replaced.
  var QUEUED = { p: true, f: true, s: true, u: true, j: true, k: true, t: true };
  var busy = false;
  var queue = [];

  function mainRequest(detail) {
    var target = detail && (detail.target || (detail.requestConfig && detail.requestConfig.target));
    return target && target.id === "main";
  }
  // The request that replaces #main, and whether its answer is being swapped into #main
  // (recorded by the last beforeSwap listener, after every other one had its say).
  var busyXhr = null;
  var swapsMain = false;
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (!mainRequest(e.detail)) return;
    busy = true;
    busyXhr = e.detail.xhr;
    swapsMain = false;
  });
  // A failed or refused answer drops the held keys: they were meant for the next trace.
  function release(replay) {
    busy = false;
    busyXhr = null;
    var held = queue;
    queue = [];
    if (!replay) return;
    var refused = document.getElementById("confirm-replace") || document.getElementById("conflict") ||
      document.getElementById("form-errors") || document.getElementById("not-saved");
    if (refused) return;
    var key = held.shift();
    if (key) { queue = held; KEYS[key](); if (!busy) queue = []; }
  }
  function ours(detail) { return busyXhr && detail && detail.xhr === busyXhr; }
  document.addEventListener("htmx:afterSettle", function (e) { if (ours(e.detail) && mainRequest(e.detail)) release(true); });
  ["htmx:responseError", "htmx:sendError", "htmx:timeout", "htmx:swapError", "htmx:sendAbort"].forEach(function (name) {
    document.addEventListener(name, function (e) { if (ours(e.detail)) release(false); });
  });
  // After the answer: if it is not being swapped into #main (a notice retargeted to the
  // flash area, a refused save shown beside the form), nothing will settle there: stop
  // waiting. Otherwise the settle of #main ends the wait.
  document.addEventListener("htmx:afterRequest", function (e) {
    if (ours(e.detail) && !swapsMain) release(false);
  });

  // Raw text instead of rendered Markdown, for every message, kept across traces.
  function toggleRaw() {
    var on = document.documentElement.classList.toggle("show-raw");
    try { localStorage.setItem("tc-raw", on ? "1" : ""); } catch (err) { /* private mode */ }
    syncRaw();
  }
  function syncRaw() {
    var btn = byId("raw-toggle");
    if (btn) btn.setAttribute("aria-pressed", document.documentElement.classList.contains("show-raw") ? "true" : "false");
  }
  try { if (localStorage.getItem("tc-raw")) document.documentElement.classList.add("show-raw"); } catch (err) { /* none */ }

  // Opens every tool call of this turn (arguments and results), or closes them all.
  function toggleTools() {
    var cards = document.querySelectorAll("#tool-calls details");
    if (!cards.length) return;
    var open = !Array.prototype.every.call(cards, function (d) { return d.open; });
    Array.prototype.forEach.call(cards, function (d) { d.open = open; });
    var btn = byId("tools-toggle");
    if (btn) { btn.setAttribute("aria-expanded", open ? "true" : "false"); btn.firstChild.textContent = open ? "Hide tool calls " : "Show tool calls "; }
  }

  document.addEventListener("click", function (e) {
    var t = e.target && e.target.closest ? e.target.closest("button") : null;
    if (!t) return;
    if (t.id === "fail-btn") { openFail(); }
    else if (t.id === "fail-cancel") { closeFail(); }
    else if (t.id === "help-btn") { setHelp(!helpOpen()); }
    else if (t.id === "help-close") { setHelp(false); }
    else if (t.id === "raw-toggle") { toggleRaw(); }
    else if (t.id === "tools-toggle") { toggleTools(); }
  });

  // A swapped-in page names itself (data-page-title): keep the window title, which screen
  // readers announce and the history menu lists, in step with the trace on screen.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (!e.detail || !e.detail.target || e.detail.target.id !== "main") return;
    var named = document.querySelector("#main [data-page-title]");
    if (named) document.title = named.getAttribute("data-page-title");
    syncRaw();
  });
  document.addEventListener("DOMContentLoaded", syncRaw);

  // After a swap: a refused fail form keeps focus in the note; otherwise start at the top
  // with focus on <main> (tabindex=-1): screen readers move to the new trace, Tab starts from
  // there, and the next letter key works at once (main is not a text field).
  document.addEventListener("htmx:afterSettle", function (e) {
    if (!e.detail || !e.detail.target || e.detail.target.id !== "main") return;
    var form = byId("fail-form");
    if (form && !form.hidden) { var note = byId("note"); if (note) note.focus(); return; }
    window.scrollTo(0, 0);
    var main = byId("main");
    if (main) main.focus({ preventScroll: true });
  });

  // A save from the trace page that fails keeps the form and what was typed on screen.
  // 409 (conflict) and 422 (invalid) answers re-render the form with the typed text, and a
  // retargeted answer (session ended: #flash) says where it goes; every other error, and a
  // network failure or timeout, is shown beside the form instead of replacing #main.
  var SAVE_FORMS = { "pass-form": true, "fail-form": true };

  function saveForm(detail) {
    var elt = detail && ((detail.requestConfig && detail.requestConfig.elt) || detail.elt);
    return elt && SAVE_FORMS[elt.id] ? elt : null;
  }

  // What a status means when the answer carries no message of ours.
  function reasonFor(status) {
    if (status === 413) return "What you typed is too large to send in one save; shorten the note or comments.";
    if (status === 408) return "The server took too long to answer.";
    if (status === 429) return "Too many requests in a short time; wait a moment.";
    if (status >= 500) return "The server could not save it just now.";
    return "The server refused the save (status " + status + ").";
  }

  // The message of an error page or fragment (its .error-message), else null.
  function messageIn(html) {
    if (typeof html !== "string" || html.indexOf("error-message") === -1) return null;
    var el = new DOMParser().parseFromString(html, "text/html").querySelector(".error-message");
    var text = el ? el.textContent.replace(/\s+/g, " ").trim() : "";
    return text ? text.slice(0, 400) : null;
  }

  function showSaveError(form, reason) {
    var box = byId("save-error");
    if (!box) return;
    box.textContent = "";
    var lead = document.createElement("strong");
    lead.textContent = "Not saved:";
    box.appendChild(lead);
    box.appendChild(document.createTextNode(" " + reason + " "));
    var keep = document.createElement("span");
    keep.textContent = form.id === "fail-form"
      ? "What you typed is still here; try again."
      : "Your verdict was not recorded; try again.";
    box.appendChild(keep);
  }

  document.addEventListener("htmx:beforeRequest", function (e) {
    if (!saveForm(e.detail)) return;
    var box = byId("save-error");
    if (box) box.textContent = "";
  });

  document.addEventListener("htmx:beforeSwap", function (e) {
    var d = e.detail;
    var form = saveForm(d);
    if (!form || !d.xhr) return;
    var status = d.xhr.status;
    if (status < 400 || status === 409 || status === 422 || d.xhr.getResponseHeader("HX-Retarget")) return;
    d.shouldSwap = false;
    showSaveError(form, messageIn(d.serverResponse) || reasonFor(status));
  });

  document.addEventListener("htmx:sendError", function (e) {
    var form = saveForm(e.detail);
    if (form) showSaveError(form, "The server could not be reached; check the connection.");
  });

  document.addEventListener("htmx:timeout", function (e) {
    var form = saveForm(e.detail);
    if (form) showSaveError(form, reasonFor(408));
  });

  // Upload progress for the import form (the form also works as a plain POST).
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form || form.id !== "import-form" || !window.XMLHttpRequest || !window.FormData) return;
    e.preventDefault();
    var bar = byId("upload-progress");
    var note = byId("upload-status");
    var button = form.querySelector("button[type=submit]");
    function say(text) { if (note) note.textContent = text; }
    if (button) button.disabled = true;
    say("Uploading…");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (p) {
      if (bar && p.lengthComputable) { bar.hidden = false; bar.value = Math.round(100 * p.loaded / p.total); }
    });
    xhr.upload.addEventListener("load", function () { say("Uploaded. Importing…"); });
    xhr.addEventListener("load", function () {
      // The server answers with a redirect to the import's own page (done or in progress).
      if (xhr.responseURL && xhr.responseURL.indexOf("/admin/imports/") !== -1) {
        window.location.assign(xhr.responseURL);
        return;
      }
      // A refusal (too large, no file, rate limited…): show the page the server sent. Its
      // scripts are already running here, so only the body and title are taken over.
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      document.title = doc.title;
      document.body.replaceWith(document.adoptNode(doc.body));
    });
    xhr.addEventListener("error", function () { form.submit(); });
    xhr.send(new FormData(form));
  });
  // Registered last, so it sees the final decision of every other beforeSwap listener.
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (busyXhr && e.detail.xhr === busyXhr) swapsMain = !!e.detail.shouldSwap && mainRequest(e.detail);
  });
})();
