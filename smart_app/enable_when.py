"""enableWhen on raw form values: the server-side twin of ``static/enable-when.js``.

Conditions are compiled to the strings the browser posts (an option's form value, ``true`` /
``false``, a number), so the script and the server decide the same way from the same data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smart_app.questionnaire_form import FormItem

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
    """The item's non-blank raw answers (none when it is disabled)."""
    if not item.enabled:
        return []
    found = [v.strip() for v in item.values if v.strip()]
    return [*found, item.other.strip()] if item.other.strip() else found


def evaluate_enable_when(items: list[FormItem]) -> None:
    """Set ``enabled`` on every item from its conditions and its ancestors, to a fixpoint."""
    flat = list(_walk(items))
    index = {i.link_id: i for i in flat}
    for _ in range(len(flat) + 1):
        changed = _apply(items, index, parent_on=True)
        if not changed:
            return


def _apply(items: list[FormItem], index: dict[str, FormItem], parent_on: bool) -> bool:
    changed = False
    for item in items:
        results = [_holds(c, index) for c in item.when]
        own = any(results) if item.behavior == "any" else all(results)
        on = parent_on and (own if item.when else True)
        changed |= on != item.enabled
        item.enabled = on
        changed |= _apply(item.children, index, on)
    return changed


def _holds(cond: dict[str, Any], index: dict[str, FormItem]) -> bool:
    target = index.get(cond["q"])
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
