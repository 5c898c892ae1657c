// The job form, as you fill it in (plain script, no build step; the server checks everything again):
// - only the chosen dataset's languages are offered;
// - select all / none for the language and category checkboxes, with a count;
// - the chosen detox method's description and parameters;
// - the job's size (prompts x k x max new tokens), a time estimate from the model's measured
//   speed, and the "queue this large job" confirmation above the large-job size.
(function () {
  "use strict";
  var form = document.querySelector("form.job-form");
  var dataNode = document.getElementById("job-size-data");
  if (!form || !dataNode) return;
  var data = JSON.parse(dataNode.textContent);
  var field = function (name) { return form.querySelector("[name=" + name + "]"); };
  var dataset = field("dataset");

  function boxes(name) { return Array.prototype.slice.call(form.querySelectorAll("input[type=checkbox][name=" + name + "]")); }
  function offered(box) { var item = box.closest("li"); return !(item && item.hidden); }
  function fmt(n) { return Math.round(n).toLocaleString("en-US"); }

  // Languages of the chosen dataset only.
  function filterLanguages() {
    boxes("languages").forEach(function (box) {
      var on = (" " + box.getAttribute("data-datasets") + " ").indexOf(" " + dataset.value + " ") !== -1;
      box.closest("li").hidden = !on;
      if (!on) box.checked = false;
    });
    form.querySelectorAll(".check-group").forEach(function (group) {
      group.hidden = !group.querySelector("li:not([hidden])");
    });
  }

  // Select all / none, and "n of m ticked".
  function counts() {
    form.querySelectorAll("[data-check-group]").forEach(function (group) {
      var all = Array.prototype.filter.call(group.querySelectorAll("input[type=checkbox]"), offered);
      var ticked = all.filter(function (box) { return box.checked; }).length;
      var out = group.querySelector("[data-check-count]");
      if (out) out.textContent = ticked + " of " + all.length + " ticked";
    });
  }
  form.querySelectorAll("[data-check-group] [data-check]").forEach(function (button) {
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-check") === "all";
      button.closest("[data-check-group]").querySelectorAll("input[type=checkbox]").forEach(function (box) {
        if (offered(box)) box.checked = on;
      });
      update();
    });
  });

  // The chosen method's declared summary and parameters.
  function showMethod() {
    var method = field("method");
    form.querySelectorAll("[data-method-info]").forEach(function (node) {
      node.hidden = node.getAttribute("data-method-info") !== method.value;
    });
  }

  function duration(seconds) {
    if (seconds < 90) return Math.max(1, Math.round(seconds)) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " days";
  }

  // Prompts x k x max new tokens, as the service will count them (before a category filter).
  function size() {
    var counts = data.counts[dataset.value] || {};
    var chosen = boxes("languages").filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
    var languages = chosen.length ? chosen : Object.keys(counts);
    var split = (field("prompt_split") || {}).value || "all";
    var perLanguage = parseInt(field("prompts_per_language").value, 10);
    var prompts = 0;
    languages.forEach(function (code) {
      var n = (counts[code] || {})[split] || 0;
      prompts += perLanguage > 0 ? Math.min(n, perLanguage) : n;
    });
    var k = parseInt(field("k").value, 10) || 0;
    var tokens = parseInt(field("max_new_tokens").value, 10) || 0;
    return { prompts: prompts, languages: languages.length, k: k, tokens: tokens, work: prompts * k * tokens,
             filtered: boxes("categories").some(function (box) { return box.checked; }) };
  }

  var box = form.querySelector("[data-job-size]");
  var text = box.querySelector("[data-size-text]");
  var time = box.querySelector("[data-size-time]");
  var confirm = box.querySelector("[data-confirm-large]");
  var confirmBox = field("confirm_large");

  function update() {
    counts();
    var s = size();
    var limits = data.limits;
    text.textContent = fmt(s.prompts) + " prompts (" + s.languages + " language" + (s.languages === 1 ? "" : "s") +
      ") × k = " + s.k + " samples × " + s.tokens + " new tokens = " + fmt(s.work) + " tokens" +
      (s.filtered ? " at most (the harm-category filter keeps fewer prompts)" : "") + ".";
    box.classList.toggle("too-large", s.work > limits.max_work);
    box.classList.toggle("large", s.work > limits.confirm_work);
    if (s.work > limits.max_work) {
      text.textContent += " That is more than the " + fmt(limits.max_work) + " one job may generate here: choose fewer prompts or languages, a smaller k, or fewer tokens.";
    } else if (s.work > limits.confirm_work) {
      text.textContent += " A large job (above " + fmt(limits.confirm_work) + "): tick the box below to queue it.";
    }
    confirm.hidden = !(s.work > limits.confirm_work) && !confirm.querySelector(".errorlist");
    if (confirm.hidden) confirmBox.checked = false;
    var model = field("model");
    var speed = model && data.speeds[model.value];
    if (speed) {
      time.textContent = "About " + duration(s.work / speed) + " at this model's measured speed (" +
        speed.toFixed(1) + " tokens/s over its latest finished jobs, scoring included).";
    } else {
      time.textContent = "No time estimate: the chosen model has no finished job here yet.";
    }
  }

  dataset.addEventListener("change", function () { filterLanguages(); update(); });
  field("method").addEventListener("change", showMethod);
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  filterLanguages();
  showMethod();
  update();
})();
