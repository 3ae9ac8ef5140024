"""enableWhen on raw form values: the server-side twin of ``static/enable-when.js``.

Conditions are compiled to the strings the browser posts (an option's form value, ``true`` /
``false``, a number), so the script and the server decide the same way from the same data.

Inside repeating groups a question has one occurrence per instance; a condition reads the nearest
one as FHIR R4 defines it for ``enableWhen.question`` (the same instance first, then the nearest
preceding occurrence, then the nearest following), and tells the script which through the scope
it records on the item (``when_scopes``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smart_app.forms.form_items import FormItem

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
CONDITION_KINDS = {
    "answerCoding": "coding",
    "answerBoolean": "boolean",
    "answerInteger": "number",
    "answerDecimal": "number",
    "answerDate": "text",
    "answerDateTime": "text",
    "answerString": "text",
}


def answered(item: FormItem) -> list[str]:
    """The item's non-blank raw answers (none when it is disabled, or takes no answers: a
    value posted under a group's or a read-only item's name answers nothing, as in the script)."""
    if not item.enabled or not item.is_question:
        return []
    found = [v.strip() for v in item.values if v.strip()]
    return [*found, item.other.strip()] if item.other.strip() else found


Targets = dict[int, list["FormItem | None"]]


def evaluate_enable_when(items: list[FormItem]) -> None:
    """Set ``enabled`` on every item from its conditions and its ancestors, to a fixpoint."""
    flat = _walk(items)
    asked = {c["q"] for item in flat for c in item.when}
    occurrences: dict[str, list[tuple[int, FormItem]]] = {}
    for position, item in enumerate(flat):
        # an instance shares its group's linkId but is never the question
        if item.link_id in asked and not item.instance:
            occurrences.setdefault(item.link_id, []).append((position, item))
    targets: Targets = {}
    for position, item in enumerate(flat):
        if item.when:
            found = [_nearest(occurrences.get(c["q"], []), item, position) for c in item.when]
            targets[id(item)] = found
            item.when_scopes = [t.path if t else () for t in found]
    for _ in range(len(flat) + 1):
        changed = _apply(items, targets, parent_on=True)
        if not changed:
            return


def _nearest(found: list[tuple[int, FormItem]], item: FormItem, position: int) -> FormItem | None:
    """The occurrence a condition of ``item`` reads: deepest shared instances, then preceding."""
    if len(found) < 2:
        return found[0][1] if found else None

    def shared(other: FormItem) -> int:
        n = 0
        while n < min(len(other.path), len(item.path)) and other.path[n] == item.path[n]:
            n += 1
        return n

    best = max(shared(other) for _, other in found)
    closest = [(at, other) for at, other in found if shared(other) == best]
    before = [other for at, other in closest if at < position]
    return before[-1] if before else closest[0][1]


def _apply(items: list[FormItem], targets: Targets, parent_on: bool) -> bool:
    changed = False
    for item in items:
        on = parent_on
        if item.when:
            found = targets[id(item)]
            results = [_holds(c, t) for c, t in zip(item.when, found, strict=True)]
            on = on and (any(results) if item.behavior == "any" else all(results))
        changed |= on != item.enabled
        item.enabled = on
        changed |= _apply(item.children, targets, on)
    return changed


def _holds(cond: dict[str, Any], target: FormItem | None) -> bool:
    have = answered(target) if target else []
    op, want, kind = cond["op"], cond["v"], cond["t"]
    if op == "exists":
        return bool(have) == (want == "true")
    if op == "!=":
        return not any(_compare(kind, "=", a, want) for a in have)
    return any(_compare(kind, op, a, want) for a in have)


def _compare(kind: str, op: str, have: str, want: str) -> bool:
    left: Any = have
    right: Any = want
    if kind == "number":
        if not NUMBER.fullmatch(have) or not NUMBER.fullmatch(want):
            return False
        left, right = float(have), float(want)
    return {
        "=": left == right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }.get(op, False)


def compile_condition(raw: Mapping[str, Any], index: dict[str, FormItem]) -> dict[str, Any]:
    """One enableWhen as ``{q: linkId, op, t: kind, v: token}``, tokens as the form posts them."""
    question = str(raw.get("question", ""))
    op = str(raw.get("operator", "="))
    key = next((k for k in CONDITION_KINDS if k in raw), None)
    if key is None:
        # An unsupported answer type (Quantity, Reference...) never matches.
        return {"q": question, "op": op, "t": "none", "v": "\x00"}
    kind, want = CONDITION_KINDS[key], raw[key]
    if op == "exists":
        return {"q": question, "op": op, "t": "exists", "v": "true" if want else "false"}
    if kind == "coding":
        target = index.get(question)
        options = target.options if target else []
        token = next((o.key for o in options if same_coding(o.answer, want)), "\x00")
        return {"q": question, "op": op, "t": "text", "v": token}
    if kind == "boolean":
        return {"q": question, "op": op, "t": "text", "v": "true" if want else "false"}
    return {"q": question, "op": op, "t": kind, "v": str(want)}


def same_coding(answer: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """True when an option's valueCoding is the wanted Coding (system compared when both set)."""
    coding = answer.get("valueCoding")
    if not coding or coding.get("code") != want.get("code"):
        return False
    return not (coding.get("system") and want.get("system")) or coding["system"] == want["system"]


def _walk(items: list[FormItem]) -> list[FormItem]:
    return [x for item in items for x in (item, *_walk(item.children))]
