"""The dashboard's one script: live updates, served from the service itself.

A page that changes on its own (a run in progress every few seconds, the others every ten)
says so with ``<main data-live="SECONDS">``. The script reads the same page again every so
often and puts its new ``<main>`` in place of the old one, so a run's stages move without a
reload (no flicker, the scroll position and opened logs kept); it stops when the page no
longer says ``data-live`` (the run ended). Without JavaScript the page reads the same and
refreshes itself: its ``<meta http-equiv="refresh">`` is inside ``<noscript>``.

The CSP stays strict: ``script-src 'self'`` — this file only, no inline script, no eval; the
fetched page is parsed by ``DOMParser`` (whose documents run no script) and its nodes
imported, never written as HTML strings.
"""

from __future__ import annotations

PATH = "/static/live.js"
TYPE = "text/javascript; charset=utf-8"

SCRIPT = """\
// mlcicd dashboard: live updates (see mlcicd/web/live.py). The page reads the same without it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch || !window.DOMParser) {
    return;
  }
  function every() {
    return Math.max(1, Number(main.getAttribute("data-live")) || 10) * 1000;
  }
  function swap(text) {
    var page = new DOMParser().parseFromString(text, "text/html");
    var fresh = page.querySelector("main");
    if (!fresh) {
      return false;
    }
    var opened = {};
    main.querySelectorAll("details[id]").forEach(function (d) {
      opened[d.id] = d.open;
    });
    var nodes = Array.prototype.map.call(fresh.childNodes, function (n) {
      return document.importNode(n, true);
    });
    main.replaceChildren.apply(main, nodes);
    main.querySelectorAll("details[id]").forEach(function (d) {
      if (Object.prototype.hasOwnProperty.call(opened, d.id)) {
        d.open = opened[d.id];
      }
    });
    document.title = page.title;
    main.setAttribute("data-updated", String(Date.now()));
    if (fresh.hasAttribute("data-live")) {
      main.setAttribute("data-live", fresh.getAttribute("data-live"));
      return true;
    }
    main.removeAttribute("data-live");
    return false;
  }
  function tick() {
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("status " + answer.status);
        }
        return answer.text();
      })
      .then(function (text) {
        if (swap(text)) {
          window.setTimeout(tick, every());
        }
      })
      .catch(function () {
        window.setTimeout(tick, 2 * every());  // the service restarting: try again, slower
      });
  }
  window.setTimeout(tick, every());
})();
"""
