// Click-to-sort for tables marked data-sortable. Without JavaScript the server's order stays.
// Header cells opt in with data-sort="number" or "text"; a cell's data-sort-value (else its
// text) is compared; empty values always sort last. data-sort-best="desc" makes the first
// click put the highest value first (e.g. diversity, where higher is better).
(function () {
  "use strict";

  function cellValue(row, index, kind) {
    var cell = row.cells[index];
    if (!cell) return null;
    var raw = cell.hasAttribute("data-sort-value") ? cell.getAttribute("data-sort-value") : cell.textContent.trim();
    if (raw === "") return null;
    if (kind === "number") {
      var number = parseFloat(raw);
      return isNaN(number) ? null : number;
    }
    return raw.toLocaleLowerCase();
  }

  function sortBy(table, header, direction) {
    var index = header.cellIndex;
    var kind = header.getAttribute("data-sort");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = direction === "ascending" ? 1 : -1;
    rows.forEach(function (row, position) { row._position = position; });
    rows.sort(function (a, b) {
      var x = cellValue(a, index, kind), y = cellValue(b, index, kind);
      if (x === null && y === null) return a._position - b._position;
      if (x === null) return 1;
      if (y === null) return -1;
      if (x < y) return -sign;
      if (x > y) return sign;
      return a._position - b._position; // stable
    });
    rows.forEach(function (row, position) {
      body.appendChild(row);
      var rank = row.querySelector(".rank");
      if (rank) rank.textContent = String(position + 1);
    });
    table.querySelectorAll("thead th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", direction);
  }

  function enable(table) {
    table.querySelectorAll("thead th[data-sort]").forEach(function (header) {
      var kind = header.getAttribute("data-sort");
      if (kind !== "number" && kind !== "text") return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort-button";
      while (header.firstChild) button.appendChild(header.firstChild);
      header.appendChild(button);
      button.addEventListener("click", function () {
        var current = header.getAttribute("aria-sort");
        var best = header.getAttribute("data-sort-best") === "desc" ? "descending" : "ascending";
        var next = current === "ascending" ? "descending" : current === "descending" ? "ascending" : best;
        sortBy(table, header, next);
      });
    });
  }

  document.querySelectorAll("table[data-sortable]").forEach(enable);
})();
