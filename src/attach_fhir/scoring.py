"""Score a QuestionnaireResponse from its Questionnaire's declarative scoring model.

Three methods cover every instrument: ``mean`` (subscale means after reverse keys), ``linear``
(weighted sums of other scores) and ``argmax`` (the category whose linear function is highest).
There is no per-instrument code: the Questionnaire's data decides everything.

Missing items: the instruments' authors publish no missing-data rule, so a score with any item
missing is ``not-scored``. ``prorate=True`` is a local convention (see docs/scoring-model.md):
the mean of the answered items, if at least ``min_answered`` of them were answered, with status
``prorated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import getitem
from typing import Any, NamedTuple

from attach_fhir.response_check import CheckedResponse, check_response
from attach_fhir.scoring_model import ScoreSpec, ScoringModel, compile_model

FINAL = "final"
PRORATED = "prorated"
NOT_SCORED = "not-scored"
NOT_APPLICABLE = "not-applicable"

#: Local convention, not an author rule: prorate only when >= 80% of a score's items are answered.
DEFAULT_MIN_ANSWERED = 0.8


class Score(NamedTuple):
    """One score: its value (a number, or a category code for argmax) and how it was reached.

    Immutable; a NamedTuple rather than a frozen dataclass because it is built on the hot path
    and a frozen dataclass's ``__init__`` costs several times more.
    """

    code: str
    value: float | str | None
    status: str
    answered: int
    expected: int
    focus: str | None = None
    category: Mapping[str, str] | None = None
    reason: str | None = None
    missing: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; optional members appear only when they carry information."""
        out: dict[str, Any] = {
            "value": self.value,
            "status": self.status,
            "answered": self.answered,
            "expected": self.expected,
        }
        if self.status == PRORATED:
            out["prorated"] = True
        if self.focus is not None:
            out["focus"] = self.focus
        if self.category is not None:
            out["category"] = dict(self.category)
        if self.reason is not None:
            out["reason"] = self.reason
        if self.missing:
            out["missing"] = list(self.missing)
        return out


class ScoreResult(NamedTuple):
    """Every score of one response, naming the Questionnaire version and algorithm used."""

    questionnaire: str
    algorithm_id: str
    algorithm_version: str
    scores: Mapping[str, Score]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: questionnaire, algorithm {id, version} and scores by code."""
        return {
            "questionnaire": self.questionnaire,
            "algorithm": {"id": self.algorithm_id, "version": self.algorithm_version},
            "scores": {code: score.to_json() for code, score in self.scores.items()},
        }


def _mean(spec: ScoreSpec, checked: CheckedResponse, prorate: bool, minimum: float) -> Score:
    try:
        values = map(checked.answers.__getitem__, spec.item_ids)
        total: float = sum(map(getitem, spec.tables, values))  # type: ignore[arg-type]
    except KeyError:  # an item unanswered
        return _incomplete_mean(spec, checked, prorate, minimum)
    expected = len(spec.item_ids)
    return Score(spec.code, total / expected, FINAL, expected, expected, spec.focus)


def _incomplete_mean(
    spec: ScoreSpec, checked: CheckedResponse, prorate: bool, minimum: float
) -> Score:
    answers = checked.answers
    expected = len(spec.item_ids)
    missing = [link_id for link_id in spec.item_ids if link_id not in answers]
    answered = expected - len(missing)
    if answered == 0 and checked.disabled and checked.disabled.issuperset(missing):
        return Score(
            spec.code,
            None,
            NOT_APPLICABLE,
            0,
            expected,
            spec.focus,
            reason="enableWhen disables every item",
        )
    if prorate and answered and answered >= minimum * expected:
        subtotal = 0.0
        for link_id, table in spec.items:
            if link_id in answers:
                subtotal += table[answers[link_id]]  # type: ignore[index]
        return Score(spec.code, subtotal / answered, PRORATED, answered, expected, spec.focus)
    return Score(
        spec.code,
        None,
        NOT_SCORED,
        answered,
        expected,
        spec.focus,
        reason=f"{len(missing)} of {expected} items unanswered",
        missing=tuple(missing),
    )


def _derived(spec: ScoreSpec, done: Mapping[str, Score]) -> Score:
    inputs = [done[code] for code in spec.inputs]
    answered = sum(s.answered for s in inputs)
    expected = sum(s.expected for s in inputs)
    for status in (NOT_APPLICABLE, NOT_SCORED):
        blocked = [s.code for s in inputs if s.status == status]
        if blocked:
            return Score(
                spec.code,
                None,
                status,
                answered,
                expected,
                spec.focus,
                reason=f"{', '.join(blocked)} {status}",
            )
    status = PRORATED if any(s.status == PRORATED for s in inputs) else FINAL
    if spec.method == "linear":
        value = spec.constant
        for term in spec.terms:
            value += term.weight * done[term.score].value  # type: ignore[operator]
        return Score(spec.code, value, status, answered, expected, spec.focus)
    best = None
    best_value = 0.0
    for candidate in spec.candidates:
        value = candidate.constant
        for term in candidate.terms:
            value += term.weight * done[term.score].value  # type: ignore[operator]
        if best is None or value > best_value:  # ties keep the first candidate listed
            best, best_value = candidate, value
    assert best is not None
    return Score(
        spec.code, best.category, status, answered, expected, spec.focus, category=best.coding
    )


class Scorer:
    """Scores responses to one Questionnaire; compile once, score many."""

    __slots__ = ("model",)

    def __init__(self, questionnaire: Mapping[str, Any] | ScoringModel) -> None:
        self.model = (
            questionnaire
            if isinstance(questionnaire, ScoringModel)
            else compile_model(questionnaire)
        )

    def score(
        self,
        response: object,
        *,
        prorate: bool = False,
        min_answered: float = DEFAULT_MIN_ANSWERED,
    ) -> ScoreResult:
        """Check then score one QuestionnaireResponse dict (raises InvalidResponse)."""
        if not 0 < min_answered <= 1:
            raise ValueError("min_answered must be in (0, 1]")
        model = self.model
        checked = check_response(model, response)
        done: dict[str, Score] = {}
        for spec in model.scores:
            if spec.method == "mean":
                done[spec.code] = _mean(spec, checked, prorate, min_answered)
            else:
                done[spec.code] = _derived(spec, done)
        return ScoreResult(model.questionnaire, model.algorithm_id, model.algorithm_version, done)


def score_response(
    questionnaire: Mapping[str, Any],
    response: object,
    *,
    prorate: bool = False,
    min_answered: float = DEFAULT_MIN_ANSWERED,
) -> ScoreResult:
    """Score one response (compiles the Questionnaire each call; use Scorer for many)."""
    return Scorer(questionnaire).score(response, prorate=prorate, min_answered=min_answered)
