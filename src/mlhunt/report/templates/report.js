(function () {
  "use strict";
  // Attack paths: highlight the selected one's nodes and edges on the DFD (ids set by to_dot).
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-path]"));
  function highlight(item) {
    Array.prototype.forEach.call(document.querySelectorAll(".on-path"), function (el) {
      el.classList.remove("on-path");
    });
    items.forEach(function (i) { i.classList.remove("selected"); });
    item.classList.add("selected");
    item.getAttribute("data-path").split(" ").forEach(function (id) {
      var el = id ? document.getElementById(id) : null;
      if (el) { el.classList.add("on-path"); }
    });
  }
  items.forEach(function (item) {
    item.addEventListener("click", function () { highlight(item); });
  });
  if (items.length) { highlight(items[0]); }
})();
(function () {
  "use strict";
  var table = document.getElementById("findings-table");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var filters = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  var shown = document.getElementById("findings-shown");

  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      var ok = filters.every(function (f) {
        var value = f.value;
        if (!value) { return true; }
        var key = f.getAttribute("data-filter");
        if (key === "q") {
          return row.textContent.toLowerCase().indexOf(value.toLowerCase()) !== -1;
        }
        return row.getAttribute("data-" + key) === value;
      });
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    if (shown) { shown.textContent = n + " of " + rows.length + " shown"; }
  }
  filters.forEach(function (f) {
    f.addEventListener(f.tagName === "INPUT" ? "input" : "change", apply);
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
