// Live progress on the job list: every unfinished row polls its job's progress endpoint
// every 3 s and updates its bar and status; a row whose job ended stops and loses its
// cancel button.
(function () {
  "use strict";
  var POLL_MS = 3000;

  function watch(row) {
    var url = row.getAttribute("data-url");
    var fill = row.querySelector("[data-progress-fill]");
    var text = row.querySelector("[data-progress-text]");
    var bar = row.querySelector("[role=progressbar]");
    var badge = row.querySelector("[data-status]");

    function render(data) {
      fill.style.width = data.percent + "%";
      fill.classList.toggle("done", data.status === "done");
      bar.setAttribute("aria-valuenow", String(data.percent));
      text.textContent = data.percent + "%";
      badge.textContent = data.status; // text, never HTML
      badge.className = "status status-" + data.status;
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          render(data);
          if (data.terminal) {
            row.setAttribute("data-terminal", "true");
            var cancel = row.querySelector("[data-cancel-form]");
            if (cancel) cancel.remove();
          } else {
            window.setTimeout(poll, POLL_MS);
          }
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 2); });
    }

    window.setTimeout(poll, POLL_MS);
  }

  document.querySelectorAll("tr[data-job-row][data-terminal=false]").forEach(watch);
})();
