// Conveyor dashboard: live refresh, confirmations, "select all". Hand-written, no dependencies.
//
// Live refresh is a cheap poll: every few seconds the page fetches itself and swaps the #live
// block. It holds off while the operator is busy with the page (a field focused, a checkbox
// ticked, an editor open), so a refresh never throws away a selection or half-typed input.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;
  var KEY = "conveyor.live";

  function live() { return document.getElementById("live"); }

  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) return true;
    if (region.querySelector("input[type=checkbox]:checked, details[open]")) return true;
    return false;
  }

  // The last good data stays on screen while the server or the broker is away, marked stale.
  function stale(text) {
    var mark = document.getElementById("live-state");
    if (mark) mark.textContent = text;
  }

  function refresh() {
    var region = live();
    var toggle = document.getElementById("live-toggle");
    if (!region || (toggle && !toggle.checked) || document.hidden || busy(region)) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Conveyor-Live": "1" } })
      .then(function (response) {
        if (!response.ok) {
          stale("stale: the dashboard answered " + response.status + " (broker unreachable?)");
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null || busy(region)) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) region.innerHTML = fresh.innerHTML;
        stale("");
      })
      .catch(function () { stale("stale: the dashboard does not answer"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("live-toggle");
    if (toggle) {
      toggle.checked = window.localStorage.getItem(KEY) !== "off";
      toggle.addEventListener("change", function () {
        window.localStorage.setItem(KEY, toggle.checked ? "on" : "off");
      });
    }
    window.setInterval(refresh, INTERVAL_MS);
  });

  // A form or the button that submits it may ask for confirmation first (data-confirm).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (event.target.id !== "select-all") return;
    var boxes = document.querySelectorAll("#dead-form input[name=id]");
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = event.target.checked;
  });
})();
