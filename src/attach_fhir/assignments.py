"""What a patient has been asked to do: assessments assigned by Task or by the care plan (pure).

An EHR that assigns questionnaires does it with a ``Task`` (SDC style: ``input`` with a
``valueCanonical`` naming the Questionnaire); those come first. Without one, the active
CarePlan's activities that instantiate a Questionnaire (the re-assessment activity) are the
assignments. ``ServiceRequest`` cannot name a Questionnaire in R4 and is not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPEN_TASK = frozenset({"requested", "received", "accepted", "ready", "in-progress"})
CLOSED_ACTIVITY = frozenset({"completed", "cancelled", "stopped", "entered-in-error"})
JOURNALING_CODE = "attachment-journaling"


@dataclass(frozen=True, slots=True)
class Assignment:
    """One questionnaire to complete, who asked for it, and by when."""

    questionnaire: str
    source: str
    title: str
    due: str | None = None
    #: Responses authored from this date-time on count as doing it (Task.authoredOn, or the
    #: plan's start).
    since: str | None = None


@dataclass(frozen=True, slots=True)
class PlanActivity:
    """A care-plan activity in plain language for the patient."""

    title: str
    description: str
    status: str
    code: str
    careplan: str
    coding: Mapping[str, str]


def task_questionnaires(task: Mapping[str, Any]) -> list[str]:
    """The canonicals of the Questionnaires a Task asks to complete (input, instantiates)."""
    inputs = task.get("input")
    found = [
        str(i["valueCanonical"])
        for i in (inputs if isinstance(inputs, list) else [])
        if isinstance(i, dict)
        and isinstance(i.get("valueCanonical"), str)
        and "/Questionnaire/" in i["valueCanonical"]
    ]
    instantiates = task.get("instantiatesCanonical")  # one canonical in R4 (a list elsewhere)
    named = instantiates if isinstance(instantiates, list) else [instantiates]
    found += [c for c in named if isinstance(c, str) and "/Questionnaire/" in c]
    return list(dict.fromkeys(found))


def from_tasks(tasks: Iterable[Mapping[str, Any]]) -> list[Assignment]:
    """Open Tasks that name a Questionnaire, one assignment per Questionnaire."""
    out = []
    for task in tasks:
        if task.get("status") not in OPEN_TASK or not task.get("id"):
            continue
        due = (task.get("restriction") or {}).get("period", {}).get("end")
        title = task.get("description") or (task.get("code") or {}).get("text") or "Assessment"
        since = task.get("authoredOn")
        for canonical in task_questionnaires(task):
            out.append(Assignment(canonical, f"Task/{task['id']}", str(title), due, since))
    return out


def _active(careplans: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [c for c in careplans if c.get("status") == "active" and c.get("id")]


def from_careplans(careplans: Iterable[Mapping[str, Any]]) -> list[Assignment]:
    """Open activities of active CarePlans that instantiate a Questionnaire."""
    out = []
    for plan in _active(careplans):
        for activity in plan.get("activity") or []:
            detail = activity.get("detail") or {}
            if detail.get("status") in CLOSED_ACTIVITY:
                continue
            title = (detail.get("code") or {}).get("text") or "Re-assessment"
            since = (plan.get("period") or {}).get("start")
            for canonical in detail.get("instantiatesCanonical") or []:
                ref = f"CarePlan/{plan['id']}"
                out.append(Assignment(str(canonical), ref, str(title), None, since))
    return out


def assignments(
    tasks: Iterable[Mapping[str, Any]], careplans: Iterable[Mapping[str, Any]]
) -> list[Assignment]:
    """The Tasks' assignments when the EHR assigns by Task; otherwise the plans'."""
    return from_tasks(tasks) or from_careplans(careplans)


def last_done(assignment: Assignment, responses: Iterable[Mapping[str, Any]]) -> str | None:
    """When the newest completed response to the assignment's Questionnaire was authored, if on
    or after the day of the assignment; ``responses`` are the patient's QuestionnaireResponses."""
    url = assignment.questionnaire.partition("|")[0]
    since = assignment.since or ""
    dates = [
        str(r["authored"])
        for r in responses
        if r.get("status") == "completed"
        and str(r.get("questionnaire") or "").partition("|")[0] == url
        and isinstance(r.get("authored"), str)
        and r["authored"][:10] >= since[:10]
    ]
    return max(dates, default=None)


def plan_activities(careplans: Iterable[Mapping[str, Any]]) -> list[PlanActivity]:
    """Every activity of the active CarePlans, with its patient-facing text."""
    out = []
    for plan in _active(careplans):
        for activity in plan.get("activity") or []:
            detail = activity.get("detail") or {}
            code = detail.get("code") or {}
            coding: dict[str, Any] = next(iter(code.get("coding") or []), {})
            out.append(
                PlanActivity(
                    title=str(code.get("text") or coding.get("display") or "Activity"),
                    description=str(detail.get("description") or ""),
                    status=str(detail.get("status") or "not-started"),
                    code=str(coding.get("code") or ""),
                    careplan=f"CarePlan/{plan['id']}",
                    coding={k: str(v) for k, v in coding.items() if k in ("system", "code")},
                )
            )
    return out


def journal_activity(careplans: Iterable[Mapping[str, Any]]) -> PlanActivity | None:
    """The open attachment-journaling activity of an active plan, if any."""
    for activity in plan_activities(careplans):
        if activity.code == JOURNALING_CODE and activity.status not in CLOSED_ACTIVITY:
            return activity
    return None
