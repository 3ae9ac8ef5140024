"""The assign blueprint: a clinician asks the patient to complete a questionnaire at home.

URLs live under ``/app/<ctx>/assign/``; both are POSTs from the Choose page (CSRF checked
app-wide). ``POST /<instrument_id>`` writes an SDC Task (:mod:`attach_fhir.assignment_request`)
that the patient's page lists and the patient's submission closes
(:mod:`smart_app.records.task_updates`).
``POST /tasks/<id>/withdraw`` sets an open one ``cancelled`` with ``If-Match`` on the version the
clinician saw.

The Task is written through the launch's FHIR client, not the outbox: the clinician is waiting
for the answer and is told at once what the EHR said, and nothing is lost when it fails (the
request is the form on the page, shown again with its values). A double click or a retry after
a lost answer writes one Task: the form's id becomes the Task's identifier, created with
``If-None-Exist`` on it (and, within this app, under a lock on that id).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for

from attach_fhir.assignment_request import (
    CHANGED,
    NOT_AN_ASSIGNMENT,
    AssignmentRequest,
    build_task,
    if_none_exist,
    is_ours,
    read_form,
    task_changes,
    withdraw,
)
from attach_fhir.assignments import task_questionnaires
from attach_fhir.capabilities import ServerCapabilities
from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import (
    FhirConflict,
    FhirError,
    FhirGone,
    FhirNotFound,
    FhirPreconditionFailed,
)
from attach_fhir.instruments import Instrument, library
from attach_fhir.io.fhir_client import FhirClient, is_fhir_id
from attach_fhir.task_completion import CLOSED, REFUSED, is_for
from smart_app.assess import routes as assess
from smart_app.forms.instrument_choice import choices
from smart_app.forms.questionnaire_source import instrument, registration_option
from smart_app.records import careplan_records, patient_facts
from smart_app.records.assignment_panel import (
    AssignForm,
    Outcome,
    assign_problem,
    requester,
    withdraw_problem,
)
from smart_app.records.submission import SUBMISSION_ID
from smart_app.records.task_updates import is_task
from smart_app.web.audience import clinicians_only
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext
from smart_app.web.errors import AuthorizationExpired, BadLaunchRequest
from smart_app.web.server_profile import WritePlan

log = logging.getLogger(__name__)

bp = Blueprint("assign", __name__, template_folder="templates", url_prefix="/app/<ctx>/assign")
clinicians_only(bp)  # a patient's launch gets the friendly 403 (web.audience)

NOT_SENT = (
    "The request was not sent to the patient: {reason} Your due date and note are still here; "
    "try again."
)


def _clinician(launch: LaunchContext) -> str:
    """The requester; 403 for a patient's launch or a user who is not a clinician."""
    who = requester(launch)
    if who is None:
        abort(403, "Only a clinician can ask the patient to complete a questionnaire at home.")
    return who


@bp.post("/<instrument_id>")
def create(ctx: str, instrument_id: str) -> Any:
    """Write the Task asking the patient to complete this instrument; back to the Choose page."""
    launch, write_plan, caps = assess.write_context()
    who = _clinician(launch)
    problem = assign_problem(launch, caps)
    if problem:
        abort(403, problem)
    inst = instrument(instrument_id)
    _require_fit(launch, inst)
    request_id = request.form.get("request_id", "")
    if not SUBMISSION_ID.fullmatch(request_id):
        raise BadLaunchRequest("The form carried no valid request id; please reload the page.")
    due, note = request.form.get("due", ""), request.form.get("note", "")
    form = AssignForm(request_id, due[:32], note[:2000])
    parsed = read_form(due, note, dt.date.today())
    if parsed.errors:
        form.errors = parsed.errors
        outcome = Outcome("invalid", instrument=inst.id)
        return _again(launch, write_plan, caps, form, inst, outcome, 422)
    task = build_task(
        AssignmentRequest(
            request_id=request_id,
            patient=f"Patient/{launch.patient_id}",
            requester=who,
            questionnaire=f"{inst.url}|{inst.version}",
            title=inst.title,
            authored=now(),
            due=parsed.due,
            note=parsed.note,
            careplan=_active_plan(launch),
            encounter=f"Encounter/{launch.encounter_id}" if launch.encounter_id else None,
            security_labels=registration_option(launch, "security_labels"),
        )
    )
    client = launch.fhir()
    try:
        with launch.services.store.lock(f"assign:{request_id}"):
            written = client.create(task, if_none_exist=if_none_exist(request_id))
    except AuthorizationExpired:
        raise
    except FhirError as exc:
        log.info("assign.create outcome=%s", exc.code)
        if exc.retryable or exc.http_status is None or exc.http_status in (401, 408):
            outcome = Outcome("not-sent", (NOT_SENT.format(reason=exc.description),), inst.id)
        else:
            outcome = Outcome("refused", (exc.user_text(),), inst.id)
        return _again(launch, write_plan, caps, form, inst, outcome, 502)
    except AttachError as exc:
        log.info("assign.create outcome=%s", exc.code)
        outcome = Outcome("not-sent", (NOT_SENT.format(reason=exc.description),), inst.id)
        return _again(launch, write_plan, caps, form, inst, outcome, 502)
    task_id = written.get("id")
    if (
        not is_fhir_id(task_id)
        or not is_ours(written, request_id)
        or not is_for(written, f"Patient/{launch.patient_id}")
        or inst.url not in {c.partition("|")[0] for c in task_questionnaires(written)}
    ):
        log.info("assign.create outcome=not_that_task")
        reason = "The EHR answered with another resource than the task it was sent."
        outcome = Outcome("refused", (reason,), inst.id)
        return _again(launch, write_plan, caps, form, inst, outcome, 502)
    log.info("assign.create outcome=created")
    target = url_for("assess.choose", ctx=launch.id, assigned=task_id)
    return redirect(f"{target}#sent", code=303)


def _require_fit(launch: LaunchContext, inst: Instrument) -> None:
    """409 unless the instrument is offered for this patient to answer themselves."""
    lib = library()
    pair = [(inst, lib.questionnaire(f"{inst.url}|{inst.version}"))]
    (choice,) = choices(pair, patient_facts.load(launch).facts, dt.date.today())
    if choice.fit == "no" or choice.respondent != "patient":
        abort(409, "This questionnaire is not one the patient can be asked to complete at home.")


def _active_plan(launch: LaunchContext) -> str | None:
    """``CarePlan/<id>`` of the patient's active plan from this app, when there is one."""
    if not launch.can("CarePlan", "s"):
        return None
    try:
        found = careplan_records.active_plan(launch.fhir(), str(launch.patient_id))
    except AttachError as exc:
        log.info("assign.careplan outcome=%s", exc.code)
        return None
    return found.reference if found else None


def _again(
    launch: LaunchContext,
    write_plan: WritePlan,
    caps: ServerCapabilities | None,
    form: AssignForm,
    inst: Instrument,
    outcome: Outcome,
    status: int,
) -> tuple[str, int]:
    return assess.render_choose(
        launch, write_plan, caps, forms={inst.id: form}, outcome=outcome, status=status
    )


@bp.post("/tasks/<task_id>/withdraw")
def withdraw_task(ctx: str, task_id: str) -> Any:
    """Set an open assignment ``cancelled`` if it is still the version the clinician saw."""
    launch, write_plan, caps = assess.write_context()
    _clinician(launch)
    problem = withdraw_problem(launch, caps)
    if problem:
        abort(403, problem)
    seen = request.form.get("version", "")
    if not is_fhir_id(task_id):
        abort(404)
    if not is_fhir_id(seen):
        raise BadLaunchRequest("The form carried no valid version; please reload the page.")
    client = launch.fhir()
    urls = [i.url for i in library().instruments()]
    patient = f"Patient/{launch.patient_id}"
    try:
        current = _read(client, task_id)
        decision = withdraw(current, patient, urls, seen, now())
        if decision.action == REFUSED and decision.reason == NOT_AN_ASSIGNMENT:
            abort(404)
        if decision.action == CHANGED:
            outcome = _changed(client, task_id, seen, current)
        elif decision.action in (CLOSED, REFUSED) or decision.task is None:
            outcome = Outcome("closed", (f"Not withdrawn: {decision.reason}",), task=task_id)
        else:
            try:
                client.update(decision.task, if_match=seen)
            except (FhirPreconditionFailed, FhirConflict):
                outcome = _changed(client, task_id, seen, _read(client, task_id))
            else:
                log.info("assign.withdraw outcome=withdrawn")
                target = url_for("assess.choose", ctx=launch.id, withdrawn=task_id)
                return redirect(f"{target}#sent", code=303)
    except AuthorizationExpired:
        raise
    except FhirError as exc:
        log.info("assign.withdraw outcome=%s", exc.code)
        if exc.retryable or exc.http_status is None:
            lines = (f"Not withdrawn: {exc.description} Try again.",)
            outcome = Outcome("not-sent", lines, task=task_id)
        else:
            outcome = Outcome("refused", (exc.user_text(),), task=task_id)
    log.info("assign.withdraw outcome=%s", outcome.kind)
    status = 409 if outcome.kind in (CHANGED, "closed") else 502
    return assess.render_choose(launch, write_plan, caps, outcome=outcome, status=status)


def _read(client: FhirClient, task_id: str) -> dict[str, Any]:
    """The Task as the server holds it now; 404 when it is gone or the answer is another."""
    try:
        task = client.read("Task", task_id)
    except (FhirNotFound, FhirGone):
        abort(404)
    if not is_task(task, task_id):
        log.info("assign.withdraw outcome=not_that_task")
        abort(404)
    return task


def _changed(client: FhirClient, task_id: str, seen: str, current: dict[str, Any]) -> Outcome:
    """Nothing written: what changed since the clinician's version, from its history."""
    try:
        before: dict[str, Any] | None = client.vread("Task", task_id, seen)
    except AttachError as exc:
        log.info("assign.vread outcome=%s", exc.code)
        before = None
    lines = (
        "Not withdrawn: the request was changed in the EHR after this page was shown, so "
        "nothing was written. What changed:",
        *task_changes(before, current),
    )
    return Outcome(CHANGED, lines, task=task_id)
