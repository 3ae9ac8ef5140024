"""Validation of instrument files: every problem, each with the path where it is.

A Questionnaire must parse as an R4 (R4B model) Questionnaire, carry a scoring model that passes
``schema/scoring-model.schema.json`` and agrees with its items (docs/scoring-model.md), have
unique linkIds, and SDC expressions that fhirpathpy parses and can evaluate in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from attach_fhir.canonical import (
    CALCULATED_EXPRESSION_EXT,
    NOT_VALIDATED_EXT,
    ORDINAL_VALUE_EXT,
    SCORES_SYSTEM,
    SCORING_MODEL_EXT,
    VARIABLE_EXT,
)
from attach_fhir.expressions import check_expression
from attach_fhir.fhir_models import CodeSystem, Questionnaire

Json = dict[str, Any]
#: Environment variables an SDC renderer defines for a calculatedExpression.
STATUSES = {"draft", "active", "retired", "unknown"}
ITEM_TYPES = {
    "group",
    "display",
    "question",
    "boolean",
    "decimal",
    "integer",
    "date",
    "dateTime",
    "time",
    "string",
    "text",
    "url",
    "choice",
    "open-choice",
    "attachment",
    "reference",
    "quantity",
}
SDC_CONSTANTS = {"resource", "context", "questionnaire", "rootResource", "ucum", "sct", "loinc"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, and where: ``path`` is a JSON path inside the file (or the file)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@cache
def scoring_model_validator() -> Draft202012Validator:
    """The JSON Schema validator of the scoring-model document."""
    text = files("attach_fhir").joinpath("schema/scoring-model.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _pydantic_problems(exc: ValidationError) -> Iterator[Problem]:
    for error in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        yield Problem(path.lstrip(".") or "$", error["msg"])


def _items_with_paths(items: list[Json], path: str = "item") -> Iterator[tuple[str, Json]]:
    for index, item in enumerate(items):
        here = f"{path}[{index}]"
        yield here, item
        yield from _items_with_paths(item.get("item", []), f"{here}.item")


def _expressions(questionnaire: Json) -> Iterator[Problem]:
    """Root variables in order (each may use the earlier ones), then calculatedExpressions."""
    defined = set(SDC_CONSTANTS)
    for n, ext in enumerate(questionnaire.get("extension", [])):
        if ext.get("url") == VARIABLE_EXT:
            value = ext.get("valueExpression", {})
            path = f"extension[{n}].valueExpression.expression"
            yield from _expression_problems(path, value.get("expression", ""), defined)
            defined.add(value.get("name", ""))
    for item_path, item in _items_with_paths(questionnaire.get("item", [])):
        for n, ext in enumerate(item.get("extension", [])):
            if ext.get("url") == CALCULATED_EXPRESSION_EXT:
                path = f"{item_path}.extension[{n}].valueExpression.expression"
                expression = ext.get("valueExpression", {}).get("expression", "")
                yield from _expression_problems(path, expression, defined)


def _expression_problems(path: str, expression: str, defined: set[str]) -> Iterator[Problem]:
    try:
        problems, constants = check_expression(expression)
    except Exception as exc:  # fhirpathpy raises bare Exceptions while compiling
        yield Problem(path, f"fhirpathpy cannot compile the expression: {exc}")
        return
    for problem in problems:
        yield Problem(path, f"FHIRPath: {problem}")
    for name in sorted(constants - defined):
        yield Problem(path, f"%{name} is not defined before it is used")


def _ordinals(item: Json) -> Iterator[str]:
    """Problems of a scored item's answer options; the invariant the expressions rely on."""
    if item.get("type") != "choice":
        yield f"is of type {item.get('type')!r}, a scored item must be 'choice'"
        return
    if not item.get("answerOption"):
        yield "has no answerOption"
    for n, option in enumerate(item.get("answerOption", [])):
        ordinal = [
            e.get("valueDecimal")
            for e in option.get("extension", [])
            if e.get("url") == ORDINAL_VALUE_EXT
        ]
        code = option.get("valueCoding", {}).get("code")
        if len(ordinal) != 1 or not isinstance(ordinal[0], int | float):
            yield f"answerOption[{n}] has no ordinalValue (valueDecimal)"
        elif code is None or _number(code) != ordinal[0]:
            yield f"answerOption[{n}] code {code!r} differs from its ordinalValue {ordinal[0]}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _score_item(entry: Json, items: dict[str, Json]) -> Iterator[str]:
    item = items.get(entry["linkId"])
    if item is None:
        yield f"no item has linkId {entry['linkId']!r}"
        return
    if not item.get("readOnly"):
        yield f"score item {entry['linkId']!r} is not readOnly"
    if {"system": SCORES_SYSTEM, "code": entry["code"]} not in [
        {"system": c.get("system"), "code": c.get("code")} for c in item.get("code", [])
    ]:
        yield f"score item {entry['linkId']!r} does not carry the code {entry['code']!r}"
    if CALCULATED_EXPRESSION_EXT not in {e.get("url") for e in item.get("extension", [])}:
        yield f"score item {entry['linkId']!r} has no calculatedExpression"


def check_model(
    model: Json, items: dict[str, Json], known_codes: set[str] | None
) -> Iterator[tuple[str, str]]:
    """(JSON path in the model, message) for every disagreement between model and items."""
    done: set[str] = set()
    for s, entry in enumerate(model["scores"]):
        here = f".scores[{s}]"
        code = entry["code"]
        if code in done:
            yield f"{here}.code", f"duplicate score code {code!r}"
        if known_codes is not None and code not in known_codes:
            yield f"{here}.code", f"{code!r} is not in the CodeSystem {SCORES_SYSTEM}"
        for message in _score_item(entry, items):
            yield f"{here}.linkId", message
        for i, ref in enumerate(entry.get("items", [])):
            item = items.get(ref["linkId"])
            if item is None:
                yield f"{here}.items[{i}].linkId", f"no item has linkId {ref['linkId']!r}"
                continue
            for message in _ordinals(item):
                yield f"{here}.items[{i}].linkId", f"item {ref['linkId']!r} {message}"
        terms = [t for c in entry.get("candidates", []) for t in c["terms"]] + entry.get(
            "terms", []
        )
        for name in sorted({t["score"] for t in terms} - done):
            yield f"{here}", f"uses score {name!r} before it is defined"
        categories = [c["category"] for c in entry.get("candidates", [])]
        if len(set(categories)) != len(categories):
            yield f"{here}.candidates", "duplicate category"
        gate = items.get(f"{entry['focus']}.applies") if "focus" in entry else None
        if "focus" in entry and (gate is None or gate.get("type") != "boolean"):
            yield f"{here}.focus", f"no boolean gate item {entry['focus'] + '.applies'!r}"
        done.add(code)


def is_unscored(questionnaire: Json) -> bool:
    """True when the Questionnaire declares itself unscored (``NOT_VALIDATED_EXT`` with text)."""
    return any(
        e.get("url") == NOT_VALIDATED_EXT and str(e.get("valueString") or "").strip()
        for e in questionnaire.get("extension", [])
    )


def validate_questionnaire(
    questionnaire: Json, score_codes: Iterable[str] | None = None
) -> Iterator[Problem]:
    """Every problem of one Questionnaire; ``score_codes`` are the known score codes."""
    if questionnaire.get("resourceType") != "Questionnaire":
        yield Problem("resourceType", "expected 'Questionnaire'")
        return
    try:
        Questionnaire.model_validate(questionnaire)
    except ValidationError as exc:
        yield from _pydantic_problems(exc)
    if questionnaire.get("status") not in STATUSES:
        yield Problem("status", f"{questionnaire.get('status')!r} is not one of {sorted(STATUSES)}")
    for key in ("url", "version", "title", "status", "copyright"):
        if not questionnaire.get(key):
            yield Problem(key, "is required for a library instrument")
    seen: dict[str, str] = {}
    items: dict[str, Json] = {}
    listed = list(_items_with_paths(questionnaire.get("item", [])))
    for path, item in listed:
        link_id = item.get("linkId")
        if link_id in seen:
            yield Problem(
                f"{path}.linkId", f"duplicate linkId {link_id!r} (first at {seen[link_id]})"
            )
        elif isinstance(link_id, str):
            seen[link_id], items[link_id] = path, item
        if item.get("type") not in ITEM_TYPES:
            yield Problem(f"{path}.type", f"{item.get('type')!r} is not an R4 item type")
    for path, item in listed:
        for n, condition in enumerate(item.get("enableWhen", [])):
            if condition.get("question") not in items:
                yield Problem(
                    f"{path}.enableWhen[{n}].question",
                    f"no item has linkId {condition.get('question')!r}",
                )
    models = [
        (n, e)
        for n, e in enumerate(questionnaire.get("extension", []))
        if e.get("url") == SCORING_MODEL_EXT
    ]
    unscored = is_unscored(questionnaire)
    if unscored and models:
        yield Problem("extension", f"{NOT_VALIDATED_EXT} and a scoring model exclude each other")
    elif len(models) != 1 and not unscored:
        yield Problem(
            "extension", f"expected one {SCORING_MODEL_EXT} extension, found {len(models)}"
        )
    for index, ext in models:
        path = f"extension[{index}].valueString"
        try:
            model = json.loads(ext.get("valueString", ""))
        except ValueError as exc:
            yield Problem(path, f"not JSON: {exc}")
            continue
        schema_errors = list(scoring_model_validator().iter_errors(model))
        for error in schema_errors:
            pointer = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            yield Problem(f"{path}{pointer}", error.message)
        if not schema_errors:
            known = set(score_codes) if score_codes is not None else None
            for where, message in check_model(model, items, known):
                yield Problem(f"{path}{where}", message)
    yield from _expressions(questionnaire)


def validate_codesystem(codesystem: Json) -> Iterator[Problem]:
    """Every problem of a CodeSystem: R4 parse and unique codes."""
    try:
        CodeSystem.model_validate(codesystem)
    except ValidationError as exc:
        yield from _pydantic_problems(exc)
    seen: set[str] = set()
    for index, concept in enumerate(codesystem.get("concept", [])):
        if concept.get("code") in seen:
            yield Problem(f"concept[{index}].code", f"duplicate code {concept.get('code')!r}")
        seen.add(concept.get("code"))


def score_codes_of(resources: Iterable[Json]) -> set[str] | None:
    """The codes of the attach-scores CodeSystem among ``resources`` (None if absent)."""
    for resource in resources:
        if resource.get("resourceType") == "CodeSystem" and resource.get("url") == SCORES_SYSTEM:
            return {c.get("code") for c in resource.get("concept", [])}
    return None


def validate_resources(
    resources: dict[str, Json], score_codes: Iterable[str] | None = None
) -> Iterator[Problem]:
    """Every problem of a set of files (name -> resource), paths prefixed by the file name."""
    codes = score_codes if score_codes is not None else score_codes_of(resources.values())
    for name, resource in resources.items():
        if resource.get("resourceType") == "CodeSystem":
            problems = validate_codesystem(resource)
        else:
            problems = validate_questionnaire(resource, codes)
        for problem in problems:
            yield Problem(f"{name}#{problem.path}", problem.message)


def read_json(path: Path) -> tuple[Json | None, Problem | None]:
    """A file's JSON object, or the problem reading it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, Problem(str(path), f"cannot read JSON: {exc}")
    if not isinstance(data, dict):
        return None, Problem(str(path), "not a JSON object")
    return data, None
