"""Whether another copy of a Questionnaire means what the packaged one means.

An EHR may hold a Questionnaire under the packaged instrument's ``url|version`` whose items or
answer options differ (edited labels, a swapped scale). The app scores by the packaged
instrument's codes, so such a copy would show one meaning and score another. A copy may stand in
for the packaged one only when every item (linkId, type, wording, order, conditions, controls)
and every answer option (code, display, ordinal value) is the same; title, narrative and
metadata may differ, since they do not change what an answer means.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from attach_fhir.canonical import ORDINAL_VALUE_EXT

Json = Mapping[str, Any]
#: A value quoted from the copy is cut here: the sentence must stay a sentence.
QUOTE_LIMIT = 60

#: Item keys compared one by one, with their own sentence; every other key is compared whole.
NAMED_KEYS = ("linkId", "type", "text", "answerOption", "item")
#: How the other keys are named to a clinician (any key not here by its FHIR name).
KEY_WORDS = {
    "_text": "formatted wording",
    "prefix": "number",
    "enableWhen": "when it is asked",
    "enableBehavior": "when it is asked",
    "required": "whether it must be answered",
    "repeats": "whether it takes several answers",
    "readOnly": "whether it can be answered",
    "initial": "pre-filled answer",
    "answerValueSet": "answer list",
    "maxLength": "length limit",
    "extension": "display or scoring settings",
}


def differences(copy: Json, packaged: Json) -> Iterator[str]:
    """Each way ``copy`` differs from ``packaged`` in what it asks or what an answer means,
    as a phrase a clinician can read; nothing when it means the same."""
    yield from _items(_list(copy.get("item")), _list(packaged.get("item")))
    if copy.get("contained", []) != packaged.get("contained", []):
        # Answer lists may live in contained ValueSets (answerValueSet "#id").
        yield "its contained answer lists differ"


def _quote(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "\u2026"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(theirs: Sequence[Any], ours: Sequence[Any]) -> Iterator[str]:
    for n, (their, our) in enumerate(zip(theirs, ours, strict=False), start=1):
        if not isinstance(their, Mapping):
            yield f"item {n} is not a question"
            continue
        found = list(_item(their, our))
        yield from found
        if found and their.get("linkId") != our.get("linkId"):
            return  # out of step: every later item would differ as well
    if len(theirs) != len(ours):
        more = [i.get("linkId") for i in ours[len(theirs) :] if isinstance(i, Mapping)]
        if more:
            yield f"item {more[0]} is missing"
        else:
            yield f"it has {len(theirs) - len(ours)} items the instrument does not have"


def _item(their: Json, our: Json) -> Iterator[str]:
    link_id = our.get("linkId")
    if their.get("linkId") != link_id:
        yield f"item {_quote(their.get('linkId'))} stands where item {link_id} should be"
        return
    if their.get("type") != our.get("type"):
        yield f"item {link_id} is of type {_quote(their.get('type'))}, not {our.get('type')}"
    if their.get("text") != our.get("text"):
        yield f"item {link_id} is worded differently"
    yield from _options(link_id, _list(their.get("answerOption")), _list(our.get("answerOption")))
    keys = {k for k in (*their, *our) if k not in NAMED_KEYS and their.get(k) != our.get(k)}
    if keys:
        words = sorted({KEY_WORDS.get(k, _quote(k)) for k in keys})
        yield f"item {link_id} differs in {', '.join(words[:4])}{', ...' if len(words) > 4 else ''}"
    yield from _items(_list(their.get("item")), _list(our.get("item")))


def _options(link_id: Any, theirs: Sequence[Any], ours: Sequence[Any]) -> Iterator[str]:
    if len(theirs) != len(ours):
        yield f"item {link_id} offers {len(theirs)} answers, not {len(ours)}"
        return
    for n, (their, our) in enumerate(zip(theirs, ours, strict=True), start=1):
        if not isinstance(their, Mapping):
            yield f"item {link_id}: answer {n} is not an answer"
            continue
        yield from _option(link_id, n, their, our)


def _option(link_id: Any, n: int, their: Json, our: Json) -> Iterator[str]:
    mine, yours = _coding(our), _coding(their)
    code = mine.get("code", n)
    found = []
    if (yours.get("system"), yours.get("code")) != (mine.get("system"), mine.get("code")):
        found.append(f"item {link_id}: answer {n} has code {_quote(yours.get('code'))}, not {code}")
    elif yours.get("display") != mine.get("display"):
        found.append(
            f'item {link_id}: answer {code} reads "{_quote(yours.get("display"))}" '
            f'where the instrument has "{mine.get("display") or ""}"'
        )
    if _ordinal(their) != _ordinal(our):
        found.append(
            f"item {link_id}: answer {code} counts {_quote(_ordinal(their))}, not {_ordinal(our)}"
        )
    if not found and their != our:
        found.append(f"item {link_id}: answer {code} differs in its other details")
    yield from found


def _coding(option: Json) -> Json:
    coding = option.get("valueCoding")
    if isinstance(coding, Mapping):
        return coding
    # A non-coded option (valueString, valueInteger ...): its value is its code and its label.
    value = next((v for k, v in option.items() if k.startswith("value")), None)
    return {"code": value, "display": value}


def _ordinal(option: Json) -> Any:
    for ext in _list(option.get("extension")):
        if isinstance(ext, Mapping) and ext.get("url") == ORDINAL_VALUE_EXT:
            return ext.get("valueDecimal")
    return None
