// Auto-save: when the fill page is hidden or left (another tab, a link, closing the window) with
// answers changed since it was shown or last saved, post them as the draft to the form's
// data-autosave URL. The form's own fields travel with it: the CSRF token and the submission id,
// so the server saves the same in-progress QuestionnaireResponse the "Save and continue later"
// button does. sendBeacon (or fetch with keepalive) outlives the page. Without this script the
// button remains the way to save.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosave]");
  if (!form || !window.FormData) return;
  var url = form.getAttribute("data-autosave");
  var changed = false;
  var posting = false; // the form is being submitted: that post saves (or submits) the answers

  function mark() { changed = true; }

  function send() {
    var data = new FormData(form);
    if (navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(url, data)) return;
      } catch (e) { /* fall through to fetch */ }
    }
    if (window.fetch) {
      window.fetch(url, { method: "POST", body: data, keepalive: true, credentials: "same-origin" })
        .catch(function () { changed = true; });
    }
  }

  function save() {
    if (!changed || posting) return;
    changed = false;
    send();
  }

  form.addEventListener("input", mark);
  form.addEventListener("change", mark);
  form.addEventListener("submit", function () { posting = true; });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") save();
  });
  window.addEventListener("pagehide", save);
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) posting = false; // back from the cache: a new visit of the same page
  });
})();
