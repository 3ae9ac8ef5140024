"""The Task an EHR launch carries in its ``fhirContext``: offered on the landing page, or why not.

An EHR that opens the app from a worklist Task names it in the token response (SMART 2.x
``fhirContext``: ``{"reference": "Task/123"}``; :func:`smart_app.launch.authorization.fhir_context`
keeps only
well-formed references). The landing page reads each such Task with the launch's own token and
offers it only when it is this patient's, open, and names one of the app's instruments:
"Assigned in your EHR: <title>", with a Start link to the fill page with ``?task=<id>``. The
fill page checks and binds it again, and the delivered response closes it (``task_updates``),
exactly as for the patient's own assignment link. Where it is not offered, one plain sentence
says why; nothing the server wrote (description, status text, error) is shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from attach_fhir.assignments import task_questionnaires
from attach_fhir.errors import AttachError
from attach_fhir.instruments import Instrument, library
from attach_fhir.task_completion import is_for, is_open
from smart_app.web.context import LaunchContext
from smart_app.web.errors import AuthorizationExpired

log = logging.getLogger(__name__)

#: Tasks read for one landing page (each is a request to the EHR); the rest are said, not read.
MAX_READ = 5

NOT_GRANTED = "The EHR opened the app for a task, but has not allowed the app to read tasks."
UNREADABLE = "The task the EHR opened the app for could not be read from the EHR."
NOT_THIS_PATIENT = "The task the EHR opened the app for is not this patient's."
NO_INSTRUMENT = "The task the EHR opened the app for asks for no questionnaire this app offers."
CLOSED = "The task the EHR opened the app for is already closed in the EHR."
TOO_MANY = "The EHR named more tasks than the app reads at once; open the others from the EHR."


@dataclass(frozen=True)
class Offer:
    """An instrument an EHR Task assigns to this patient: started with ``?task=<task_id>``."""

    task_id: str
    instrument: Instrument


@dataclass(frozen=True)
class LaunchTasks:
    """What the landing page says about the launch's Tasks: offers, and why others are not."""

    offers: list[Offer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def launch_tasks(launch: LaunchContext) -> LaunchTasks:
    """The Tasks of the launch's ``fhirContext`` (``launch`` role), read and checked."""
    references = launch.context_references("Task")
    if not references or not launch.patient_id:
        return LaunchTasks()
    if not launch.can("Task", "r"):
        return LaunchTasks(notes=[NOT_GRANTED])
    found = LaunchTasks()
    for reference in references[:MAX_READ]:
        task_id = reference.partition("/")[2]
        offers, note = _check(launch, task_id)
        found.offers.extend(offers)
        if note and note not in found.notes:
            found.notes.append(note)
    if len(references) > MAX_READ:
        found.notes.append(TOO_MANY)
    return found


def _check(launch: LaunchContext, task_id: str) -> tuple[list[Offer], str | None]:
    """The offers one Task makes to this patient, or the sentence saying why it makes none."""
    try:
        task = launch.fhir().read("Task", task_id)
    except AuthorizationExpired:
        raise  # the launch must be renewed: the error page says so
    except AttachError as exc:
        log.info("launch.context_task outcome=%s", exc.code)
        return [], UNREADABLE
    if task.get("resourceType") != "Task" or task.get("id") != task_id:
        log.info("launch.context_task outcome=not_that_task")
        return [], UNREADABLE
    if not is_for(task, f"Patient/{launch.patient_id}"):
        log.info("launch.context_task outcome=another_patient")
        return [], NOT_THIS_PATIENT
    ours = {i.url: i for i in library().instruments()}
    urls = dict.fromkeys(c.partition("|")[0] for c in task_questionnaires(task))
    offers = [Offer(task_id, ours[url]) for url in urls if url in ours]
    if not offers:
        log.info("launch.context_task outcome=no_instrument")
        return [], NO_INSTRUMENT
    if not is_open(task):
        log.info("launch.context_task outcome=closed")
        return [], CLOSED
    log.info("launch.context_task outcome=offered")
    return offers, None
