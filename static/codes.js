// Open-code suggestions in the fail form's "Open codes" field (#codes): an ARIA 1.2
// combobox over the codes already used in the dataset (failure modes and their codes first,
// then the most used; served by /d/{dataset}/codes.json). Each comma-separated code is
// completed on its own. Keys: type to filter, ArrowDown/ArrowUp to move, Enter or Tab to
// take the highlighted code, Escape to close. No build step, no dependency.
(function () {
  "use strict";
  var MAX_SHOWN = 8;
  var cache = {};   // url -> { at: ms, list: [...] }
  var active = -1;
  var shown = [];

  function field() { return document.getElementById("codes"); }
  function listbox() { return document.getElementById("codes-list"); }
  function norm(s) { return s.trim().replace(/\s+/g, " ").toLowerCase(); }

  function load(input) {
    var url = input.getAttribute("data-suggest");
    if (!url) return;
    var entry = cache[url];
    if (entry && Date.now() - entry.at < 30000) return;
    cache[url] = { at: Date.now(), list: entry ? entry.list : [] };
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
      .then(function (data) {
        cache[url] = { at: Date.now(), list: data.suggestions || [] };
        if (document.activeElement === input && input.value) update(input, false);
      })
      .catch(function () { /* suggestions are a help; the field works without them */ });
  }

  // The comma-separated part the caret is in: [start, end) of input.value.
  function segment(input) {
    var v = input.value, caret = input.selectionStart == null ? v.length : input.selectionStart;
    var start = v.lastIndexOf(",", caret - 1) + 1;
    var end = v.indexOf(",", caret);
    if (end < 0) end = v.length;
    return { start: start, end: end, text: v.slice(start, end) };
  }

  function close(input) {
    var lb = listbox();
    if (lb) { lb.hidden = true; lb.textContent = ""; }
    shown = []; active = -1;
    if (input) { input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant"); }
  }

  function update(input, showAll) {
    var lb = listbox(), entry = cache[input.getAttribute("data-suggest")];
    if (!lb || !entry) return;
    var seg = segment(input), typed = norm(seg.text);
    if (!typed && !showAll) { close(input); return; }
    var taken = {};
    input.value.split(",").forEach(function (c, i, all) {
      var n = norm(c); if (n && n !== typed) taken[n] = true;
    });
    var starts = [], contains = [];
    entry.list.forEach(function (s) {
      var n = norm(s.code);
      if (taken[n] || n === typed) return;
      var at = typed ? n.indexOf(typed) : 0;
      if (at === 0) starts.push(s); else if (at > 0) contains.push(s);
    });
    shown = starts.concat(contains).slice(0, MAX_SHOWN);
    lb.textContent = "";
    if (!shown.length) { close(input); return; }
    shown.forEach(function (s, i) {
      var li = document.createElement("li");
      li.id = "codes-opt-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.textContent = s.code;
      if (s.mode) {
        var tag = document.createElement("span");
        tag.className = "suggestion-mode";
        tag.textContent = norm(s.mode) === norm(s.code) ? "failure mode" : "in " + s.mode;
        li.appendChild(tag);
      }
      if (s.description) li.title = s.description;
      li.addEventListener("mousedown", function (e) { e.preventDefault(); take(input, i); });
      lb.appendChild(li);
    });
    lb.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(input, -1);
  }

  function highlight(input, i) {
    var lb = listbox();
    active = i;
    Array.prototype.forEach.call(lb.children, function (li, j) {
      li.setAttribute("aria-selected", j === i ? "true" : "false");
      if (j === i && li.scrollIntoView) li.scrollIntoView({ block: "nearest" });
    });
    if (i >= 0) input.setAttribute("aria-activedescendant", "codes-opt-" + i);
    else input.removeAttribute("aria-activedescendant");
  }

  // Puts suggestion i in place of the code being typed, then ", " for the next one.
  function take(input, i) {
    var s = shown[i]; if (!s) return;
    var seg = segment(input), v = input.value;
    var before = v.slice(0, seg.start), after = v.slice(seg.end);
    var lead = before && !/\s$/.test(before) ? " " : "";
    var rest = after.replace(/^\s*,?\s*/, "");
    input.value = before + lead + s.code + ", " + rest;
    var caret = (before + lead + s.code + ", ").length;
    input.setSelectionRange(caret, caret);
    close(input);
  }

  document.addEventListener("focusin", function (e) {
    if (e.target === field()) load(e.target);
  });
  document.addEventListener("input", function (e) {
    if (e.target === field()) { load(e.target); update(e.target, false); }
  });
  document.addEventListener("focusout", function (e) {
    if (e.target === field()) close(e.target);
  });
  // Capture phase: the page's own shortcuts (Escape closes the form) come after these.
  document.addEventListener("keydown", function (e) {
    var input = field();
    if (e.target !== input || e.isComposing) return;
    var open = shown.length > 0 && !listbox().hidden;
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (!open) { update(input, true); if (shown.length) highlight(input, 0); return; }
      highlight(input, (active + 1) % shown.length);
    } else if (e.key === "ArrowUp" && open) {
      e.preventDefault();
      highlight(input, active <= 0 ? shown.length - 1 : active - 1);
    } else if ((e.key === "Enter" || e.key === "Tab") && open && active >= 0 && !e.ctrlKey && !e.metaKey) {
      e.preventDefault(); e.stopPropagation();
      take(input, active);
    } else if (e.key === "Escape" && open) {
      e.preventDefault(); e.stopPropagation();
      close(input);
    }
  }, true);
})();
