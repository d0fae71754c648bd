// Settling a disagreement from the keyboard: p / f choose the verdict and move to the reason
// (Ctrl/Cmd+Enter then settles and opens the next, j skips: both handled by app.js).
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var id = e.key === "p" ? "verdict-pass" : e.key === "f" ? "verdict-fail" : null;
    var radio = id && document.getElementById(id);
    if (!radio) return;
    e.preventDefault();
    radio.checked = true;
    var reason = document.getElementById("reason");
    if (reason) reason.focus();
  });
})();
