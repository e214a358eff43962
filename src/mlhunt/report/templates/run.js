(function () {
  "use strict";
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
})();
