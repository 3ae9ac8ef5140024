// The "12 of 36 answered" count, kept live as the user answers. The server writes the same count
// into the page (QuestionnaireForm.progress), so it is right without this script after every
// round trip. A question is a ".q" element (not read-only, not unsupported) outside [hidden].
(function () {
  "use strict";
  var form = document.querySelector("form");
  var answered = document.getElementById("answered");
  var asked = document.getElementById("asked");
  if (!form || !answered || !asked) return;

  function hasAnswer(q) {
    var fields = q.querySelectorAll("input, select, textarea");
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i];
      if (el.closest(".q") !== q || el.type === "hidden") continue;
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) return true;
      } else if (el.tagName === "SELECT") {
        for (var j = 0; j < el.selectedOptions.length; j++) if (el.selectedOptions[j].value.trim()) return true;
      } else if (el.value.trim()) {
        return true;
      }
    }
    return false;
  }

  function count() {
    var shown = 0, done = 0;
    Array.prototype.forEach.call(form.querySelectorAll(".q:not(.ro):not(.unsupported)"), function (q) {
      if (q.closest("[hidden]")) return;
      shown += 1;
      if (hasAnswer(q)) done += 1;
    });
    if (String(done) !== answered.textContent) answered.textContent = String(done);
    if (String(shown) !== asked.textContent) asked.textContent = String(shown);
  }

  form.addEventListener("change", function () { setTimeout(count, 0); });
  form.addEventListener("input", count);
})();
