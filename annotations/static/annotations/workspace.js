// The annotator workspace, keyboard first. Every key handled here is printed on the page next
// to its button (keys come from the page's data-key attributes, defined once in
// annotations/kinds). No text from the page is ever inserted as HTML.
(function () {
  "use strict";
  var root = document.getElementById("workspace");
  if (!root) {
    // Pages around the workspace (queue empty, day cap): only "undo last" applies.
    var undoOnly = document.querySelector("[data-undo-form]");
    if (undoOnly) document.addEventListener("keydown", function (event) {
      if (event.key === "u" && !event.ctrlKey && !event.metaKey && !event.altKey) { event.preventDefault(); undoOnly.submit(); }
    });
    return;
  }
  var answerForm = root.querySelector("[data-answer-form]");
  var skipForm = root.querySelector("[data-skip-form]");
  var undoForm = root.querySelector("[data-undo-form]");
  var questions = Array.prototype.slice.call(root.querySelectorAll("[data-question]"));
  var started = performance.now();
  var mode = "answer"; // or "skip": digits then pick a skip reason
  var sent = false;

  function active() {
    return questions.findIndex(function (q) { return q.hasAttribute("data-active"); });
  }
  function activate(index) {
    if (index < 0 || index >= questions.length) return;
    questions.forEach(function (q, i) { q.toggleAttribute("data-active", i === index); });
  }
  function answered(question) {
    return !!question.querySelector("input[type=radio]:checked");
  }
  function firstUnanswered() {
    return questions.findIndex(function (q) { return !answered(q); });
  }
  function setMode(next) {
    mode = next;
    if (skipForm) skipForm.toggleAttribute("data-active", mode === "skip");
  }
  function submitOnce(form) {
    if (sent || !form) return;
    sent = true;
    form.submit();
  }
  function submitAnswer() {
    var missing = firstUnanswered();
    if (missing !== -1) {
      activate(missing);
      questions[missing].classList.add("needs-answer");
      return;
    }
    root.querySelector("[data-time]").value = String(Math.round(performance.now() - started));
    submitOnce(answerForm);
  }

  // Blur: outputs stay blurred until revealed (campaign setting).
  function reveal() {
    root.querySelectorAll(".output-text.blurred").forEach(function (el) { el.classList.remove("blurred"); el.classList.add("revealed"); });
  }
  var revealButton = root.querySelector("[data-reveal]");
  if (revealButton) revealButton.addEventListener("click", reveal);
  root.querySelectorAll(".output-text.blurred").forEach(function (el) { el.addEventListener("click", reveal); });

  // Clicking a choice also moves on, like the keys do.
  questions.forEach(function (question, index) {
    question.addEventListener("change", function () {
      question.classList.remove("needs-answer");
      // On to the next question (an unanswered one first); the last one stays active.
      var next = firstUnanswered();
      activate(next !== -1 ? next : Math.min(index + 1, questions.length - 1));
    });
  });
  answerForm.addEventListener("submit", function (event) {
    event.preventDefault();
    submitAnswer();
  });

  // Break reminder: minutes since this browser tab started on this campaign.
  var breakMinutes = parseInt(root.dataset.breakMinutes, 10) || 0;
  var breakBox = root.querySelector("[data-break-reminder]");
  if (breakMinutes > 0 && breakBox) {
    var key = "toxplatform-annotation-start-" + root.dataset.campaign;
    var start = parseInt(sessionStorage.getItem(key), 10);
    if (!start) { start = Date.now(); sessionStorage.setItem(key, String(start)); }
    var check = function () {
      if (Date.now() - start >= breakMinutes * 60000) breakBox.hidden = false;
    };
    check();
    setInterval(check, 15000);
    root.querySelector("[data-dismiss-break]").addEventListener("click", function () {
      breakBox.hidden = true;
      sessionStorage.setItem(key, String(Date.now()));
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    var key = event.key;
    if (mode === "skip") {
      if (key === "Escape" || key === "s") { setMode("answer"); event.preventDefault(); return; }
      var reason = skipForm && skipForm.querySelector('[data-skip-key="' + CSS.escape(key) + '"]');
      if (reason) { reason.checked = true; event.preventDefault(); submitOnce(skipForm); }
      return;
    }
    if (key === "Enter") {
      if (target && target.tagName === "BUTTON" && !target.hasAttribute("data-submit")) return;
      event.preventDefault();
      submitAnswer();
    } else if (key === "ArrowDown") {
      event.preventDefault(); activate(active() + 1);
    } else if (key === "ArrowUp") {
      event.preventDefault(); activate(active() - 1);
    } else if (key === "s" && skipForm) {
      event.preventDefault(); setMode("skip");
    } else if (key === "u" && undoForm) {
      event.preventDefault(); submitOnce(undoForm);
    } else if (key === "v") {
      event.preventDefault(); reveal();
    } else {
      var question = questions[active()];
      var input = question && question.querySelector('input[data-key="' + CSS.escape(key) + '"]');
      if (input) {
        event.preventDefault();
        input.checked = true;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }
  });
})();
