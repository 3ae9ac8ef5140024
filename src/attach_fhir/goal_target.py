"""Goal arithmetic: a target from a baseline and the instrument's scale, and achievement status.

Nothing here knows a clinical cut-off. A target is either a configured fraction of the distance
from the baseline to the favourable end of the scale, or the baseline moved by a reliable-change
amount where one is published and verified. Achievement uses the reliable-change rule only where
such a figure exists; otherwise it is a plain comparison, and the result says which rule ran.
Arithmetic is decimal so that a hand calculation gives the same digits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Literal

from attach_fhir.canonical import SCORING_MODEL_EXT
from attach_fhir.errors import AttachError
from attach_fhir.reading import for_reading

Direction = Literal["lower", "higher"]


class InvalidScoreScale(AttachError):
    """A score's scale cannot be read or a goal's numbers do not fit together."""

    code = "invalid_score_scale"
    description = "The score's scale or the goal's target is invalid."


@dataclass(frozen=True, slots=True)
class ScoreScale:
    """What a goal needs to know about one score: its range and favourable direction."""

    code: str
    low: float
    high: float
    #: The direction a goal moves the score in, from the instrument's meaning; ``None``: no goal.
    desirable: Direction | None
    display: str | None = None
    #: ``url|version`` of the Questionnaire that produces the score, for re-assessment.
    questionnaire: str | None = None

    @property
    def favourable_end(self) -> float:
        """The end of the scale the desirable direction moves towards."""
        return self.low if self.desirable == "lower" else self.high


@dataclass(frozen=True, slots=True)
class ReliableChange:
    """A published, verified minimum change (in score points) that is not measurement noise."""

    amount: float
    citation: str


def scales_from_questionnaire(questionnaire: Mapping[str, Any]) -> dict[str, ScoreScale]:
    """Every ranged score of a Questionnaire's scoring-model extension (docs/scoring-model.md)."""
    model: dict[str, Any] | None = None
    for ext in questionnaire.get("extension", ()):
        if ext.get("url") == SCORING_MODEL_EXT:
            model = json.loads(ext["valueString"])
    if model is None:
        raise InvalidScoreScale(f"Questionnaire {questionnaire.get('id')!r} has no scoring model.")
    canonical = questionnaire.get("url")
    if canonical and questionnaire.get("version"):
        canonical = f"{canonical}|{questionnaire['version']}"
    displays = _score_displays(questionnaire.get("item", []))
    scales = {}
    for score in model.get("scores", []):
        if "range" not in score:
            continue  # categories (argmax) have no scale to move along
        low, high = (float(v) for v in score["range"])
        scales[score["code"]] = ScoreScale(
            code=score["code"],
            low=low,
            high=high,
            desirable=score.get("desirable"),
            display=displays.get(score["code"]),
            questionnaire=canonical,
        )
    return scales


def packaged_scales() -> dict[str, ScoreScale]:
    """The scales of every score of every packaged Questionnaire."""
    from attach_fhir.instruments import library  # the library reads files; keep this module pure

    scales: dict[str, ScoreScale] = {}
    for resource in library().files.values():
        if resource.get("resourceType") == "Questionnaire" and any(
            e.get("url") == SCORING_MODEL_EXT for e in resource.get("extension", ())
        ):  # unscored Questionnaires (the journal) have no scales
            scales.update(scales_from_questionnaire(resource))
    return scales


def _score_displays(items: list[dict[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        for coding in item.get("code", ()):
            label = coding.get("display") or item.get("text")
            if coding.get("code") and label:
                found.setdefault(coding["code"], label)
        found.update(
            {k: v for k, v in _score_displays(item.get("item", [])).items() if k not in found}
        )
    return found


def dec(value: float | int | str | Decimal) -> Decimal:
    """The decimal a person would write for this number (``0.1`` is ``Decimal('0.1')``)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def shown(value: float | Decimal, decimals: int) -> str:
    """A value for text: whole numbers bare, short ones as written, else rounded half-up."""
    number = dec(value)
    if number == number.to_integral_value():
        return f"{number.to_integral_value():f}"
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -decimals:
        number = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{number:f}"


@dataclass(frozen=True, slots=True)
class Target:
    """A computed target and the words that explain it."""

    value: Decimal
    method: str
    basis: str


def fraction_target(baseline: float, scale: ScoreScale, fraction: float, decimals: int) -> Target:
    """Baseline moved ``fraction`` of the way to the favourable end, rounded towards that end."""
    direction = _direction(scale)
    base, end, share = dec(baseline), dec(scale.favourable_end), dec(fraction)
    _check_in_range(base, scale)
    raw = base + share * (end - base)
    value = _round_towards(raw, direction, decimals)
    value = max(value, dec(scale.low)) if direction == "lower" else min(value, dec(scale.high))
    basis = (
        f"{(share * 100).normalize():f}% of the distance from the baseline {shown(base, decimals)} "
        f"to the favourable end of the scale ({shown(end, decimals)}; {direction} is favourable "
        f"on this instrument), rounded towards that end to {decimals} decimals"
    )
    return Target(value, "fraction-of-distance", basis)


def reliable_change_target(
    baseline: float, scale: ScoreScale, reliable: ReliableChange, decimals: int
) -> Target:
    """Baseline moved by the published reliable-change amount, stopping at the scale's end."""
    direction = _direction(scale)
    base, step, end = dec(baseline), dec(reliable.amount), dec(scale.favourable_end)
    _check_in_range(base, scale)
    raw = base - step if direction == "lower" else base + step
    raw = max(raw, end) if direction == "lower" else min(raw, end)
    value = _round_towards(raw, direction, decimals)
    basis = (
        f"the baseline {shown(base, decimals)} moved by the reliable-change amount {step} "
        f"({reliable.citation}), {direction} being favourable on this instrument, and not "
        f"beyond the scale's end {shown(end, decimals)}"
    )
    return Target(value, "reliable-change", basis)


def _direction(scale: ScoreScale) -> Direction:
    if scale.desirable not in ("lower", "higher"):
        raise InvalidScoreScale(f"Score {scale.code!r} has no desirable direction.")
    return scale.desirable


def _check_in_range(value: Decimal, scale: ScoreScale) -> None:
    if not dec(scale.low) <= value <= dec(scale.high):
        raise InvalidScoreScale(
            f"Value {value} of {scale.code!r} lies outside its range {scale.low}-{scale.high}."
        )


def _round_towards(value: Decimal, direction: Direction, decimals: int) -> Decimal:
    rounding = ROUND_FLOOR if direction == "lower" else ROUND_CEILING
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)


class AchievementStatus(StrEnum):
    """Codes of http://terminology.hl7.org/CodeSystem/goal-achievement this module assigns."""

    IMPROVING = "improving"
    WORSENING = "worsening"
    NO_CHANGE = "no-change"
    ACHIEVED = "achieved"


@dataclass(frozen=True, slots=True)
class GoalMeasure:
    """The numbers of one goal: baseline, target and direction of the measured score."""

    score: str
    baseline: float
    target: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class Achievement:
    """A new value judged against a goal, with the rule that was used and why."""

    status: AchievementStatus
    rule: Literal["reliable-change", "plain-comparison"]
    explanation: str


def assess_achievement(
    goal: GoalMeasure, new_value: float, reliable: ReliableChange | None = None
) -> Achievement:
    """Achieved when the target is met; otherwise improving/worsening/no-change from baseline."""
    base, target, new = dec(goal.baseline), dec(goal.target), dec(new_value)
    lower = goal.direction == "lower"
    met = new <= target if lower else new >= target
    # Positive = moved the favourable way.
    change = base - new if lower else new - base
    if reliable is not None:
        rule: Literal["reliable-change", "plain-comparison"] = "reliable-change"
        step = dec(reliable.amount)
        how = f"a change of at least {step} ({reliable.citation}) counts as real change"
        if met:
            status = AchievementStatus.ACHIEVED
        elif change >= step:
            status = AchievementStatus.IMPROVING
        elif change <= -step:
            status = AchievementStatus.WORSENING
        else:
            status = AchievementStatus.NO_CHANGE
    else:
        rule = "plain-comparison"
        how = (
            "no verified reliable-change figure exists for this score, so any difference from the "
            "baseline counts and only exact equality is no change"
        )
        if met:
            status = AchievementStatus.ACHIEVED
        elif change > 0:
            status = AchievementStatus.IMPROVING
        elif change < 0:
            status = AchievementStatus.WORSENING
        else:
            status = AchievementStatus.NO_CHANGE
    explanation = (
        f"{goal.score}: baseline {for_reading(base)}, target {for_reading(target)} or "
        f"{goal.direction}, new value {for_reading(new)}: "
        f"{status.value} ({how})."
    )
    return Achievement(status, rule, explanation)
