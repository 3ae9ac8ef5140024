"""FHIR R4 Goal and CarePlan resources from a proposal, and the way back from a Goal.

Resources are plain dicts. Identifiers are derived from one client-generated plan id (a UUID
the caller creates once and keeps with the submission), so a retried write carries the same
identifiers and ``ifNoneExist`` makes it idempotent. The CarePlan is a ``draft``: the approval
flow sets it ``active``. Goal baseline and direction travel in two project extensions on
``Goal.target`` so that re-assessment can be judged from the Goal alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from attach_fhir.canonical import BASE, SCORES_SYSTEM
from attach_fhir.careplan_proposal import ActivityProposal, GoalProposal, Proposal
from attach_fhir.fhir_models import CarePlan, Goal
from attach_fhir.goal_target import Achievement, GoalMeasure, InvalidScoreScale

GOAL_BASELINE_EXT = f"{BASE}/StructureDefinition/goal-baseline"
GOAL_DIRECTION_EXT = f"{BASE}/StructureDefinition/goal-direction"
GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"
#: Identifier system of proposal resources (values are UUIDs, like the write-back's).
CAREPLAN_SYSTEM = f"{BASE}/identifier/careplan"
UCUM = "http://unitsofmeasure.org"

_UNIT_CODES = {"d": "d", "wk": "wk", "mo": "mo"}
_ROLE_DISPLAY = {"clinician": "Clinician", "caregiver": "Parent or caregiver"}


@dataclass(frozen=True, slots=True)
class PlanResources:
    """The CarePlan and its Goals, each with the ``urn:uuid`` fullUrl a transaction uses.

    Each fullUrl is ``urn:uuid:`` + the resource's identifier value (system ``CAREPLAN_SYSTEM``),
    so ``ifNoneExist: identifier=CAREPLAN_SYSTEM|<value>`` makes a retried create a no-op.
    """

    careplan_url: str
    careplan: dict[str, Any]
    goals: tuple[tuple[str, dict[str, Any]], ...]


def _urn(value: uuid.UUID) -> str:
    return f"urn:uuid:{value}"


def _ref(reference: str | None, display: str | None = None) -> dict[str, str]:
    out = {"reference": reference} if reference else {}
    if display:
        out["display"] = display
    return out


def _score_quantity(value: Decimal | float) -> dict[str, Any]:
    return {"value": float(value), "unit": "score", "system": UCUM, "code": "{score}"}


def _goal_target(goal: GoalProposal) -> dict[str, Any]:
    target: dict[str, Any] = {
        "extension": [
            {"url": GOAL_BASELINE_EXT, "valueQuantity": _score_quantity(goal.baseline)},
            {"url": GOAL_DIRECTION_EXT, "valueCode": goal.direction},
        ],
        "measure": {
            "coding": [{"system": SCORES_SYSTEM, "code": goal.score, **_display(goal)}],
            "text": goal.scale.display or goal.score,
        },
        "dueDate": goal.due_date.isoformat(),
    }
    if goal.target_form == "quantity":
        comparator = "<=" if goal.direction == "lower" else ">="
        target["detailQuantity"] = {**_score_quantity(goal.target), "comparator": comparator}
    elif goal.direction == "lower":
        target["detailRange"] = {
            "low": _score_quantity(goal.scale.low),
            "high": _score_quantity(goal.target),
        }
    else:
        target["detailRange"] = {
            "low": _score_quantity(goal.target),
            "high": _score_quantity(goal.scale.high),
        }
    return target


def _display(goal: GoalProposal) -> dict[str, str]:
    return {"display": goal.scale.display} if goal.scale.display else {}


def goal_resource(goal: GoalProposal, *, identifier: uuid.UUID, subject: str) -> dict[str, Any]:
    """One proposed Goal (``lifecycleStatus: proposed``)."""
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "identifier": [{"system": CAREPLAN_SYSTEM, "value": str(identifier)}],
        "lifecycleStatus": "proposed",
        "description": {"text": goal.description},
        "subject": _ref(subject),
        "startDate": goal.start_date.isoformat(),
        "target": [_goal_target(goal)],
        "note": [{"text": goal.note}],
    }
    if goal.addresses:
        resource["addresses"] = [_ref(c) for c in goal.addresses]
    if goal.expressed_by:
        resource["expressedBy"] = _ref(goal.expressed_by)
    return resource


def _performer(
    role: str, subject: str, clinician: str | None, caregiver: str | None
) -> dict[str, str]:
    if role == "patient":
        return _ref(subject)
    given = clinician if role == "clinician" else caregiver
    return _ref(given, None if given else _ROLE_DISPLAY[role])


def _activity(
    activity: ActivityProposal,
    goal_urls: Mapping[str, str],
    proposal: Proposal,
    refs: tuple[str, str | None, str | None],
) -> dict[str, Any]:
    subject, clinician, caregiver = refs
    t = activity.timing
    repeat: dict[str, Any] = {
        "boundsPeriod": {
            "start": proposal.start_date.isoformat(),
            "end": proposal.end_date.isoformat(),
        },
        "frequency": t.frequency,
        "period": t.period,
        "periodUnit": _UNIT_CODES[t.period_unit],
    }
    if t.count is not None:
        repeat["count"] = t.count
    if t.duration_minutes is not None:
        repeat.update(duration=t.duration_minutes, durationUnit="min")
    detail: dict[str, Any] = {
        "code": {
            "coding": [
                {"system": activity.system, "code": activity.code, "display": activity.display}
            ],
            "text": activity.display,
        },
        "status": "not-started",
        "description": activity.description,
        "scheduledTiming": {"repeat": repeat},
        "performer": [_performer(p, subject, clinician, caregiver) for p in activity.performers],
    }
    if activity.instantiates:
        detail["instantiatesCanonical"] = list(activity.instantiates)
    linked = [_ref(goal_urls[s]) for s in activity.goal_scores if s in goal_urls]
    if linked:
        detail["goal"] = linked
    return {"detail": detail}


def build_resources(
    proposal: Proposal,
    *,
    plan_id: str,
    subject: str,
    encounter: str | None = None,
    author: str | None = None,
    clinician: str | None = None,
    caregiver: str | None = None,
) -> PlanResources:
    """The draft CarePlan and its Goals; ``plan_id`` is a UUID the caller keeps for retries."""
    plan_uuid = uuid.UUID(plan_id)
    goal_ids = {g.score: uuid.uuid5(plan_uuid, f"goal/{g.score}") for g in proposal.goals}
    goal_urls = {score: _urn(i) for score, i in goal_ids.items()}
    goals = tuple(
        (goal_urls[g.score], goal_resource(g, identifier=goal_ids[g.score], subject=subject))
        for g in proposal.goals
    )
    careplan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "identifier": [{"system": CAREPLAN_SYSTEM, "value": str(plan_uuid)}],
        "status": "draft",
        "intent": "plan",
        "title": "Attachment-based therapy plan",
        "description": _plan_description(proposal),
        "subject": _ref(subject),
        "period": {"start": proposal.start_date.isoformat(), "end": proposal.end_date.isoformat()},
        "activity": [
            _activity(a, goal_urls, proposal, (subject, clinician, caregiver))
            for a in proposal.activities
        ],
    }
    if encounter:
        careplan["encounter"] = _ref(encounter)
    if author:
        careplan["author"] = _ref(author)
    conditions = tuple(dict.fromkeys(c for g in proposal.goals for c in g.addresses))
    if conditions:
        careplan["addresses"] = [_ref(c) for c in conditions]
    if goals:
        careplan["goal"] = [_ref(url) for url, _ in goals]
    if proposal.supporting:
        careplan["supportingInfo"] = [_ref(o) for o in proposal.supporting]
    if not careplan["activity"]:
        del careplan["activity"]
    return PlanResources(_urn(plan_uuid), careplan, goals)


def _plan_description(proposal: Proposal) -> str:
    stage = proposal.life_stage.value if proposal.life_stage else "not known"
    focus = ", ".join(proposal.focuses) or "none chosen"
    return (
        f"Proposed from attachment scores (care-plan rules {proposal.rules_version}); "
        f"life stage: {stage}; focus: {focus}."
    )


def validate_resources(resources: PlanResources) -> None:
    """Parse every resource with the FHIR R4B models; raises pydantic's error when invalid."""
    CarePlan.model_validate(resources.careplan)
    for _, goal in resources.goals:
        Goal.model_validate(goal)


def goal_measure(goal: Mapping[str, Any]) -> GoalMeasure:
    """Baseline, target and direction of a Goal written by ``goal_resource``."""
    try:
        target = goal["target"][0]
        extensions = {e["url"]: e for e in target.get("extension", ())}
        baseline = extensions[GOAL_BASELINE_EXT]["valueQuantity"]["value"]
        direction = extensions[GOAL_DIRECTION_EXT]["valueCode"]
        code = next(
            c["code"] for c in target["measure"]["coding"] if c.get("system") == SCORES_SYSTEM
        )
        if "detailQuantity" in target:
            value = target["detailQuantity"]["value"]
        else:
            value = target["detailRange"]["high" if direction == "lower" else "low"]["value"]
    except (KeyError, IndexError, StopIteration, TypeError) as exc:
        raise InvalidScoreScale(
            "The Goal carries no attach-fhir baseline, target or measure."
        ) from exc
    if direction not in ("lower", "higher"):
        raise InvalidScoreScale(f"Unknown goal direction {direction!r}.")
    return GoalMeasure(score=code, baseline=baseline, target=value, direction=direction)


def achievement_status(achievement: Achievement) -> dict[str, Any]:
    """``Goal.achievementStatus`` for an assessed achievement, the rule used as its text."""
    return {
        "coding": [{"system": GOAL_ACHIEVEMENT_SYSTEM, "code": achievement.status.value}],
        "text": achievement.explanation,
    }
