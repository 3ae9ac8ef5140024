"""What a patient has been asked to do: assessments assigned by Task or by the care plan (pure).

Everything here reads resources as the EHR sent them, so a member of the wrong JSON type is
treated as absent (``_obj``, ``_list``, ``_text``), never as an error: one malformed Task or plan
must not take the patient's page down.

An EHR that assigns questionnaires does it with a ``Task`` (SDC style: ``input`` with a
``valueCanonical`` naming the Questionnaire); those come first. Without one, the active
CarePlan's activities that instantiate a Questionnaire (the re-assessment activity) are the
assignments. ``ServiceRequest`` cannot name a Questionnaire in R4 and is not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.history import local_day

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


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


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
        task_id = _text(task.get("id"))
        if _text(task.get("status")) not in OPEN_TASK or not task_id:
            continue
        due = _text(_obj(_obj(task.get("restriction")).get("period")).get("end"))
        title = (
            _text(task.get("description"))
            or _text(_obj(task.get("code")).get("text"))
            or "Assessment"
        )
        since = _text(task.get("authoredOn"))
        for canonical in task_questionnaires(task):
            out.append(Assignment(canonical, f"Task/{task_id}", title, due, since))
    return out


def _active(careplans: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [c for c in careplans if c.get("status") == "active" and _text(c.get("id"))]


def _details(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_obj(_obj(a).get("detail")) for a in _list(plan.get("activity"))]


def from_careplans(careplans: Iterable[Mapping[str, Any]]) -> list[Assignment]:
    """Open activities of active CarePlans that instantiate a Questionnaire."""
    out = []
    for plan in _active(careplans):
        for detail in _details(plan):
            if _text(detail.get("status")) in CLOSED_ACTIVITY:
                continue
            title = _text(_obj(detail.get("code")).get("text")) or "Re-assessment"
            since = _text(_obj(plan.get("period")).get("start"))
            for canonical in _list(detail.get("instantiatesCanonical")):
                if isinstance(canonical, str):
                    ref = f"CarePlan/{plan['id']}"
                    out.append(Assignment(canonical, ref, title, None, since))
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
    since = local_day(assignment.since or "0001-01-01")
    dates = [
        str(r["authored"])
        for r in responses
        if r.get("status") == "completed"
        and str(r.get("questionnaire") or "").partition("|")[0] == url
        and isinstance(r.get("authored"), str)
        and since is not None
        and (day := local_day(r["authored"])) is not None
        and day >= since
    ]
    return max(dates, default=None)


def plan_activities(careplans: Iterable[Mapping[str, Any]]) -> list[PlanActivity]:
    """Every activity of the active CarePlans, with its patient-facing text."""
    out = []
    for plan in _active(careplans):
        for detail in _details(plan):
            code = _obj(detail.get("code"))
            coding = _obj(next(iter(_list(code.get("coding"))), {}))
            out.append(
                PlanActivity(
                    title=_text(code.get("text")) or _text(coding.get("display")) or "Activity",
                    description=_text(detail.get("description")) or "",
                    status=_text(detail.get("status")) or "not-started",
                    code=_text(coding.get("code")) or "",
                    careplan=f"CarePlan/{plan['id']}",
                    coding={
                        k: v for k, v in coding.items() if k in ("system", "code") and _text(v)
                    },
                )
            )
    return out


def journal_activity(careplans: Iterable[Mapping[str, Any]]) -> PlanActivity | None:
    """The open attachment-journaling activity of an active plan, if any."""
    for activity in plan_activities(careplans):
        if activity.code == JOURNALING_CODE and activity.status not in CLOSED_ACTIVITY:
            return activity
    return None
