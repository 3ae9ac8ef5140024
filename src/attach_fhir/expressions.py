"""SDC expressions: the FHIRPath a Questionnaire carries, evaluated as an SDC renderer would.

Root ``variable``s are evaluated in document order against ``%resource`` (the response), each
result joining the environment under its name; then each item's ``calculatedExpression``. This
is the independent check of the Python scorer (docs/scoring-model.md, "Expressions").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy import evaluate as fhirpath_evaluate
from fhirpathpy.models import models

from attach_fhir.canonical import CALCULATED_EXPRESSION_EXT, VARIABLE_EXT

Json = dict[str, Any]
R4_MODEL = models["r4"]


def root_variables(questionnaire: Json) -> list[tuple[str, str]]:
    """(name, FHIRPath) of each root SDC variable, in document order."""
    return [
        (ext["valueExpression"]["name"], ext["valueExpression"]["expression"])
        for ext in questionnaire.get("extension", [])
        if ext.get("url") == VARIABLE_EXT
        and ext.get("valueExpression", {}).get("language") == "text/fhirpath"
    ]


def calculated_items(questionnaire: Json) -> Iterator[tuple[Json, str]]:
    """Every item (at any depth) with a calculatedExpression, with that expression."""
    stack = list(reversed(questionnaire.get("item", [])))
    while stack:
        item = stack.pop()
        for ext in item.get("extension", []):
            if ext.get("url") == CALCULATED_EXPRESSION_EXT:
                yield item, ext["valueExpression"]["expression"]
        stack.extend(reversed(item.get("item", [])))


def compile_expression(expression: str) -> None:
    """Parse a FHIRPath expression; raises what fhirpathpy raises on a syntax error."""
    fhirpath_compile(expression, R4_MODEL)


def evaluate_scores(questionnaire: Json, response: Json) -> dict[str, list[Any]]:
    """Each calculated item's linkId -> its value (a FHIRPath collection) for ``response``."""
    env: dict[str, Any] = {"resource": response}
    for name, expression in root_variables(questionnaire):
        env[name] = fhirpath_evaluate(response, expression, dict(env), R4_MODEL)
    return {
        item["linkId"]: fhirpath_evaluate(response, expression, dict(env), R4_MODEL)
        for item, expression in calculated_items(questionnaire)
    }
