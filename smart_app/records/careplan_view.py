"""View models of the care-plan pages: goal rows with their trajectory, activities, journal
entries, the latest scores, and the "add a goal / an activity" parts of the edit form."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup

from attach_fhir.careplan_edit import (
    InvalidPlanEdit,
    WorkingPlan,
    activity_codes,
    add_activity,
    add_goal,
)
from attach_fhir.careplan_fhir import goal_measure
from attach_fhir.careplan_rules import ActivityRule, CarePlanRules
from attach_fhir.careplan_writeback import ObservedScore
from attach_fhir.goal_progress import progress_words
from attach_fhir.goal_target import InvalidScoreScale, ScoreScale, packaged_scales
from attach_fhir.history import points, start_of
from attach_fhir.instruments import library
from attach_fhir.journal import JOURNAL_URL, answers
from attach_fhir.reading import for_reading
from smart_app.web.charts import Series, line_chart

ACTIVITY_STATUS_WORDS = {
    "not-started": "Not started",
    "scheduled": "Scheduled",
    "in-progress": "In progress",
    "on-hold": "On hold",
    "completed": "Completed",
    "stopped": "Stopped",
}
ACHIEVEMENT_WORDS = {
    "achieved": "Achieved",
    "improving": "Improving",
    "worsening": "Worsening",
    "no-change": "No change",
}


@dataclass(frozen=True)
class GoalRow:
    """One goal as the plan page shows it."""

    reference: str
    description: str
    measure: str
    baseline: float | None
    target: float | None
    direction: str
    due: str
    achievement: str
    #: "improving: 4.06 → 3.50, target 3.29" or "not yet re-assessed".
    progress: str
    explanation: str
    outcomes: int
    chart: Markup | None


def _label(code: str) -> str:
    concept = library().score_codes().get(code) or {}
    return str(concept.get("display") or code)


def goal_rows(goals: Mapping[str, Mapping[str, Any]], observations: list[Any]) -> list[GoalRow]:
    """Each goal with its achievement and a line of its score since the plan started."""
    series = points(observations)
    rows = []
    for n, (ref, goal) in enumerate(goals.items()):
        try:
            measure = goal_measure(goal)
        except InvalidScoreScale:
            continue
        status = goal.get("achievementStatus") or {}
        code = next((c.get("code") for c in status.get("coding") or []), None)
        scale = packaged_scales().get(measure.score)
        start = start_of(str(goal.get("startDate") or "1900-01-01"))
        line = sorted(
            (p.when, float(p.value))
            for p in series
            if p.code == measure.score
            and p.value is not None
            and p.status == "final"
            and p.when >= start
        )
        chart = None
        if line and scale is not None:
            chart = line_chart(
                f"goal-chart-{n}",
                [Series(_label(measure.score), line)],
                title=(
                    f"{_label(measure.score)} since the plan started "
                    f"(target {for_reading(measure.target)})"
                ),
                lo=scale.low,
                hi=scale.high,
            )
        judged = {str(r.get("reference")) for r in goal.get("outcomeReference") or []}
        outcomes = sorted(
            (p.when, float(p.value))
            for p in series
            if p.observation in judged and p.code == measure.score and p.value is not None
        )
        rows.append(
            GoalRow(
                reference=ref,
                description=str((goal.get("description") or {}).get("text") or ""),
                measure=_label(measure.score),
                baseline=measure.baseline,
                target=measure.target,
                direction=measure.direction,
                due=str(goal["target"][0].get("dueDate") or ""),
                achievement=ACHIEVEMENT_WORDS.get(str(code), "Not judged yet"),
                progress=progress_words(measure, code, outcomes[-1][1] if outcomes else None),
                explanation=str(status.get("text") or ""),
                outcomes=len(goal.get("outcomeReference") or []),
                chart=chart,
            )
        )
    return rows


def activity_rows(careplan: Mapping[str, Any]) -> list[dict[str, str]]:
    """Title, patient-facing description and status of each activity."""
    out = []
    for activity in careplan.get("activity") or []:
        detail = activity.get("detail") or {}
        out.append(
            {
                "title": str((detail.get("code") or {}).get("text") or "Activity"),
                "description": str(detail.get("description") or ""),
                "status": ACTIVITY_STATUS_WORDS.get(str(detail.get("status")), "Not started"),
            }
        )
    return out


def journal_rows(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each journal entry: when, and its prompts with the patient's answers."""
    questionnaire = library().questionnaire(JOURNAL_URL)
    return [
        {"authored": str(e.get("authored") or ""), "answers": answers(e, questionnaire)}
        for e in entries
    ]


def score_rows(latest: Mapping[str, ObservedScore]) -> list[dict[str, Any]]:
    """The latest scores for the side panel."""
    return [
        {"code": code, "label": _label(code), "value": s.value, "when": s.effective[:10]}
        for code, s in sorted(latest.items())
    ]


def edit_rows(plan: WorkingPlan) -> list[dict[str, Any]]:
    """The editable fields of each goal, in plan order (form ``goal-<n>-*``)."""
    rows = []
    for key, goal in plan.goals.items():
        measure = goal_measure(goal)
        rows.append(
            {
                "key": key,
                "description": goal["description"]["text"],
                "measure": _label(measure.score),
                "baseline": measure.baseline,
                "target": measure.target,
                "direction": measure.direction,
                "due": goal["target"][0].get("dueDate", ""),
                "note": " ".join(n.get("text", "") for n in goal.get("note") or []),
            }
        )
    return rows


def _goal_scores(plan: WorkingPlan) -> set[str]:
    return {goal_measure(g).score for g in plan.goals.values()}


def addable_scores(plan: WorkingPlan, latest: Mapping[str, ObservedScore]) -> list[ScoreScale]:
    """Scores with a latest value, a direction, and no goal yet."""
    scales = packaged_scales()
    taken = _goal_scores(plan)
    return [
        scales[c] for c in sorted(latest) if c in scales and scales[c].desirable and c not in taken
    ]


def addable_activities(plan: WorkingPlan, rules: CarePlanRules) -> list[ActivityRule]:
    """Activity rules whose activity the plan does not hold yet (one per code)."""
    have = activity_codes(plan)
    seen: dict[str, ActivityRule] = {}
    for rule in rules.activities:
        if rule.code not in have:
            seen.setdefault(rule.code, rule)
    return list(seen.values())


def _period(plan: WorkingPlan) -> tuple[dt.date, dt.date]:
    period = plan.careplan.get("period") or {}
    start = dt.date.fromisoformat(period.get("start") or dt.date.today().isoformat())
    end = dt.date.fromisoformat(period.get("end") or (start + dt.timedelta(weeks=24)).isoformat())
    return start, end


def add_goal_from_form(
    plan: WorkingPlan,
    form: Mapping[str, str],
    latest: Mapping[str, ObservedScore],
    patient_id: str,
    clinician: str,
    draft: Mapping[str, Any],
) -> None:
    """The "add a goal" fields: score, target, due date (InvalidPlanEdit when unusable)."""
    code = form.get("new-goal-score", "")
    scale = packaged_scales().get(code)
    if scale is None or code not in latest or code in _goal_scores(plan):
        raise InvalidPlanEdit({"new-goal-score": "Choose a score that has no goal yet"})
    try:
        target = Decimal(form.get("new-goal-target", "").strip())
        due = dt.date.fromisoformat(form.get("new-goal-due", "").strip())
    except (InvalidOperation, ValueError) as exc:
        raise InvalidPlanEdit(
            {"new-goal-target": "Enter a target number and a due date as YYYY-MM-DD"}
        ) from exc
    # A new plan keeps the proposal's identifier scheme; a revision needs fresh identifiers.
    identifier = (
        uuid.uuid5(uuid.UUID(draft["plan_id"]), f"goal/{code}")
        if draft.get("base") is None
        else uuid.uuid4()
    )
    add_goal(
        plan,
        scale=scale,
        baseline=latest[code].value,
        target=target,
        due=due,
        start=_period(plan)[0],
        subject=f"Patient/{patient_id}",
        clinician=clinician,
        identifier=identifier,
        baseline_observation=latest[code].reference,
    )


def add_activity_from_form(
    plan: WorkingPlan,
    form: Mapping[str, str],
    rules: CarePlanRules,
    patient_id: str,
    clinician: str,
) -> None:
    """The "add an activity" field: one of the rules' activities."""
    rule = next(
        (r for r in addable_activities(plan, rules) if r.id == form.get("new-activity")), None
    )
    if rule is None:
        raise InvalidPlanEdit({"new-activity": "Choose an activity the plan does not have yet"})
    start, end = _period(plan)
    add_activity(
        plan,
        rule,
        start=start,
        end=end,
        subject=f"Patient/{patient_id}",
        clinician=clinician,
        performers=rule.performers,
    )
