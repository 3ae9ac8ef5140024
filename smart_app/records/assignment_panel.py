"""The Choose page's part in asking the patient to complete a questionnaire at home.

For a clinician's launch only (``fhirUser`` a Practitioner or PractitionerRole; never a
patient's own launch): whether the grant and the CapabilityStatement let the app create Tasks
(the "Ask the patient to complete this at home" form on each instrument that fits), list them
(the patient's open assignments and those completed lately) and withdraw them. What they do not
allow is said once among the page's capability notices. The writes are in
:mod:`smart_app.assign.routes`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from attach_fhir.assignment_request import (
    NOTE_MAX,
    RECENT_DAYS,
    SentAssignment,
    sent_assignments,
)
from attach_fhir.capabilities import ServerCapabilities
from attach_fhir.errors import AttachError
from attach_fhir.fhir_url import is_fhir_id
from smart_app.records.submission import relative
from smart_app.web.context import LaunchContext

log = logging.getLogger(__name__)

#: ``fhirUser`` types that may ask a patient to complete a questionnaire (SDC: the requester).
CLINICIANS = ("Practitioner", "PractitionerRole")


@dataclass
class AssignForm:
    """One instrument's request form: its id (the Task's identifier comes from it) and the
    values posted, shown again when they could not be used or sent."""

    request_id: str
    due: str = ""
    note: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What became of the last request, when it was not a plain success.

    ``kind``: ``refused`` (the EHR said no; ``lines`` hold its words), ``not-sent`` (network or
    server fault), ``invalid`` (the form), ``changed`` (a withdrawal met a newer version;
    ``lines`` say what changed), ``closed`` (nothing to withdraw)."""

    kind: str
    lines: tuple[str, ...] = ()
    instrument: str | None = None
    task: str | None = None


@dataclass
class Panel:
    """What the Choose page shows of assignments sent to the patient."""

    offered: bool
    withdraw_problem: str | None
    listed: bool
    open: list[SentAssignment]
    completed: list[SentAssignment]
    forms: dict[str, AssignForm]
    notices: tuple[str, ...] = ()
    outcome: Outcome | None = None
    assigned: str | None = None
    withdrawn: bool = False
    recent_days: int = RECENT_DAYS
    note_max: int = NOTE_MAX


def requester(launch: LaunchContext) -> str | None:
    """The clinician's reference (``Practitioner/<id>``) for a clinician's launch, else None."""
    if launch.record.get("kind") == "patient" or not launch.fhir_user or not launch.patient_id:
        return None
    user = relative(launch.iss, launch.fhir_user).split("/_history/")[0].strip("/")
    parts = user.split("/")
    if len(parts) != 2 or parts[0] not in CLINICIANS or not is_fhir_id(parts[1]):
        return None  # an absolute reference to another server, or not a clinician
    return user


def assign_problem(launch: LaunchContext, caps: ServerCapabilities | None) -> str | None:
    """Why this launch cannot create Tasks, in one sentence; None when it can."""
    if not launch.can("Task", "c"):
        return (
            "The EHR did not grant the app permission to create Task: questionnaires cannot be "
            "sent to the patient to complete at home from here."
        )
    if caps is None or not caps.can_create("Task"):
        return (
            "This EHR does not declare that it accepts new Tasks: questionnaires cannot be sent "
            "to the patient to complete at home from here."
        )
    return None


def list_problem(launch: LaunchContext, caps: ServerCapabilities | None) -> str | None:
    """Why the patient's assignments cannot be listed; None when they can."""
    if not (launch.can("Task", "s") and caps is not None and caps.supports("Task", "search-type")):
        return "Questionnaires sent to the patient cannot be listed from this EHR."
    return None


def withdraw_problem(launch: LaunchContext, caps: ServerCapabilities | None) -> str | None:
    """Why a request cannot be withdrawn from here; None when it can."""
    if not (launch.can("Task", "r") and launch.can("Task", "u")):
        return (
            "Withdrawing a request needs permission to read and update Task, which this EHR "
            "did not give."
        )
    if caps is None or not (caps.supports("Task", "read") and caps.supports("Task", "update")):
        return (
            "This EHR does not accept updates of Task, so a request cannot be withdrawn from here."
        )
    return None


def new_forms(instrument_ids: Iterable[str]) -> dict[str, AssignForm]:
    """A fresh request form (a new id) per instrument."""
    return {i: AssignForm(str(uuid.uuid4())) for i in instrument_ids}


def load(
    launch: LaunchContext,
    caps: ServerCapabilities | None,
    urls: Iterable[str],
    instrument_ids: Iterable[str],
    *,
    forms: Mapping[str, AssignForm] | None = None,
    outcome: Outcome | None = None,
    assigned: str | None = None,
    withdrawn: str | None = None,
    today: dt.date | None = None,
) -> Panel | None:
    """The panel for this launch; None for anyone but a clinician (nothing is shown)."""
    if requester(launch) is None:
        return None
    problem = assign_problem(launch, caps)
    listing = list_problem(launch, caps)
    notices = [problem] if problem else []
    open_: list[SentAssignment] = []
    done: list[SentAssignment] = []
    if listing is None:
        try:
            tasks = launch.fhir().search(
                "Task", {"patient": f"Patient/{launch.patient_id}", "_count": "100"}
            )
            open_, done = sent_assignments(
                tasks, f"Patient/{launch.patient_id}", urls, today or dt.date.today()
            )
        except AttachError as exc:
            log.info("assign.list outcome=%s", exc.code)
            listing = "The questionnaires sent to the patient could not be read from the EHR."
    if listing and problem is None:
        notices.append(listing)
    all_forms = {**new_forms(instrument_ids), **(forms or {})}
    open_ids = {a.task_id for a in open_}
    return Panel(
        offered=problem is None,
        withdraw_problem=withdraw_problem(launch, caps) if open_ else None,
        listed=listing is None,
        open=open_,
        completed=done,
        forms=all_forms,
        notices=tuple(notices),
        outcome=outcome,
        assigned=assigned if assigned in open_ids else None,
        withdrawn=withdrawn is not None and is_fhir_id(withdrawn) and withdrawn not in open_ids,
    )
