"""Care-plan proposals: goals and activities from scores, life stage and focus (pure).

``propose(inputs)`` is a pure function of its inputs and the rules. Scores come in as a plain
mapping so that any scorer's result fits (see ``ScoreLike``); the scale and favourable direction
of each score come from the Questionnaire (``goal_target.scales_from_questionnaire``). The
proposal is a draft: a clinician edits and approves it before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from attach_fhir.careplan_rules import (
    ActivityRule,
    CarePlanRules,
    Timing,
    matches,
    shipped_rules,
)
from attach_fhir.errors import AttachError
from attach_fhir.goal_target import (
    Direction,
    ScoreScale,
    Target,
    dec,
    fraction_target,
    reliable_change_target,
    shown,
)
from attach_fhir.lifestage import LifeStage, Role, life_stage

CHILD_STAGES = frozenset({LifeStage.EARLY_CHILDHOOD, LifeStage.SCHOOL_AGE})


class UnknownFocus(AttachError):
    """The clinician's focus is not defined in the rules."""

    code = "unknown_focus"
    description = "The chosen focus is not defined in the care-plan rules."


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """One score value, optionally with its relationship focus, date and Observation."""

    code: str
    value: float
    focus: str | None = None
    effective: date | None = None
    #: A FHIR reference to the Observation carrying the value, e.g. ``Observation/123``.
    observation: str | None = None


#: A score as callers may pass it: a number, a ``ScoreInput``, or a mapping / object with
#: ``value`` and optionally ``focus``, ``effective`` and ``observation`` (extra keys such as a
#: scorer's ``status`` are ignored). A value that is missing or not a number yields no goal.
ScoreLike = float | int | ScoreInput | Mapping[str, Any] | object


def score_input(code: str, score: ScoreLike) -> ScoreInput | None:
    """The ``ScoreInput`` for one entry of a score mapping; ``None`` when it has no number."""
    if isinstance(score, ScoreInput):
        return score
    if isinstance(score, bool):
        return None
    if isinstance(score, int | float | Decimal):
        return ScoreInput(code, float(score))
    get = score.get if isinstance(score, Mapping) else lambda k: getattr(score, k, None)
    value = get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    effective = get("effective")
    return ScoreInput(
        code=code,
        value=float(value),
        focus=get("focus"),
        effective=effective if isinstance(effective, date) else None,
        observation=get("observation"),
    )


@dataclass(frozen=True, slots=True)
class ProposalInputs:
    """Everything a proposal depends on; ``start_date`` is the plan's first day."""

    scores: Mapping[str, ScoreLike]
    scales: Mapping[str, ScoreScale]
    start_date: date
    birth_date: date | str | None = None
    #: Overrides the stage computed from ``birth_date``.
    life_stage: LifeStage | None = None
    roles: frozenset[Role] = frozenset()
    focuses: tuple[str, ...] = ()
    #: Earlier values of the same scores (any order), for the goal's note.
    history: Sequence[ScoreInput] = ()
    #: References to Conditions in context, e.g. ``Condition/7``.
    conditions: tuple[str, ...] = ()
    #: Reference to the clinician, e.g. ``Practitioner/3``.
    clinician: str | None = None


@dataclass(frozen=True, slots=True)
class GoalProposal:
    """One measurable goal on one score."""

    score: str
    description: str
    direction: Direction
    baseline: float
    target: Decimal
    target_method: str
    target_form: str
    scale: ScoreScale
    start_date: date
    due_date: date
    note: str
    addresses: tuple[str, ...] = ()
    expressed_by: str | None = None
    baseline_observation: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityProposal:
    """One activity: what, for whom, how often, and which goals it serves."""

    rule_id: str
    code: str
    system: str
    display: str
    description: str
    performers: tuple[str, ...]
    timing: Timing
    goal_scores: tuple[str, ...] = ()
    instantiates: tuple[str, ...] = ()

    @classmethod
    def of_rule(
        cls,
        rule: ActivityRule,
        performers: tuple[str, ...],
        goal_scores: tuple[str, ...] = (),
        instantiates: tuple[str, ...] = (),
    ) -> ActivityProposal:
        """The activity ``rule`` proposes: its coding, its text with its timing, its timing."""
        return cls(
            rule_id=rule.id,
            code=rule.code,
            system=rule.system,
            display=rule.display,
            description=rule.description.format(timing=rule.timing.phrase()),
            performers=performers,
            timing=rule.timing,
            goal_scores=goal_scores,
            instantiates=instantiates,
        )


@dataclass(frozen=True, slots=True)
class SkippedScore:
    """A score that got no goal, and why."""

    score: str
    reason: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """A draft care plan for a clinician to review."""

    start_date: date
    end_date: date
    life_stage: LifeStage | None
    roles: frozenset[Role]
    focuses: tuple[str, ...]
    rules_version: str
    goals: tuple[GoalProposal, ...]
    activities: tuple[ActivityProposal, ...]
    skipped: tuple[SkippedScore, ...] = field(default=())
    #: Observations the proposal was made from.
    supporting: tuple[str, ...] = ()


def propose(inputs: ProposalInputs, rules: CarePlanRules | None = None) -> Proposal:
    """The proposed goals and activities for these inputs (shipped rules unless given)."""
    rules = rules or shipped_rules()
    for focus in inputs.focuses:
        if focus not in rules.focuses:
            raise UnknownFocus(f"Focus {focus!r} is not defined in the care-plan rules.")
    stage = inputs.life_stage
    if stage is None and inputs.birth_date is not None:
        stage = life_stage(inputs.birth_date, inputs.start_date)
    latest = {}
    skipped = []
    for code, raw in inputs.scores.items():
        score = score_input(code, raw)
        if score is None:
            skipped.append(SkippedScore(code, "no numeric value"))
        else:
            latest[code] = score
    focuses = frozenset(inputs.focuses)
    wanted: tuple[str, ...] = rules.default_scores
    if focuses:
        wanted = tuple(p for f in inputs.focuses for p in rules.focuses[f][1])
    due = inputs.start_date + timedelta(weeks=rules.horizon_weeks)

    goals = []
    for code, score in latest.items():
        reason = _why_no_goal(score, inputs.scales.get(code), wanted, bool(focuses))
        if reason:
            skipped.append(SkippedScore(code, reason))
            continue
        goals.append(_goal(score, inputs.scales[code], inputs, rules, due))

    activities = []
    chosen: set[str] = set()
    for rule in rules.activities:
        if rule.code in chosen or not rule.when.holds(stage, inputs.roles, focuses, latest):
            continue
        chosen.add(rule.code)
        instantiates: tuple[str, ...] = ()
        if rule.instantiates_assessments:
            canon = (inputs.scales[c].questionnaire for c in latest if c in inputs.scales)
            instantiates = tuple(dict.fromkeys(q for q in canon if q))
        activities.append(
            ActivityProposal.of_rule(
                rule,
                _performers(rule.performers, stage, inputs.roles),
                goal_scores=tuple(g.score for g in goals if matches(g.score, rule.goal_scores)),
                instantiates=instantiates,
            )
        )
    return Proposal(
        start_date=inputs.start_date,
        end_date=due,
        life_stage=stage,
        roles=inputs.roles,
        focuses=inputs.focuses,
        rules_version=rules.version,
        goals=tuple(goals),
        activities=tuple(activities),
        skipped=tuple(skipped),
        supporting=tuple(s.observation for s in latest.values() if s.observation),
    )


def _why_no_goal(
    score: ScoreInput, scale: ScoreScale | None, wanted: tuple[str, ...], by_focus: bool
) -> str | None:
    if not matches(score.code, wanted):
        return "not a goal score for the chosen focus" if by_focus else "not a default goal score"
    if scale is None:
        return "the score's scale is not known"
    if scale.desirable is None:
        return "the instrument gives no desirable direction for this score"
    if dec(score.value) == dec(scale.favourable_end):
        return "already at the favourable end of the scale"
    return None


def _goal(
    score: ScoreInput, scale: ScoreScale, inputs: ProposalInputs, rules: CarePlanRules, due: date
) -> GoalProposal:
    assert scale.desirable is not None  # checked by _why_no_goal
    reliable = rules.reliable_change.get(score.code)
    target: Target
    fallback = ""
    if rules.target_method == "reliable-change" and reliable is not None:
        target = reliable_change_target(score.value, scale, reliable, rules.decimals)
    else:
        target = fraction_target(score.value, scale, rules.fraction, rules.decimals)
        if rules.target_method == "reliable-change":
            fallback = " (the rules ask for a reliable-change target, but none is recorded for it)"
    d = rules.decimals
    description = rules.goal_text[scale.desirable].format(
        measure=scale.display or score.code,
        baseline=shown(score.value, d),
        target=f"{target.value:f}",
        due=due.isoformat(),
    )
    measured = f" measured on {score.effective.isoformat()}" if score.effective else ""
    parts = [
        f"Target {target.value:f} or {scale.desirable} by {due.isoformat()}: {target.basis}"
        f"{fallback}.",
        f"Baseline {shown(score.value, d)}{measured}; scale {shown(scale.low, d)} to "
        f"{shown(scale.high, d)}.",
    ]
    earlier = sorted(
        (h for h in inputs.history if h.code == score.code and h.effective is not None),
        key=lambda h: h.effective or date.min,
        reverse=True,
    )[:3]
    if earlier:
        listed = ", ".join(f"{shown(h.value, d)} ({h.effective})" for h in earlier)
        parts.append(f"Earlier values on record: {listed}.")
    parts.append(
        f"This is a planning target from the care-plan rules (version {rules.version}), not a "
        "clinical cut-off or norm."
    )
    if reliable is None:
        parts.append(
            "No reliable-change figure verified in two sources is recorded for this score, so "
            "progress is judged by plain comparison with the baseline."
        )
    else:
        parts.append(
            f"Progress is judged against the reliable-change amount ({reliable.citation})."
        )
    return GoalProposal(
        score=score.code,
        description=description,
        direction=scale.desirable,
        baseline=score.value,
        target=target.value,
        target_method=target.method,
        target_form=rules.target_form,
        scale=scale,
        start_date=inputs.start_date,
        due_date=due,
        note=" ".join(parts),
        addresses=inputs.conditions,
        expressed_by=inputs.clinician,
        baseline_observation=score.observation,
    )


def _performers(
    performers: tuple[str, ...], stage: LifeStage | None, roles: frozenset[Role]
) -> tuple[str, ...]:
    """``caregiver`` is the patient when the patient is not a child or holds the role."""
    patient_is_caregiver = Role.CAREGIVER in roles or (
        stage is not None and stage not in CHILD_STAGES
    )
    resolved = ("patient" if p == "caregiver" and patient_is_caregiver else p for p in performers)
    return tuple(dict.fromkeys(resolved))
