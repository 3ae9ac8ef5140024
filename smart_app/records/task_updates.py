"""Closing the assigning Task after a delivered submission: from the assignment back to the EHR.

The patient's page links an assignment that came from a Task with ``?task=<id>``. The fill page
reads that Task with the launch's own token and binds it to the form's submission id here, on
the server (``BIND_NS``), only when it is this patient's, open, and asks for this instrument; the
form carries nothing about it. On submit the binding goes into the submission record
(``assignment``), and an index (``INDEX_NS``, per user and Task) lets the patient's page find the
submission.

Once the outbox has delivered the QuestionnaireResponse (its receipt names it on the server),
the Task is read again and :func:`attach_fhir.task_completion.decide` says what to write: status
``completed``, ``output`` referencing the response, ``lastModified``; written with ``If-Match``
on the version read. A 412 (the Task changed meanwhile) reads it again and tries once more if it
is still open; otherwise the outcome says why. A Task already completed with this response is
left alone, so a retry or a second delivery writes nothing.

The outcome is kept on the submission record (``task_outcome``) so it is tried once per
submission (``waiting``, after a network fault, is tried again by the "Update the record now"
button of the submission page):
``completed``, ``closed`` (someone else closed it), ``not-updated`` (with the reason) or
``waiting``. Nothing here undoes the submission: it counts as delivered either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app

from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirError, FhirPreconditionFailed, FhirUnauthorized
from attach_fhir.io.fhir_client import FhirClient, is_fhir_id
from attach_fhir.task_completion import CLOSED as CLOSED_TASK
from attach_fhir.task_completion import DONE, REFUSED, assignment_problem, decide, is_open
from smart_app.records import delivery
from smart_app.records.submission import SUBMISSION_NS, Status, record_outcome, status
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext
from smart_app.web.errors import AuthorizationExpired
from smart_app.web.server_profile import capabilities

log = logging.getLogger(__name__)

COMPLETED = "completed"
CLOSED = "closed"
NOT_UPDATED = "not-updated"
WAITING = "waiting"
#: Outcomes the submission page stops to tell (instead of going straight on to the review).
REPORTED = frozenset({CLOSED, NOT_UPDATED, WAITING})

BIND_NS = "assess-task"
INDEX_NS = "task-submission"


class TaskNotAssignable(AttachError):
    """The Task named in the link is not an open assignment of this instrument to this patient."""

    code = "task_not_assignable"
    description = "This assignment was not found for you."
    status_code = 404


@dataclass(frozen=True)
class Sent:
    """A delivered submission answering an assignment, for the patient's page."""

    submission_id: str
    authored: str
    outcome: dict[str, Any] | None


def _ttl() -> float:
    return float(current_app.config["LAUNCH_TTL"]) * 14  # as long as the submission record


def bind(launch: LaunchContext, sid: str, task_id: str, questionnaire_url: str) -> str | None:
    """Bind the Task to the form's submission id once the server shows it is an open assignment
    of this instrument to this patient. Returns a note for the form (a closed Task is not bound);
    raises TaskNotAssignable for anything else (another patient's, unknown, not readable)."""
    if not is_fhir_id(task_id) or not launch.can("Task", "r"):
        raise TaskNotAssignable()
    try:
        task = launch.fhir().read("Task", task_id)
    except AttachError as exc:
        log.info("task.bind outcome=%s", exc.code)
        raise TaskNotAssignable() from exc
    if not is_task(task, task_id):
        log.info("task.bind outcome=not_that_task")
        raise TaskNotAssignable()
    if assignment_problem(task, f"Patient/{launch.patient_id}", questionnaire_url):
        raise TaskNotAssignable()
    if not is_open(task):
        return "This assignment is already closed in your clinic's record."
    assignment = {"task": f"Task/{task_id}", "questionnaire": questionnaire_url}
    record = {"cred": delivery.credential_key(launch), **assignment}
    launch.services.store.put(BIND_NS, sid, record, _ttl())
    return None


def bound(launch: LaunchContext, sid: str, questionnaire_url: str) -> dict[str, str] | None:
    """The assignment (``task``, ``questionnaire``) bound to this submission id for this user,
    patient and instrument, if any (a submission id bound on one form and posted with another
    instrument's answers answers no Task)."""
    record = launch.services.store.get(BIND_NS, sid)
    if record is None or record.get("cred") != delivery.credential_key(launch):
        return None
    if record.get("questionnaire") != questionnaire_url:
        return None
    return {"task": str(record["task"]), "questionnaire": str(record["questionnaire"])}


def index(launch: LaunchContext, task: str, sid: str) -> None:
    """Remember which submission answered the Task (for the patient's page)."""
    launch.services.store.put(INDEX_NS, _index_key(launch, task), {"sid": sid}, _ttl())


def _index_key(launch: LaunchContext, task: str) -> str:
    return f"{delivery.credential_key(launch)}|{task}"


def is_task(resource: dict[str, Any], task_id: str) -> bool:
    """Whether a read answered with the Task asked for (not another resource or Task)."""
    return resource.get("resourceType") == "Task" and resource.get("id") == task_id


def problem(launch: LaunchContext) -> str | None:
    """Why this launch cannot update Tasks, in words; None when it can."""
    if not (launch.can("Task", "r") and launch.can("Task", "u")):
        return "The EHR did not grant the app permission to update Task."
    caps = capabilities(delivery.outbox_services().capabilities, launch)
    if caps is not None and not (caps.supports("Task", "read") and caps.supports("Task", "update")):
        return "This EHR does not accept updates of Task."
    return None


def complete_after_delivery(launch: LaunchContext, found: Status) -> dict[str, Any] | None:
    """Close the Task a delivered submission answered, once; the outcome, recorded.

    None when there is nothing to do (no Task bound, not delivered yet).
    """
    assignment = found.record.get("assignment")
    if not assignment or found.state != "delivered":
        return None
    outcome = found.record.get("task_outcome")
    if outcome is not None and outcome.get("state") != WAITING:
        return dict(outcome)
    store = launch.services.store
    with store.lock(f"task-outcome:{found.submission_id}"):
        fresh = store.get(SUBMISSION_NS, found.submission_id) or found.record
        outcome = fresh.get("task_outcome")
        if outcome is None or outcome.get("state") == WAITING:
            outcome = _complete(launch, found, assignment)
            log.info("task.complete outcome=%s", outcome["state"])
            # A Task completed with this response is left alone if this is lost and redone.
            record_outcome(launch, found, "task_outcome", outcome)
    found.record["task_outcome"] = outcome
    return dict(outcome)


def _complete(launch: LaunchContext, found: Status, assignment: dict[str, str]) -> dict[str, Any]:
    reason = problem(launch)
    if reason:
        return {"state": NOT_UPDATED, "reason": reason, "code": "not_allowed"}
    response = found.response_reference
    if not response:
        reason = "No questionnaire response was written, so the task cannot point to one."
        return {"state": NOT_UPDATED, "reason": reason, "code": "no_response"}
    patient = f"Patient/{launch.patient_id}"
    try:
        return _write(launch.fhir(), assignment, response, patient)
    except (FhirUnauthorized, AuthorizationExpired) as exc:
        return {"state": WAITING, "reason": exc.description, "code": exc.code}
    except FhirError as exc:
        if exc.retryable:
            return {"state": WAITING, "reason": exc.description, "code": exc.code}
        return {"state": NOT_UPDATED, "reason": exc.user_text(), "code": exc.code}
    except AttachError as exc:
        return {"state": NOT_UPDATED, "reason": exc.description, "code": exc.code}


def _write(
    client: FhirClient, assignment: dict[str, str], response: str, patient: str
) -> dict[str, Any]:
    """Read, decide, write with If-Match; after a 412, once more from a fresh read."""
    outcome = _attempt(client, assignment, response, patient)
    if outcome is None:  # the Task changed since it was read: decide again on what it is now
        outcome = _attempt(client, assignment, response, patient)
    if outcome is None:
        reason = "The task kept changing in the EHR while the app tried to close it."
        return {"state": NOT_UPDATED, "reason": reason, "code": "changed"}
    return outcome


def _attempt(
    client: FhirClient, assignment: dict[str, str], response: str, patient: str
) -> dict[str, Any] | None:
    """One read-decide-write; None when the write met a newer version (412)."""
    task, url = assignment["task"], assignment["questionnaire"]
    task_id = task.partition("/")[2]
    current = client.read("Task", task_id)
    if not is_task(current, task_id):  # its id would name the resource the update writes
        reason = "The EHR answered with another resource than the task it was asked for."
        return {"state": NOT_UPDATED, "reason": reason, "code": "not_that_task"}
    decision = decide(current, response, patient, url, now())
    if decision.action == DONE:
        return {"state": COMPLETED, "task": task, "response": response}
    if decision.action == CLOSED_TASK:
        return {"state": CLOSED, "reason": decision.reason, "code": "closed"}
    if decision.action == REFUSED or decision.task is None:
        return {"state": NOT_UPDATED, "reason": decision.reason, "code": "refused"}
    try:
        client.update(decision.task, if_match=decision.version)
    except FhirPreconditionFailed:
        return None
    return {"state": COMPLETED, "task": task, "response": response}


def sent_for(launch: LaunchContext, tasks: list[str]) -> dict[str, Sent]:
    """The delivered submissions of this user that answered these Tasks, by ``Task/<id>``, with
    what closing the Task came to so far (it reads only: the follow-ups write)."""
    out = {}
    for task in tasks:
        pointer = launch.services.store.get(INDEX_NS, _index_key(launch, task))
        found = status(launch, str(pointer["sid"])) if pointer else None
        assignment = found.record.get("assignment") if found else None
        if found is None or found.state != "delivered" or (assignment or {}).get("task") != task:
            continue
        outcome = found.record.get("task_outcome")
        authored = str(found.record.get("authored") or "")
        out[task] = Sent(found.submission_id, authored, outcome)
    return out
