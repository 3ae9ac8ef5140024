// Progressive enhancement for enableWhen: show or hide items as the user answers. The server
// applies the same rules (smart_app/forms/enable_when.py) to what is posted, so the form is right
// without this script; it only saves a round trip. Conditions come from data-when attributes:
// q is the question's linkId, s (when present) the repeating-group instance it is answered in
// (".2" reads the field "q.2:<linkId>"), as smart_app/forms/form_fields.py names the fields.
(function () {
  "use strict";
  var NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
  var form = document.querySelector("form");
  if (!form) return;
  var items = Array.prototype.map.call(form.querySelectorAll("[data-when]"), function (el) {
    return { el: el, when: JSON.parse(el.getAttribute("data-when")), any: el.getAttribute("data-behavior") === "any" };
  });
  Array.prototype.forEach.call(form.querySelectorAll("[data-nojs]"), function (el) { el.hidden = true; });
  if (!items.length) return;

  function answers(c) {
    var out = [];
    var scope = c.s || "";
    var names = ["q" + scope + ":" + c.q, "o" + scope + ":" + c.q];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (names.indexOf(el.name) < 0 || el.closest("[hidden]")) return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      if (el.tagName === "SELECT") {
        Array.prototype.forEach.call(el.selectedOptions, function (o) { if (o.value.trim()) out.push(o.value.trim()); });
      } else if (el.value.trim()) {
        out.push(el.value.trim());
      }
    });
    return out;
  }

  function compare(kind, op, have, want) {
    if (kind === "number") {
      if (!NUMBER.test(have) || !NUMBER.test(want)) return false;
      have = Number(have); want = Number(want);
    }
    switch (op) {
      case "=": return have === want;
      case ">": return have > want;
      case "<": return have < want;
      case ">=": return have >= want;
      case "<=": return have <= want;
      default: return false;
    }
  }

  function holds(c) {
    var have = answers(c);
    if (c.op === "exists") return (have.length > 0) === (c.v === "true");
    if (c.op === "!=") return !have.some(function (a) { return compare(c.t, "=", a, c.v); });
    return have.some(function (a) { return compare(c.t, c.op, a, c.v); });
  }

  function update() {
    // Repeat until stable: showing one item can enable another that depends on it.
    for (var round = 0; round <= items.length; round++) {
      var changed = false;
      items.forEach(function (it) {
        var on = it.any ? it.when.some(holds) : it.when.every(holds);
        if (it.el.hidden === on) { it.el.hidden = !on; changed = true; }
      });
      if (!changed) return;
    }
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
