"""Agreement: the Python scorer equals each Questionnaire's own SDC calculatedExpressions.

The expressions are evaluated with fhirpathpy as an SDC renderer would
(``attach_fhir.expressions.evaluate_scores``) on random responses to every packaged instrument,
complete and (in progress) incomplete; the hand-computed examples are checked through FHIRPath too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attach_fhir.canonical import SCORES_SYSTEM, questionnaire_url
from attach_fhir.expressions import calculated_items, evaluate_scores
from attach_fhir.instruments import library
from attach_fhir.scoring import Scorer
from tests.lib.scoring_examples import EXAMPLES, Example
from tests.lib.scoring_responses import build_response, from_answers

Json = dict[str, Any]
INSTRUMENT_URLS = sorted(i.url for i in library().instruments())


def score_code(item: Json) -> str:
    return next(c["code"] for c in item["code"] if c["system"] == SCORES_SYSTEM)


def fhirpath_scores(questionnaire: Json, response: Json) -> dict[str, object]:
    """Score code -> the calculatedExpression's single value, or None when it is empty."""
    values = evaluate_scores(questionnaire, response)
    out: dict[str, object] = {}
    for item, _ in calculated_items(questionnaire):
        collection = values[item["linkId"]]
        assert len(collection) <= 1, (item["linkId"], collection)
        value = collection[0] if collection else None
        out[score_code(item)] = float(value) if isinstance(value, int | float | Decimal) else value
    return out


def category_option(questionnaire: Json, code: str, category: str) -> Json:
    """The answerOption Coding of the score item for ``code`` whose code is ``category``."""
    [item] = [i for i, _ in calculated_items(questionnaire) if score_code(i) == code]
    [coding] = [
        o["valueCoding"] for o in item["answerOption"] if o["valueCoding"]["code"] == category
    ]
    assert coding["display"] == category.capitalize()  # the CodeSystem's display, by hand
    return dict(coding)


def python_scores(questionnaire: Json, response: Json) -> dict[str, object]:
    """Score code -> the value, or for a category the Coding the Python scorer reports."""
    result = Scorer(questionnaire).score(response)
    return {
        code: dict(score.category) if score.category is not None else score.value
        for code, score in result.scores.items()
    }


def assert_agree(python: dict[str, object], fhirpath: dict[str, object]) -> None:
    assert python.keys() == fhirpath.keys()
    for code, value in python.items():
        if isinstance(value, dict):
            # A category: the whole Coding (system, code, display), as a renderer would fill it.
            assert fhirpath[code] == value, code
        elif isinstance(value, float):
            assert isinstance(fhirpath[code], float), code
            assert abs(value - fhirpath[code]) <= 1e-9, code  # type: ignore[operator]
        else:
            assert value == fhirpath[code], code


def test_every_instrument_is_checked() -> None:
    ids = {u.rsplit("/", 1)[1] for u in INSTRUMENT_URLS}
    assert ids >= {"ecr-r", "ecr-rs", "ecr", "rq", "prfq"}


@st.composite
def responses(draw: st.DrawFn, questionnaire: Json) -> Json:
    """A response with every enabled item drawn; in progress, items may be left out."""
    status = draw(st.sampled_from(["completed", "completed", "in-progress"]))

    def choose(item: Json) -> object:
        skippable = status == "in-progress" or not item.get("required")
        if skippable and draw(st.integers(0, 9)) == 0:
            return None
        if item["type"] == "boolean":
            return draw(st.booleans())
        return draw(st.sampled_from([o["valueCoding"]["code"] for o in item["answerOption"]]))

    return build_response(questionnaire, choose, status)


@pytest.mark.parametrize("url", INSTRUMENT_URLS, ids=lambda u: u.rsplit("/", 1)[1])
def test_python_scores_equal_the_calculated_expressions(url: str) -> None:
    questionnaire = library().questionnaire(url)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(responses(questionnaire))
    def agree(response: Json) -> None:
        assert_agree(
            python_scores(questionnaire, response), fhirpath_scores(questionnaire, response)
        )

    agree()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_the_calculated_expressions_give_the_hand_computed_scores(example: Example) -> None:
    questionnaire = library().questionnaire(questionnaire_url(example.instrument))
    scores = fhirpath_scores(questionnaire, from_answers(questionnaire, example.answers))
    for code, expected in example.expected.items():
        if isinstance(expected, str):
            # A category yields the score item's own answerOption Coding, not a string.
            assert scores[code] == category_option(questionnaire, code, expected)
        else:
            assert scores[code] == pytest.approx(expected, abs=1e-9), code
    for code in example.not_applicable:
        assert scores[code] is None
