// Keyboard-first labelling for the mhsafety review app. No inline script (the CSP forbids it);
// one document-level listener survives htmx page swaps.
(function () {
  "use strict";
  var LEVEL_KEYS = { "0": "none", l: "low", m: "moderate", h: "high", i: "imminent" };
  var DELIVERED_KEYS = { y: "yes", n: "no", p: "partial" };
  var APPROPRIATE_KEYS = { Y: "yes", N: "no", P: "partial" };

  function form() { return document.getElementById("label-form"); }
  function categories() {
    var f = form();
    return f ? Array.prototype.slice.call(f.querySelectorAll("fieldset.category")) : [];
  }
  function current() { return document.querySelector("fieldset.category.current"); }
  function select(fieldset) {
    categories().forEach(function (c) { c.classList.remove("current"); });
    if (fieldset) {
      fieldset.classList.add("current");
      fieldset.scrollIntoView({ block: "nearest" });
    }
  }
  function answered(fieldset) {
    return !!fieldset.querySelector('input[name^="level_"]:checked');
  }
  function choose(fieldset, prefix, value) {
    var input = fieldset.querySelector('input[name^="' + prefix + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }
  function start() {
    var list = categories();
    if (!list.length) { return; }
    var open = list.filter(function (c) { return !answered(c); });
    select(open[0] || list[0]);
  }
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"));
  }
  function submit() {
    var f = form();
    if (f) { f.requestSubmit ? f.requestSubmit() : f.submit(); }
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) { link.click(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.metaKey) { return; }
    if ((event.ctrlKey && event.key === "Enter") && form()) {
      event.preventDefault(); submit(); return;
    }
    if (event.ctrlKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var key = event.key;
    if (!form()) {
      if (key === "Enter" && document.getElementById("continue")) {
        event.preventDefault(); follow("continue");
      }
      return;
    }
    var list = categories();
    var here = current() || list[0];
    var index = list.indexOf(here);
    var handled = true;
    if (/^[1-9]$/.test(key) && list[Number(key) - 1]) {
      select(list[Number(key) - 1]);
    } else if (key === "j") {
      select(list[Math.min(index + 1, list.length - 1)]);
    } else if (key === "k") {
      select(list[Math.max(index - 1, 0)]);
    } else if (LEVEL_KEYS[key] !== undefined) {
      choose(here, "level_", LEVEL_KEYS[key]);
    } else if (DELIVERED_KEYS[key] !== undefined) {
      choose(here, "intervened_", DELIVERED_KEYS[key]);
    } else if (APPROPRIATE_KEYS[key] !== undefined) {
      choose(here, "appropriate_", APPROPRIATE_KEYS[key]);
    } else if (key === "a") {
      list.forEach(function (c) { if (!answered(c)) { choose(c, "level_", "none"); } });
    } else if (key === "t") {
      document.getElementById("note").focus();
    } else if (key === "Enter") {
      submit();
    } else if (key === "[") {
      follow("prev");
    } else if (key === "]") {
      follow("next");
    } else if (key === "?") {
      var help = document.getElementById("shortcuts");
      if (help) { help.open = !help.open; }
    } else {
      handled = false;
    }
    if (handled) { event.preventDefault(); }
  });

  // an answered question no longer shows the error it had when the form came back
  document.addEventListener("change", function (event) {
    var fieldset = event.target.closest && event.target.closest("fieldset.category");
    if (!fieldset || !event.target.name) { return; }
    var group = fieldset.querySelector('[role="radiogroup"] input[name="' + event.target.name + '"]');
    var row = group && group.closest(".row");
    var next = row && row.nextElementSibling;
    if (next && next.classList.contains("field-error")) { next.remove(); }
    if (!fieldset.querySelector(".field-error")) { fieldset.classList.remove("invalid"); }
  });

  document.addEventListener("click", function (event) {
    var fieldset = event.target.closest && event.target.closest("fieldset.category");
    if (fieldset) { select(fieldset); }
  });
  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);
})();
