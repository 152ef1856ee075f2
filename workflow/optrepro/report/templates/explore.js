// Sort and filter the report's tables in the page: a click on a header sorts by that column (again: reversed),
// numbers by value and text alphabetically, missing values last; the box above a table hides the rows that do
// not contain its text. Inlined into report.html, allowed by its Content-Security-Policy through its hash.
"use strict";
(() => {
  const NUMBER = /[-−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?/i;
  const key = (cell, numeric) => {
    const text = cell.textContent.trim();
    if (!numeric) return text.toLowerCase();
    const found = text.match(NUMBER);
    return found ? parseFloat(found[0].replace("−", "-")) : null;
  };
  const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  for (const table of document.querySelectorAll("table[data-explore]")) {
    const body = table.tBodies[0];
    const filter = document.createElement("input");
    filter.type = "search";
    filter.placeholder = "filter rows";
    filter.className = "filter";
    filter.addEventListener("input", () => {
      const wanted = filter.value.trim().toLowerCase();
      for (const row of body.rows) row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
    });
    (table.closest(".scroll") || table).before(filter);
    table.querySelectorAll("thead th").forEach((header, column) => {
      header.classList.add("sortable");
      header.title = "sort by this column";
      header.addEventListener("click", () => {
        const direction = header.dataset.sorted === "ascending" ? "descending" : "ascending";
        table.querySelectorAll("thead th").forEach((other) => delete other.dataset.sorted);
        header.dataset.sorted = direction;
        const numeric = header.dataset.numeric === "1";
        const rows = [...body.rows].map((row, index) => [key(row.cells[column], numeric), index, row]);
        rows.sort((a, b) => {
          if ((a[0] === null) !== (b[0] === null)) return a[0] === null ? 1 : -1;
          return (direction === "ascending" ? compare(a[0], b[0]) : compare(b[0], a[0])) || a[1] - b[1];
        });
        body.append(...rows.map((entry) => entry[2]));
      });
    });
  }
})();
