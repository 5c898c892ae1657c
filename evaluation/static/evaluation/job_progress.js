// Live progress on the job page: polls the progress endpoint every 2 s until the job ends,
// then reloads once so the results and samples appear.
(function () {
  "use strict";
  var section = document.querySelector("[data-job-progress]");
  if (!section || section.getAttribute("data-terminal") === "true") return;
  var url = section.getAttribute("data-url");
  var fill = section.querySelector("[data-progress-fill]");
  var text = section.querySelector("[data-progress-text]");
  var bar = section.querySelector("[role=progressbar]");
  var errorBox = section.querySelector("[data-progress-error]");
  var errorText = section.querySelector("[data-error-text]");
  var badge = document.querySelector(".page-head [data-status]");

  function render(data) {
    fill.style.width = data.percent + "%";
    fill.classList.toggle("done", data.status === "done");
    bar.setAttribute("aria-valuenow", String(data.percent));
    text.textContent = data.percent + "% · " + data.stage;
    section.querySelectorAll("[data-count]").forEach(function (node) {
      node.textContent = String(data[node.getAttribute("data-count")]);
    });
    if (badge) {
      badge.textContent = data.status;
      badge.className = "status status-" + data.status;
    }
    if (data.error) {
      errorText.textContent = data.error; // text, never HTML: error messages may quote user input
      errorBox.hidden = false;
    }
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
          window.location.reload();
        } else {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 2000);
})();
