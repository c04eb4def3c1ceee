// Small behaviours without inline scripts (the pages' Content-Security-Policy forbids them).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // a picker submits its form when changed
  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => {
      const page = select.form.querySelector("input[name=page]");
      if (page) page.remove();
      select.form.submit();
    });
  }
  // epoch milliseconds from the Flink REST API shown as UTC times
  for (const cell of document.querySelectorAll("td.ms[data-ms]")) {
    const ms = Number(cell.dataset.ms);
    if (cell.dataset.ms && Number.isFinite(ms) && ms > 0) {
      cell.textContent = new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
    }
  }
});
