"""Items and SDC expressions for the generated Questionnaires.

Every expression reads only the QuestionnaireResponse (``%resource``): an answer's scale point is
its ``valueCoding.code`` (the option's ``ordinalValue`` equals it), because fhirpathpy 2.x has no
``ordinal()``/``weight()`` function. See docs/scoring-model.md.
"""

from __future__ import annotations

import html
from typing import Any

from attach_fhir.canonical import (
    AGREEMENT_7_SYSTEM,
    ATTACHMENT_PATTERN_SYSTEM,
    CALCULATED_EXPRESSION_EXT,
    ORDINAL_VALUE_EXT,
    SCORES_SYSTEM,
    VARIABLE_EXT,
    WORDING_SOURCE_EXT,
)

Json = dict[str, Any]
VERIFIED = "verified in 2 sources"
ENCODING_VERSION = "1.0.0"
#: Resources whose content changed since 1.0.0 was published, with their new version (a new
#: version for any change of wording, options, displays or expressions; the scoring algorithms
#: keep ENCODING_VERSION while they compute the same). 1.1.0: the ECR, ECR-RS and PRFQ gained a
#: "which end is agree" display item; the ECR category returns its answerOption Coding; coded
#: options display their CodeSystem's display (ECR, RQ); agreement-7 names designations.
#: ECR-R 1.1.0, ECR, ECR-RS and PRFQ 1.2.0: numbered items (SDC ``prefix``, "1.").
CONTENT_VERSIONS = {
    "ecr-r": "1.1.0",
    "ecr": "1.2.0",
    "ecr-rs": "1.2.0",
    "prfq": "1.2.0",
    "rq": "1.1.0",
}
CODESYSTEM_VERSIONS = {"agreement-7": "1.1.0"}
#: Earlier versions whose responses the current one scores identically (only wording, displays
#: or display items changed). Each is checked against the published file kept in
#: tests/fixtures/data/published/ (tests/lib/test_questionnaire_versions.py).
SCORES_EARLIER_VERSIONS = {
    "ecr-r": ["1.0.0"],
    "ecr": ["1.0.0", "1.1.0"],
    "ecr-rs": ["1.0.0", "1.1.0"],
    "prfq": ["1.0.0", "1.1.0"],
    "rq": ["1.0.0"],
}
PUBLISHER = "attach-fhir contributors"
PATTERNS = ["secure", "fearful", "preoccupied", "dismissing"]
RENDERING_XHTML_EXT = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"

#: Scale point -> the verified labels the instruments give it, filled by ``scale_options`` as the
#: builders run, so the agreement-7 CodeSystem defines every label an option displays.
SCALE_LABELS: dict[str, set[str]] = {}


class SourceError(Exception):
    """The reference data does not support what the encoding needs."""


def verified(confidence: Any, what: str) -> None:
    """Refuse to encode a score from a part not verified in 2 sources."""
    if confidence != VERIFIED:
        raise SourceError(f"{what}: confidence is {confidence!r}, not {VERIFIED!r}")


def variable_name(code: str) -> str:
    """The SDC variable holding a score: the code in lower camel case (``ecrRAnxiety``)."""
    head, *rest = code.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --- items -------------------------------------------------------------------------------------


def scale_options(scale: Json, label_confidence: str) -> list[Json]:
    """Answer options 1..points; a point's label only when the labels are verified."""
    options = []
    for point in range(1, int(scale["points"]) + 1):
        coding: Json = {"system": AGREEMENT_7_SYSTEM, "code": str(point)}
        label = scale["values"].get(str(point))
        if label and label_confidence == VERIFIED:
            coding["display"] = label
            SCALE_LABELS.setdefault(str(point), set()).add(label)
        options.append(
            {
                "extension": [{"url": ORDINAL_VALUE_EXT, "valueDecimal": point}],
                "valueCoding": coding,
            }
        )
    return options


def item_number(item: Json) -> str:
    """The item's number as the respondent reads it before the text (SDC ``prefix``): ``12.``"""
    return f"{item['number']}."


def choice_item(link_id: str, item: Json, options: list[Json], prefix: str | None = None) -> Json:
    """A required choice item with the instrument's wording, verbatim."""
    verified(item["confidence"]["text"], f"item {item['number']} text")
    out: Json = {"linkId": link_id}
    if prefix:
        out["prefix"] = prefix
    out.update({"text": item["text"], "type": "choice", "required": True, "answerOption": options})
    return out


def pattern_display(code: str) -> str:
    """The attachment-pattern CodeSystem's display of a pattern (``Secure``)."""
    return code.capitalize()


def pattern_coding(code: str, paragraph: str | None = None) -> Json:
    """A Coding of the attachment-pattern CodeSystem, with its display.

    ``paragraph`` (an RQ prototype description) goes into a ``rendering-xhtml`` extension on the
    display: renderers show it to the respondent, while the display stays the CodeSystem's.
    """
    coding: Json = {
        "system": ATTACHMENT_PATTERN_SYSTEM,
        "code": code,
        "display": pattern_display(code),
    }
    if paragraph is not None:
        xhtml = html.escape(paragraph, quote=False)
        coding["_display"] = {"extension": [{"url": RENDERING_XHTML_EXT, "valueString": xhtml}]}
    return coding


def ours(item: Json) -> Json:
    """Mark an item whose wording is the project's, not the instrument's."""
    item.setdefault("extension", []).append({"url": WORDING_SOURCE_EXT, "valueCode": "attach-fhir"})
    return item


def direction_item(scale: Json) -> Json:
    """A display item (our wording) naming the agree end of a scale whose labels are unverified.

    The scale's points and its direction (reverse keys are relative to agreement) are verified;
    only the authors' anchor wording is not, so no option gets a label and this text is ours.
    """
    verified(scale["confidence"]["points"], "scale points")
    points = int(scale["points"])
    text = f"Rate each statement from 1 (disagree) to {points} (agree)."
    return ours({"linkId": "direction", "text": text, "type": "display"})


def gate_item(link_id: str, text: str) -> Json:
    """A boolean question (our wording) that enables a block of items."""
    return ours({"linkId": link_id, "text": text, "type": "boolean"})


def enabled_when_true(item: Json, gate: str) -> Json:
    """Enable ``item`` only when the boolean ``gate`` is answered true."""
    item["enableWhen"] = [{"question": gate, "operator": "=", "answerBoolean": True}]
    return item


# --- scores --------------------------------------------------------------------------------------


def mean_spec(
    code: str,
    items: list[tuple[str, bool]],
    desirable: str | None,
    focus: str | None = None,
    scale: tuple[int, int] = (1, 7),
) -> Json:
    """A scoring-model entry: mean of items, reversed ones as (min + max) - value."""
    entry: Json = {
        "code": code,
        "linkId": f"scores.{code}",
        "method": "mean",
        "items": [
            {"linkId": link, "reverse": True} if rev else {"linkId": link} for link, rev in items
        ],
        "range": list(scale),
    }
    if desirable:
        entry["desirable"] = desirable
    if focus:
        entry["focus"] = focus
    return entry


def _select(link_ids: list[str]) -> str:
    union = " | ".join(f"'{link}'" for link in link_ids)
    return f"%resource.repeat(item).where(linkId in ({union}))"


def mean_expression(entry: Json) -> str:
    """FHIRPath: the mean when every item has an answer, else empty."""
    low, high = entry["range"]
    plain = [i["linkId"] for i in entry["items"] if not i.get("reverse")]
    rev = [i["linkId"] for i in entry["items"] if i.get("reverse")]
    parts = []
    if plain:
        parts.append(f"{_select(plain)}.answer.value.code.select($this.toDecimal()).sum()")
    if rev:
        parts.append(
            f"{_select(rev)}.answer.value.code.select({low + high} - $this.toDecimal()).sum()"
        )
    n = len(entry["items"])
    every = _select([i["linkId"] for i in entry["items"]])
    return f"iif({every}.answer.count() = {n}, ({' + '.join(parts)}) / {n}, {{}})"


def linear_expression(terms: list[Json], constant: float) -> str:
    """FHIRPath: sum of weight x score variable, plus the constant."""
    text = ""
    for term in terms:
        weight = term["weight"]
        sign = "-" if weight < 0 else "+"
        factor = "" if abs(weight) == 1 else f"{_number(abs(weight))} * "
        text += f" {sign} {factor}%{variable_name(term['score'])}"
    text = text.removeprefix(" + ").removeprefix(" ")
    if text.startswith("- "):
        text = "-" + text[2:]
    if constant:
        text += f" {'-' if constant < 0 else '+'} {_number(abs(constant))}"
    return text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def argmax_variables(entry: Json) -> list[tuple[str, str]]:
    """Variables for an argmax score: one per candidate, then the winning category."""
    base = variable_name(entry["code"])
    names = [base + c["category"][:1].upper() + c["category"][1:] for c in entry["candidates"]]
    out = [
        (name, linear_expression(c["terms"], c["constant"]))
        for name, c in zip(names, entry["candidates"], strict=True)
    ]
    # Ties go to the first candidate listed: each test compares only with later candidates.
    chain = f"'{entry['candidates'][-1]['category']}'"
    for i in range(len(names) - 2, -1, -1):
        test = " and ".join(f"%{names[i]} >= %{later}" for later in names[i + 1 :])
        chain = f"iif({test}, '{entry['candidates'][i]['category']}', {chain})"
    inputs = sorted({t["score"] for c in entry["candidates"] for t in c["terms"]})
    guard = " and ".join(f"%{variable_name(s)}.exists()" for s in inputs)
    # The winning category as the Coding of the score item's own answerOption, not a string: a
    # renderer fills a coded item only with one of its options (LHC-Forms drops a plain string).
    options = f"%questionnaire.repeat(item).where(linkId = '{entry['linkId']}').answerOption"
    out.append((base, f"{options}.valueCoding.where(code = iif({guard}, {chain}, {{}}))"))
    return out


def score_variables(entries: list[Json]) -> list[tuple[str, str]]:
    """SDC variables, in evaluation order, computing every score of the model."""
    out: list[tuple[str, str]] = []
    for entry in entries:
        if entry["method"] == "mean":
            out.append((variable_name(entry["code"]), mean_expression(entry)))
        elif entry["method"] == "linear":
            out.append(
                (variable_name(entry["code"]), linear_expression(entry["terms"], entry["constant"]))
            )
        else:
            out.extend(argmax_variables(entry))
    return out


def variable_ext(name: str, expression: str) -> Json:
    """The SDC ``variable`` extension."""
    return {
        "url": VARIABLE_EXT,
        "valueExpression": {"name": name, "language": "text/fhirpath", "expression": expression},
    }


def score_item(entry: Json, display: str) -> Json:
    """A read-only score item whose calculatedExpression reads the score's variable."""
    item: Json = {
        "extension": [
            {
                "url": CALCULATED_EXPRESSION_EXT,
                "valueExpression": {
                    "language": "text/fhirpath",
                    "expression": f"%{variable_name(entry['code'])}",
                },
            }
        ],
        "linkId": entry["linkId"],
        "code": [{"system": SCORES_SYSTEM, "code": entry["code"], "display": display}],
        "text": display,
        "type": "decimal",
        "readOnly": True,
    }
    if entry["method"] == "argmax":
        item["type"] = "choice"
        item["answerOption"] = [
            {"valueCoding": pattern_coding(c["category"])} for c in entry["candidates"]
        ]
    return item
