"""A clinician asks the patient to complete a questionnaire at home: the Task written (pure).

The Task follows SDC's ``sdc-task`` profile (Task Questionnaire), the shape the patient's side
reads (:mod:`attach_fhir.assignments`) and closes (:mod:`attach_fhir.task_completion`):
``code`` ``complete-questionnaire`` and one ``input`` of type ``questionnaire`` whose
``valueCanonical`` is the Questionnaire's ``url|version`` (invariant sdc-t1: that code, that
input, no ``focus``), ``authoredOn`` and ``requester`` (both required by the profile), ``for``
and ``owner`` the patient, who completes it. The due date is ``restriction.period.end``.

A Task carries a client-generated identifier: uuid5 of the request form's id, the scheme of the
write-back identifiers, so creating it with ``If-None-Exist`` on that identifier writes one
Task however often the same form is posted. Withdrawing is an update to ``cancelled`` with
``If-Match`` on the version the clinician saw; a Task changed since is not overwritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from attach_fhir.assignments import task_questionnaires
from attach_fhir.canonical import BASE
from attach_fhir.errors import AttachError
from attach_fhir.fhir_models import Task
from attach_fhir.task_completion import (
    REFUSED,
    SDC_TEMP,
    TASK_WORD,
    UPDATE,
    Decision,
    changed_task,
    is_for,
    is_open,
    local_reference,
    open_version,
    response_outputs,
    status_word,
    task_version,
)
from attach_fhir.writeback import SECURITY_LABELS

#: ``Task.code`` of an SDC Task asking for a questionnaire (SDC ValueSet task-code).
COMPLETE_QUESTIONNAIRE: Mapping[str, str] = {
    "system": SDC_TEMP,
    "code": "complete-questionnaire",
    "display": "Complete Questionnaire",
}
#: ``Task.input.type`` of the Questionnaire to complete (``sdc-task`` slice ``questionnaire``).
QUESTIONNAIRE_INPUT: Mapping[str, str] = {
    "system": SDC_TEMP,
    "code": "questionnaire",
    "display": "Questionnaire",
}
ASSIGNMENT_SYSTEM = f"{BASE}/identifier/assignment"
#: The longest note for the patient, in characters (after line endings are normalised).
NOTE_MAX = 500
#: How long a completed assignment stays on the clinician's list, in days.
RECENT_DAYS = 30
WITHDRAWN_REASON = "Withdrawn by the clinician who asked for it."
#: The decision on a withdrawal when the Task changed since the clinician saw it.
CHANGED = "changed"
#: The reason a withdrawal is refused when the Task is no assignment of the patient's.
NOT_AN_ASSIGNMENT = (
    "The task is not an assignment of one of the app's questionnaires to this patient."
)

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, ASSIGNMENT_SYSTEM)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Characters that open markup in CommonMark (links, images, raw HTML, autolinks, code,
#: emphasis) or an entity; ``Annotation.text`` is markdown, so the note escapes them.
_MARKUP = re.compile(r"([\\`*_\[\]<>!&~|])")
_ESCAPED = re.compile(r"\\([\\`*_\[\]<>!&~|])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class InvalidAssignment(AttachError):
    """The Task built did not parse as FHIR R4 (a defect here, not the user's input)."""

    code = "invalid_assignment"
    description = "The request could not be turned into a valid FHIR Task."
    status_code = 500


@dataclass(frozen=True)
class AssignmentRequest:
    """Everything the Task says: who asks whom for what, by when, and why."""

    request_id: str
    patient: str
    requester: str
    questionnaire: str
    title: str
    authored: str
    due: dt.date | None = None
    note: str | None = None
    careplan: str | None = None
    encounter: str | None = None
    security_labels: bool = False


@dataclass(frozen=True)
class AssignmentForm:
    """The clinician's form read: the due date and note, or why they cannot be used."""

    due: dt.date | None
    note: str | None
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentAssignment:
    """One Task asking the patient for one of the app's questionnaires, as the clinician sees it.

    ``note`` is the note for the patient as plain text; ``response`` (``QuestionnaireResponse/
    <id>``) and ``closed`` (a date) are set on completed ones."""

    task_id: str
    questionnaire: str
    status: str
    version: str | None
    authored: str | None
    due: str | None
    note: str | None
    response: str | None = None
    closed: str | None = None


def identifier_value(request_id: str) -> str:
    """The Task's identifier value (a UUID) for one request form."""
    return str(uuid.uuid5(_NAMESPACE, f"{request_id}/Task"))


def if_none_exist(request_id: str) -> str:
    """The ``If-None-Exist`` query that finds a Task already written for this form."""
    return f"identifier={ASSIGNMENT_SYSTEM}|{identifier_value(request_id)}"


def note_markdown(text: str) -> str:
    """Plain text as markdown that renders as that text (markup characters escaped)."""
    return _MARKUP.sub(r"\\\1", text)


def note_text(markdown: str) -> str:
    """The plain text of a note written by :func:`note_markdown` (its escapes removed)."""
    return _ESCAPED.sub(r"\1", markdown)


def clean_note(text: str) -> str:
    """The note as kept: line endings as ``\\n``, tabs as spaces, other control characters
    dropped, surrounding blanks stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL.sub("", text).strip()


def read_form(due: str, note: str, today: dt.date) -> AssignmentForm:
    """The due date (``YYYY-MM-DD``, today or later; optional) and the note (optional, at most
    ``NOTE_MAX`` characters), each problem named by its field."""
    errors: dict[str, str] = {}
    day: dt.date | None = None
    due = due.strip()
    if due:
        try:
            day = dt.date.fromisoformat(due) if _DATE.fullmatch(due) else None
        except ValueError:
            day = None
        if day is None:
            errors["due"] = "Enter the due date as a real date, for example 2030-01-31."
        elif day < today:
            errors["due"] = "The due date is in the past: choose today or a later day."
    cleaned = clean_note(note)
    if len(cleaned) > NOTE_MAX:
        errors["note"] = (
            f"The note is {len(cleaned)} characters long: shorten it to {NOTE_MAX} or fewer."
        )
    if errors:
        day = None
    return AssignmentForm(day, cleaned or None, errors)


def build_task(request: AssignmentRequest) -> dict[str, Any]:
    """The SDC Task asking the patient to complete the questionnaire (InvalidAssignment if the
    result is not valid R4)."""
    patient = {"reference": request.patient}
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [
            {"system": ASSIGNMENT_SYSTEM, "value": identifier_value(request.request_id)}
        ],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [dict(COMPLETE_QUESTIONNAIRE)]},
        "description": request.title,
        "for": patient,
        "authoredOn": request.authored,
        "requester": {"reference": request.requester},
        "owner": dict(patient),
        "input": [
            {
                "type": {"coding": [dict(QUESTIONNAIRE_INPUT)]},
                "valueCanonical": request.questionnaire,
            }
        ],
    }
    if request.security_labels:
        task["meta"] = {"security": [dict(label) for label in SECURITY_LABELS]}
    if request.careplan:
        task["basedOn"] = [{"reference": request.careplan}]
    if request.encounter:
        task["encounter"] = {"reference": request.encounter}
    if request.due:
        task["restriction"] = {"period": {"end": request.due.isoformat()}}
    if request.note:
        task["note"] = [
            {
                "authorReference": {"reference": request.requester},
                "time": request.authored,
                "text": note_markdown(request.note),
            }
        ]
    try:
        Task.model_validate(task)
    except ValidationError as exc:
        problems = [f"Task: {e['loc']}: {e['msg']}" for e in exc.errors()]
        raise InvalidAssignment(problems=problems) from exc
    return task


def is_ours(task: Mapping[str, Any], request_id: str) -> bool:
    """Whether ``task`` carries the identifier written for this request form."""
    value = identifier_value(request_id)
    return any(
        isinstance(i, dict) and i.get("system") == ASSIGNMENT_SYSTEM and i.get("value") == value
        for i in _list(task.get("identifier"))
    )


def patient_note(task: Mapping[str, Any]) -> str | None:
    """The note for the patient: the text of the first note its requester wrote, as plain text,
    at most ``NOTE_MAX`` characters (a longer one, written elsewhere, is cut)."""
    requester = _reference(task.get("requester"))
    if requester is None:
        return None
    for note in _list(task.get("note")):
        if not isinstance(note, dict) or _reference(note.get("authorReference")) != requester:
            continue
        text = note.get("text")
        if isinstance(text, str) and text.strip():
            plain = clean_note(note_text(text))
            return plain if len(plain) <= NOTE_MAX else plain[: NOTE_MAX - 1] + "\u2026"
    return None


def due_date(task: Mapping[str, Any]) -> str | None:
    """``restriction.period.end`` when it is a string (a date or dateTime)."""
    period = _dict(_dict(task.get("restriction")).get("period"))
    end = period.get("end")
    return end[:32] if isinstance(end, str) and end else None


def sent_assignments(
    tasks: Iterable[Mapping[str, Any]],
    patient: str,
    urls: Iterable[str],
    today: dt.date,
    recent_days: int = RECENT_DAYS,
) -> tuple[list[SentAssignment], list[SentAssignment]]:
    """The patient's open assignments of these questionnaires (newest first), and those
    completed with a QuestionnaireResponse in the last ``recent_days`` days (newest first)."""
    wanted = {u.partition("|")[0] for u in urls}
    since = (today - dt.timedelta(days=recent_days)).isoformat()
    open_, done = [], []
    for task in tasks:
        task_id = task.get("id")
        if (
            not isinstance(task_id, str)
            or not TASK_WORD.fullmatch(task_id)
            or not is_for(task, patient)
        ):
            continue
        url = next(
            (
                c.partition("|")[0]
                for c in task_questionnaires(task)
                if c.partition("|")[0] in wanted
            ),
            None,
        )
        if url is None:
            continue
        authored = task.get("authoredOn")
        row = SentAssignment(
            task_id=task_id,
            questionnaire=url,
            status=str(task["status"]) if is_open(task) else "completed",
            version=task_version(task),
            authored=authored[:32] if isinstance(authored, str) else None,
            due=due_date(task),
            note=patient_note(task),
        )
        if is_open(task):
            open_.append(row)
            continue
        responses = response_outputs(task)
        closed = _closed_on(task)
        if task.get("status") == "completed" and responses and closed and closed >= since:
            done.append(dataclasses.replace(row, response=responses[0], closed=closed))
    open_.sort(key=lambda r: r.authored or "", reverse=True)
    done.sort(key=lambda r: r.closed or "", reverse=True)
    return open_, done


def withdrawn_task(task: Mapping[str, Any], when: str) -> dict[str, Any]:
    """The Task as withdrawn at ``when``: ``cancelled``, with the reason (see
    :func:`attach_fhir.task_completion.changed_task` for the rest)."""
    new = changed_task(task, "cancelled", when)
    new["statusReason"] = {"text": WITHDRAWN_REASON}
    return new


def withdraw(
    task: Mapping[str, Any], patient: str, urls: Iterable[str], seen_version: str, when: str
) -> Decision:
    """What to do with a request to withdraw ``task`` as the clinician saw it at
    ``seen_version``: refuse (not this patient's assignment of one of ``urls``), nothing (closed
    already), report the change (changed since), or write it cancelled with If-Match."""
    wanted = {u.partition("|")[0] for u in urls}
    named = {c.partition("|")[0] for c in task_questionnaires(task)}
    if not is_for(task, patient) or not named & wanted:
        return Decision(REFUSED, reason=NOT_AN_ASSIGNMENT)
    version = open_version(task, "The EHR already shows this request as", "withdrawn")
    if isinstance(version, Decision):
        return version
    if version != seen_version:
        return Decision(CHANGED, version=version)
    return Decision(UPDATE, task=withdrawn_task(task, when), version=version)


def task_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What changed in the Task between the version the clinician saw and the current one, in
    sentences (values from the server: show them escaped)."""
    if before is None:
        return ["It was changed in the EHR after this page was shown."]
    out: list[str] = []
    old, new = status_word(before), status_word(after)
    if old != new:
        out.append(f"Its status changed from {old} to {new}.")
    old_due, new_due = due_date(before), due_date(after)
    if old_due != new_due:
        if old_due and new_due:
            out.append(f"Its due date changed from {old_due} to {new_due}.")
        elif new_due:
            out.append(f"A due date was set: {new_due}.")
        else:
            out.append("Its due date was removed.")
    old_note, new_note = patient_note(before), patient_note(after)
    if old_note != new_note:
        out.append(
            f"The note for the patient now reads: {new_note}"
            if new_note
            else "The note for the patient was removed."
        )
    if set(task_questionnaires(before)) != set(task_questionnaires(after)):
        out.append("It now asks for a different questionnaire.")
    if _reference(before.get("owner")) != _reference(after.get("owner")):
        out.append("It is now assigned to someone else.")
    return out or ["Other details of it were changed in the EHR."]


def _closed_on(task: Mapping[str, Any]) -> str | None:
    when = task.get("lastModified") or _dict(task.get("meta")).get("lastUpdated")
    return when[:10] if isinstance(when, str) and _DATE.match(when) else None


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return local_reference(reference) if isinstance(reference, str) and reference else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
