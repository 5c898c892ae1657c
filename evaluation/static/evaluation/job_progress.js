// Live job progress. Every element marked data-job-progress (the job page's progress card,
// each unfinished row of the job list) polls its data-url until the job ends, and updates
// the progress bar, status badge, counts and error inside it (as text, never HTML: error
// messages may quote user input). When the job ends, data-on-end="reload" reloads the page
// (the job page then shows its results); otherwise the element just loses its cancel form.
(function () {
  "use strict";

  function watch(element) {
    var url = element.getAttribute("data-url");
    var every = Number(element.getAttribute("data-poll-ms")) || 2000;
    var withStage = element.getAttribute("data-show-stage") === "true";
    var fill = element.querySelector("[data-progress-fill]");
    var text = element.querySelector("[data-progress-text]");
    var bar = element.querySelector("[role=progressbar]");
    var errorBox = element.querySelector("[data-progress-error]");
    var errorText = element.querySelector("[data-error-text]");
    var badgeSelector = element.getAttribute("data-badge");
    var badge = badgeSelector ? document.querySelector(badgeSelector) : element.querySelector("[data-status]");

    function render(data) {
      fill.style.width = data.percent + "%";
      fill.classList.toggle("done", data.status === "done");
      bar.setAttribute("aria-valuenow", String(data.percent));
      text.textContent = data.percent + "%" + (withStage ? " · " + data.stage : "");
      element.querySelectorAll("[data-count]").forEach(function (node) {
        node.textContent = Number(data[node.getAttribute("data-count")]).toLocaleString("en-US");
      });
      if (badge) {
        badge.textContent = data.status;
        badge.className = "status status-" + data.status;
      }
      var notice = element.querySelector("[data-worker-notice]");
      if (notice && data.workers_missing && !data.workers_missing.length) notice.hidden = true;
      if (data.error && errorBox) {
        errorText.textContent = data.error;
        errorBox.hidden = false;
      }
    }

    function ended() {
      element.setAttribute("data-terminal", "true");
      if (element.getAttribute("data-on-end") === "reload") {
        window.location.reload();
        return;
      }
      var cancel = element.querySelector("[data-cancel-form]");
      if (cancel) cancel.remove();
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          render(data);
          if (data.terminal) ended();
          else window.setTimeout(poll, every);
        })
        .catch(function () { window.setTimeout(poll, every * 2); });
    }

    window.setTimeout(poll, every);
  }

  document.querySelectorAll("[data-job-progress][data-terminal=false]").forEach(watch);
})();
