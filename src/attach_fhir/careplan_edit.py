"""A clinician's edits to a care plan, applied to the FHIR resources themselves (pure).

The same edits serve a new proposal (draft CarePlan and proposed Goals from
``careplan_fhir.build_resources``) and a revision of the active plan read from the server, so the
review form and the write-back see one shape: a :class:`WorkingPlan`, a CarePlan and its Goals
keyed by reference (``Goal/<id>`` on the server, ``urn:uuid:<identifier>`` when new).

Form fields (``smart_app/careplan/templates/careplan/_plan_form.html``): ``goal-<n>-key``,
``goal-<n>-description``, ``goal-<n>-target``, ``goal-<n>-due``, ``goal-<n>-remove``;
``activity-<n>-description``, ``activity-<n>-status``, ``activity-<n>-remove``.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from attach_fhir.careplan_fhir import build_resources, goal_measure, goal_resource
from attach_fhir.careplan_proposal import ActivityProposal, GoalProposal, Proposal
from attach_fhir.careplan_rules import ActivityRule
from attach_fhir.errors import AttachError
from attach_fhir.goal_target import InvalidScoreScale, ScoreScale, dec

ACTIVITY_STATUSES = ("not-started", "scheduled", "in-progress", "on-hold", "completed", "stopped")


class InvalidPlanEdit(AttachError):
    """An edit does not fit the plan (``errors``: form field -> message)."""

    code = "invalid_plan_edit"
    description = "Some changes to the care plan could not be applied."

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(errors=dict(errors))
        self.errors = dict(errors)


@dataclass
class WorkingPlan:
    """A CarePlan and its Goals (reference -> Goal, in plan order) being edited."""

    careplan: dict[str, Any]
    goals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the server-side store."""
        return {"careplan": self.careplan, "goals": [[k, v] for k, v in self.goals.items()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkingPlan:
        """The inverse of :meth:`to_json`."""
        return cls(copy.deepcopy(data["careplan"]), {k: copy.deepcopy(v) for k, v in data["goals"]})

    def copy(self) -> WorkingPlan:
        """A deep copy."""
        return WorkingPlan.from_json(self.to_json())


def _target_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def set_goal_target(goal: dict[str, Any], target: Decimal, due: dt.date) -> None:
    """Move the Goal's target value (the end its direction aims at) and due date."""
    item = goal["target"][0]
    item["dueDate"] = due.isoformat()
    measure = goal_measure(goal)
    if "detailQuantity" in item:
        item["detailQuantity"]["value"] = float(target)
    else:
        item["detailRange"]["high" if measure.direction == "lower" else "low"]["value"] = float(
            target
        )


def _goal_bounds(goal: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    detail = goal["target"][0].get("detailRange")
    if not detail:
        return None
    return dec(detail["low"]["value"]), dec(detail["high"]["value"])


def _edit_goal(
    goal: dict[str, Any], n: int, form: Mapping[str, str], errors: dict[str, str]
) -> None:
    description = form.get(f"goal-{n}-description", "").strip()
    if not description:
        errors[f"goal-{n}-description"] = "Describe the goal"
    target = _target_number(form.get(f"goal-{n}-target", ""))
    due = _date(form.get(f"goal-{n}-due", ""))
    if target is None:
        errors[f"goal-{n}-target"] = "Enter the target score as a number, like 2.5"
    if due is None:
        errors[f"goal-{n}-due"] = "Enter the due date as YYYY-MM-DD"
    if target is None or due is None or not description:
        return
    measure = goal_measure(goal)
    base = dec(measure.baseline)
    bounds = _goal_bounds(goal)  # the fixed end of a range target is the scale's end
    lowest: Decimal | None
    highest: Decimal | None
    if measure.direction == "lower":
        lowest, highest = (bounds[0] if bounds else None), base
    else:
        lowest, highest = base, (bounds[1] if bounds else None)
    if (lowest is not None and target < lowest) or (highest is not None and target > highest):
        where = " and ".join(
            f"{word} {value}"
            for word, value in (("at least", lowest), ("at most", highest))
            if value is not None
        )
        errors[f"goal-{n}-target"] = f"Enter a target {where} (the baseline is {base})"
        return
    goal["description"] = {"text": description}
    set_goal_target(goal, target, due)


def apply_form(plan: WorkingPlan, form: Mapping[str, str]) -> WorkingPlan:
    """The plan with the posted edits and removals (InvalidPlanEdit lists every problem)."""
    out = plan.copy()
    errors: dict[str, str] = {}
    keys = list(plan.goals)
    removed: set[str] = set()
    for n, key in enumerate(keys):
        if form.get(f"goal-{n}-key") != key:
            errors[f"goal-{n}-key"] = "The plan changed while you edited it; reload the page"
            continue
        if form.get(f"goal-{n}-remove"):
            removed.add(key)
            continue
        _edit_goal(out.goals[key], n, form, errors)
    activities = out.careplan.get("activity", [])
    kept = []
    for n, activity in enumerate(activities):
        if form.get(f"activity-{n}-remove"):
            continue
        detail = activity["detail"]
        text = form.get(f"activity-{n}-description", detail.get("description", "")).strip()
        if not text:
            errors[f"activity-{n}-description"] = "Describe the activity"
        detail["description"] = text
        status = form.get(f"activity-{n}-status", detail.get("status", "not-started"))
        if status not in ACTIVITY_STATUSES:
            errors[f"activity-{n}-status"] = "Choose one of the listed statuses"
        detail["status"] = status
        kept.append(activity)
    if errors:
        raise InvalidPlanEdit(errors)
    for key in removed:
        remove_goal(out, key)
    out.careplan["activity"] = kept
    _tidy(out)
    return out


def remove_goal(plan: WorkingPlan, key: str) -> None:
    """Drop a Goal and every reference the plan's activities hold to it."""
    plan.goals.pop(key, None)
    for activity in plan.careplan.get("activity", []):
        detail = activity["detail"]
        linked = [g for g in detail.get("goal", []) if g.get("reference") != key]
        if linked:
            detail["goal"] = linked
        else:
            detail.pop("goal", None)
    _tidy(plan)


def _tidy(plan: WorkingPlan) -> None:
    plan.careplan["goal"] = [{"reference": k} for k in plan.goals]
    for key in ("goal", "activity"):
        if not plan.careplan.get(key):
            plan.careplan.pop(key, None)


def add_goal(
    plan: WorkingPlan,
    *,
    scale: ScoreScale,
    baseline: float,
    target: Decimal,
    due: dt.date,
    start: dt.date,
    subject: str,
    clinician: str | None,
    identifier: uuid.UUID,
    baseline_observation: str | None = None,
) -> str:
    """Add a Goal on ``scale``'s score set by the clinician; returns its ``urn:uuid`` key."""
    if scale.desirable is None:
        raise InvalidScoreScale(f"Score {scale.code!r} has no desirable direction.")
    low, high = dec(scale.low), dec(scale.high)
    if not low <= target <= high:
        raise InvalidPlanEdit({"new-goal-target": f"Enter a target between {low} and {high}"})
    words = "lower" if scale.desirable == "lower" else "higher"
    proposal = GoalProposal(
        score=scale.code,
        description=f"{scale.display or scale.code}: {target:f} or {words} by {due.isoformat()}",
        direction=scale.desirable,
        baseline=baseline,
        target=target,
        target_method="clinician",
        target_form="range",
        scale=scale,
        start_date=start,
        due_date=due,
        note=f"Target set by the clinician; baseline {baseline}.",
        expressed_by=clinician,
        baseline_observation=baseline_observation,
    )
    key = f"urn:uuid:{identifier}"
    plan.goals[key] = goal_resource(proposal, identifier=identifier, subject=subject)
    _tidy(plan)
    return key


def add_activity(
    plan: WorkingPlan,
    rule: ActivityRule,
    *,
    start: dt.date,
    end: dt.date,
    subject: str,
    clinician: str | None,
    performers: tuple[str, ...],
) -> None:
    """Add the activity of ``rule`` (its coding, plain-language text and timing)."""
    activity = ActivityProposal.of_rule(rule, performers)
    shell = Proposal(
        start_date=start,
        end_date=end,
        life_stage=None,
        roles=frozenset(),
        focuses=(),
        rules_version="",
        goals=(),
        activities=(activity,),
    )
    built = build_resources(shell, plan_id=str(uuid.uuid4()), subject=subject, clinician=clinician)
    plan.careplan.setdefault("activity", []).append(built.careplan["activity"][0])


def activity_codes(plan: WorkingPlan) -> set[str]:
    """The activity codes already in the plan."""
    return {
        c.get("code", "")
        for a in plan.careplan.get("activity", [])
        for c in a["detail"].get("code", {}).get("coding", [])
    }
