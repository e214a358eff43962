(function () {
  "use strict";
  var body = document.body;
  /* Markers on <body> once everything has loaded, so a headless browser's DOM dump tells
     whether the page really rendered (the browser test reads them; users never see them). */
  function painted(img) {  /* decoded pixels: a truncated PNG still reports its header's size */
    if (!img.complete || !img.naturalWidth || !img.getBoundingClientRect().width) { return false; }
    try {
      var c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      var ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      var px = ctx.getImageData(0, 0, c.width, c.height).data, opaque = 0, ink = 0;
      for (var i = 0; i < px.length; i += 4) {
        if (px[i + 3] === 255) { opaque += 1; }
        if (px[i + 3] && px[i] + px[i + 1] + px[i + 2] < 600) { ink += 1; }
      }
      return opaque > 0.9 * c.width * c.height && ink > 0;
    } catch (e) {
      return false;
    }
  }
  window.addEventListener("load", function () {
    var plots = document.querySelectorAll(".plots img");
    var ok = Array.prototype.filter.call(plots, painted);
    body.setAttribute("data-plots", String(plots.length));
    body.setAttribute("data-plots-ok", String(ok.length));
    var svg = document.querySelector("#dfd-box svg");
    if (svg) {
      var bb = svg.getBBox(), rect = svg.getBoundingClientRect();
      var drawn = bb.width > 0 && bb.height > 0 && rect.width > 0 && rect.height > 0;
      body.setAttribute("data-dfd-ok", drawn ? "1" : "0");
      body.setAttribute("data-dfd-nodes", String(Array.prototype.filter.call(
        svg.querySelectorAll("g.node"), function (g) { return g.getBBox().width > 0; }).length));
    }
    var trs = document.querySelectorAll("#threat-table tbody tr");
    body.setAttribute("data-rows", String(trs.length));
    body.setAttribute("data-rows-drawn", String(Array.prototype.filter.call(trs, function (tr) {
      return tr.getBoundingClientRect().height > 0;
    }).length));
  });
  /* the DFD is drawn at its natural size (readable, scrolled); "fit" gives the overview */
  var zoom = document.getElementById("dfd-zoom");
  var box = document.getElementById("dfd-box");
  if (zoom && box) {
    zoom.addEventListener("click", function () {
      var fit = box.classList.toggle("fit");
      zoom.textContent = fit ? "actual size" : "fit to page";
    });
  }
  var table = document.getElementById("threat-table");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var filters = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  var shown = document.getElementById("shown");

  function matches(row, f) {
    var value = f.value;
    if (!value) { return true; }
    var key = f.getAttribute("data-filter");
    if (key === "q") {
      return row.textContent.toLowerCase().indexOf(value.toLowerCase()) !== -1;
    }
    if (key === "status") {  /* a threat may be validated and observed at once */
      return (" " + row.getAttribute("data-status") + " ").indexOf(" " + value + " ") !== -1;
    }
    return row.getAttribute("data-" + key) === value;
  }
  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      var ok = filters.every(function (f) { return matches(row, f); });
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    if (shown) { shown.textContent = n + " of " + rows.length + " threats shown"; }
  }
  function setFilter(key, value) {
    filters.forEach(function (f) {
      if (f.getAttribute("data-filter") === key) { f.value = value; }
    });
    apply();
  }
  filters.forEach(function (f) {
    f.addEventListener(f.tagName === "INPUT" ? "input" : "change", apply);
  });
  var reset = document.getElementById("reset-filters");
  if (reset) {
    reset.addEventListener("click", function () {
      filters.forEach(function (f) { f.value = ""; });
      apply();
    });
  }
  /* "show in table" on an element card: filter the table to that element */
  Array.prototype.slice.call(document.querySelectorAll("button.filter-el")).forEach(function (b) {
    b.addEventListener("click", function () {
      setFilter("element", b.getAttribute("data-element"));
      table.scrollIntoView();
    });
  });

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  headers.forEach(function (th, index) {
    if (!th.hasAttribute("data-sort")) { return; }
    th.addEventListener("click", function () {
      var numeric = th.getAttribute("data-sort") === "number";
      var asc = !th.classList.contains("asc");
      headers.forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      function key(row) {
        var cell = row.cells[index];
        var v = cell.getAttribute("data-value");
        if (v === null) { v = cell.textContent.trim(); }
        return numeric ? (parseFloat(v) || 0) : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var ka = key(a), kb = key(b);
        var c = ka < kb ? -1 : (ka > kb ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function (row) { tbody.appendChild(row); });
    });
  });
  apply();

  /* A link such as report.html#sort=risk:desc&filter=status:validated opens the table sorted
     and filtered, through the same handlers a click or a choice uses. */
  location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var m;
    try { m = /^(sort|filter)=([^:]+):(.*)$/.exec(decodeURIComponent(part)); } catch (e) { m = null; }
    if (!m) { return; }  /* an ordinary anchor, or a malformed fragment: nothing to do */
    if (m[1] === "sort") {
      if (m[3] !== "asc" && m[3] !== "desc") { return; }
      var th = headers.filter(function (h) {
        return h.hasAttribute("data-sort") && h.textContent.trim().toLowerCase() === m[2];
      })[0];
      for (var i = 0; th && i < 2 && !th.classList.contains(m[3]); i += 1) { th.click(); }
      return;
    }
    filters.forEach(function (f) {
      if (f.getAttribute("data-filter") !== m[2]) { return; }
      f.value = m[3];
      f.dispatchEvent(new Event(f.tagName === "INPUT" ? "input" : "change"));
    });
  });
  body.setAttribute("data-js-ok", "1");
})();
