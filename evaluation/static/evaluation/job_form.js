// Show only the chosen dataset's languages in the language list (the server checks it too).
(function () {
  "use strict";
  var dataset = document.getElementById("id_dataset");
  var languages = document.getElementById("id_languages");
  if (!dataset || !languages) return;
  function update() {
    Array.prototype.forEach.call(languages.options, function (option) {
      var offered = (" " + option.getAttribute("data-datasets") + " ").indexOf(" " + dataset.value + " ") !== -1;
      option.hidden = !offered;
      if (!offered) option.selected = false;
    });
  }
  dataset.addEventListener("change", update);
  update();
})();
