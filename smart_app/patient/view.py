"""What the patient's pages read from the record, put in their words (attach_fhir.patient_words):
the assignment's instrument and requester, the plan's goals, and their results by submission."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from attach_fhir.assignments import Assignment
from attach_fhir.errors import AttachError
from attach_fhir.goal_target import packaged_scales
from attach_fhir.history import local_day, points
from attach_fhir.human_names import human_name
from attach_fhir.instruments import Instrument, UnknownInstrument, library
from attach_fhir.patient_words import (
    GoalWords,
    day_words,
    goal_words,
    person_name,
    questionnaire_name,
    score_line,
)
from smart_app.records import careplan_records
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext

log = logging.getLogger(__name__)


def instrument(assignment: Assignment) -> Instrument | None:
    """The packaged instrument an assignment asks for; None for one the app does not offer."""
    try:
        found = str(library().questionnaire(assignment.questionnaire)["id"])
    except UnknownInstrument:
        return None
    return next((i for i in library().instruments() if i.id == found), None)


def today() -> dt.date:
    """The app's local day by its clock (``web.clock.now``), as pages word dates against it."""
    day = local_day(now())
    return day if day is not None else dt.date.today()  # now() is always a valid instant


def patient_name(launch: LaunchContext) -> str | None:
    """The signed-in patient's name, shown so they know whose page it is (None if unreadable)."""
    if not launch.patient_id or not launch.can("Patient", "r"):
        return None
    try:
        return human_name(launch.fhir().read("Patient", launch.patient_id).get("name")) or None
    except AttachError as exc:
        log.info("patient.name outcome=%s", exc.code)
        return None


def requesters(launch: LaunchContext, tasks: list[dict[str, Any]]) -> dict[str, str]:
    """Task reference -> the name of the clinician who asked (when the grant lets us read it)."""
    if not launch.can("Practitioner", "r"):
        return {}
    names: dict[str, str] = {}
    out: dict[str, str] = {}
    for task in tasks:
        ref = (task.get("requester") or {}).get("reference")
        if not isinstance(ref, str) or not ref.startswith("Practitioner/"):
            continue
        if ref not in names:
            try:
                names[ref] = person_name(launch.fhir().read_reference(ref).get("name"))
            except AttachError as exc:
                log.info("patient.requester outcome=%s", exc.code)
                names[ref] = ""
        if names[ref] and isinstance(task.get("id"), str):
            out[f"Task/{task['id']}"] = names[ref]
    return out


def goals(launch: LaunchContext, today: dt.date) -> list[GoalWords]:
    """The active plan's goals in the patient's words, each with its latest score."""
    if not (launch.can("CarePlan", "s") and launch.can("Goal", "r")):
        return []
    client = launch.fhir()
    try:
        found = careplan_records.active_plan(client, str(launch.patient_id))
        observed = (
            careplan_records.score_observations(client, str(launch.patient_id))
            if found and launch.can("Observation", "s")
            else []
        )
    except AttachError as exc:
        log.info("patient.goals outcome=%s", exc.code)
        return []
    if found is None:
        return []
    latest = {p.code: (float(p.value), p.recorded) for p in points(observed) if p.value is not None}
    scales = packaged_scales()
    out = []
    for goal in found.goals.values():
        code = goal_code(goal)
        words = goal_words(goal, scales.get(code), latest.get(code), today)
        if words is not None:
            out.append(words)
    return out


def author(response: dict[str, Any]) -> str | None:
    """The reference of a QuestionnaireResponse's author, if it names one."""
    who = response.get("author")
    ref = who.get("reference") if isinstance(who, dict) else None
    return ref if isinstance(ref, str) else None


def goal_code(goal: dict[str, Any]) -> str:
    """The score code a Goal's first target measures ("" when it has none)."""
    try:
        return str(goal["target"][0]["measure"]["coding"][0]["code"])
    except (KeyError, IndexError, TypeError):
        return ""


@dataclass(frozen=True)
class ResultDay:
    """One filled-in questionnaire's scores as the patient reads them."""

    name: str
    day: str
    lines: list[str]
    reviewed: bool


def result_days(observations: list[dict[str, Any]], today: dt.date) -> list[ResultDay]:
    """Newest first: each submission's dimension scores, in plain words."""
    scales = packaged_scales()
    codes = library().score_codes()
    owner = {c: i for i in library().instruments() for c in i.score_codes}
    grouped: dict[str, list[Any]] = {}
    for p in points(observations):
        grouped.setdefault(p.submission, []).append(p)
    days = []
    for group in grouped.values():
        first = group[0]
        inst = owner.get(first.code)
        lines = [
            line
            for p in group
            if p.value is not None
            and (
                line := score_line(
                    p.code,
                    str(codes.get(p.code, {}).get("display") or p.code),
                    p.value,
                    scales.get(p.code),
                )
            )
        ]
        days.append(
            ResultDay(
                name=questionnaire_name(inst, "Questionnaire"),
                day=day_words(first.recorded, today) or "",
                lines=lines,
                reviewed=all(p.status == "final" for p in group),
            )
        )
    return list(reversed(days))
