"""SDC expressions: the FHIRPath a Questionnaire carries, evaluated as an SDC renderer would.

Root ``variable``s are evaluated in document order against ``%resource`` (the response), each
result joining the environment under its name; then each item's ``calculatedExpression``. This
is the independent check of the Python scorer (docs/scoring-model.md, "Expressions").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from antlr4 import CommonTokenStream, InputStream, ParserRuleContext
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy import evaluate as fhirpath_evaluate
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

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


class _Collect(ErrorListener):
    """Keeps every syntax error (fhirpathpy's own parser silently recovers from them)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def syntaxError(
        self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        self.errors.append(f"column {column + 1}: {msg.split(' expecting ')[0]}")


def check_expression(expression: str) -> tuple[list[str], set[str]]:
    """Problems parsing ``expression`` with fhirpathpy's grammar, and the %constants it reads.

    A problem is a syntax error or a function fhirpathpy does not implement; the whole text must
    be one expression.
    """
    listener = _Collect()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    tree = parser.entireExpression()
    problems = list(listener.errors)
    constants: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, FHIRPathParser.FunctnContext):
            name = node.identifier().getText()
            if name not in invocation_registry:
                problems.append(f"function {name}() is not implemented by fhirpathpy")
        elif isinstance(node, FHIRPathParser.ExternalConstantContext):
            constants.add(node.getText()[1:].strip("`'"))
        if isinstance(node, ParserRuleContext):
            stack.extend(node.getChildren())
    if not problems:
        fhirpath_compile(expression, R4_MODEL)
    return problems, constants


def evaluate_scores(questionnaire: Json, response: Json) -> dict[str, list[Any]]:
    """Each calculated item's linkId -> its value (a FHIRPath collection) for ``response``.

    ``%questionnaire`` is the Questionnaire (an SDC context variable): a coded score reads its
    item's own answerOption Coding from it.
    """
    env: dict[str, Any] = {"resource": response, "questionnaire": questionnaire}
    for name, expression in root_variables(questionnaire):
        env[name] = fhirpath_evaluate(response, expression, dict(env), R4_MODEL)
    return {
        item["linkId"]: fhirpath_evaluate(response, expression, dict(env), R4_MODEL)
        for item, expression in calculated_items(questionnaire)
    }
