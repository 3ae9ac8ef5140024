"""The patient's side after a standalone launch: assignments, the plan, the attachment journal.

URLs live under ``/app/<ctx>/patient/``. The patient sees what their clinician assigned (open
Tasks naming a Questionnaire; without one, the plan's re-assessment activity) and completes it
with the assess flow's form (a Task's link names it, so the delivered response closes it:
``task_updates``); their scores are written ``preliminary`` (``submission``) until a
clinician reviews them. Journal entries answer the unscored attachment-journal Questionnaire and
go through the same outbox as a QuestionnaireResponse authored by the patient, ``basedOn`` the
CarePlan (``attach_fhir.journal``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from attach_fhir.assignment_request import patient_note
from attach_fhir.assignments import (
    Assignment,
    PlanActivity,
    assignments,
    journal_activity,
    last_done,
    plan_activities,
)
from attach_fhir.errors import AttachError
from attach_fhir.instruments import library
from attach_fhir.io.outbox import Mode
from attach_fhir.journal import JOURNAL_URL, journal_transaction
from attach_fhir.patient_words import (
    assignment_line,
    day_words,
    questionnaire_name,
)
from attach_fhir.writeback import WritebackContext
from smart_app.forms.form_response import parse_form
from smart_app.forms.questionnaire_form import build_form
from smart_app.forms.questionnaire_source import registration_option
from smart_app.patient import view
from smart_app.records import careplan_records, careplan_view, delivery, task_updates
from smart_app.records.submission import SUBMISSION_ID, people
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext, current_launch
from smart_app.web.errors import ConfigurationError
from smart_app.web.server_profile import capabilities, plan

log = logging.getLogger(__name__)

bp = Blueprint("patient", __name__, template_folder="templates", url_prefix="/app/<ctx>/patient")

#: ATTACH_PATIENT_RESULTS: patients see their own scores in plain words (default); false: not.
RESULTS = "PATIENT_RESULTS"


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    value = app.config.setdefault(RESULTS, True)
    if value not in (True, False, 0, 1):  # from the environment: true, false, 1 or 0
        raise ConfigurationError(f"ATTACH_{RESULTS} must be true or false.")
    app.config[RESULTS] = bool(value)


def results_shown(app: Flask) -> bool:
    """True when this clinic lets patients see their own results."""
    return bool(app.config.get(RESULTS, True))


@bp.app_context_processor
def _patient_pages() -> dict[str, Any]:
    return {"patient_results_shown": results_shown(current_app)}


def _launch() -> LaunchContext:
    launch = current_launch()
    if not launch.patient_id:
        abort(400, "No patient is signed in.")
    return launch


def _search(launch: LaunchContext, kind: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """A search the grant allows; nothing (logged) when it does not or the server refuses."""
    if not launch.can(kind, "s"):
        return []
    try:
        return list(launch.fhir().search(kind, params))
    except AttachError as exc:
        log.info("patient.search type=%s outcome=%s", kind, exc.code)
        return []


def _plans(launch: LaunchContext) -> list[dict[str, Any]]:
    return _search(
        launch, "CarePlan", {"subject": f"Patient/{launch.patient_id}", "status": "active"}
    )


def _from_task(assignment: Assignment) -> bool:
    return assignment.source.startswith("Task/")


def _closed_by_us(sent: task_updates.Sent | None) -> bool:
    return sent is not None and (sent.outcome or {}).get("state") == task_updates.COMPLETED


@bp.get("/")
def home(ctx: str) -> str:
    """What the patient is asked to do, their plan in plain words, and their journal."""
    launch = _launch()
    tasks = _search(launch, "Task", {"patient": f"Patient/{launch.patient_id}"})
    careplans = _plans(launch)
    responses: list[dict[str, Any]] = []
    if launch.can("QuestionnaireResponse", "s"):
        try:
            responses = careplan_records.completed_responses(launch.fhir(), str(launch.patient_id))
        except AttachError as exc:
            log.info("patient.responses outcome=%s", exc.code)
    assigned = assignments(tasks, careplans)
    # Tasks this app's submissions answered (closed by the follow-ups of their delivery); the
    # others are shown as sent, waiting for the clinic, not as still to do.
    sent = task_updates.sent_for(launch, [a.source for a in assigned if _from_task(a)])
    assigned = [a for a in assigned if not _closed_by_us(sent.get(a.source))]
    # "Last filled in": only what the patient filled in, not what a clinician entered.
    own = [r for r in responses if view.author(r) == f"Patient/{launch.patient_id}"]
    today = view.today()
    asked_by = view.requesters(launch, tasks)
    todo = []
    for a in assigned:
        inst = view.instrument(a)
        line = assignment_line(
            questionnaire_name(inst, a.title), asked_by.get(a.source), a.due, today
        )
        done = last_done(a, own)
        todo.append((a, inst.id if inst else None, line, done, day_words(done, today)))
    # What the clinician who asked wrote for the patient (plain text; shown escaped)
    notes = {f"Task/{t['id']}": patient_note(t) for t in tasks if isinstance(t.get("id"), str)}
    journal = journal_activity(careplans)
    entries = careplan_records.journal_of(responses)
    sid = request.args.get("sid", "")
    item = delivery.outbox_services().outbox.store.get(sid) if sid else None
    if item is not None and item.target != delivery.target_for(launch):
        item = None  # another user's submission: not shown
    return render_template(
        "patient/home.html",
        launch=launch,
        todo=todo,
        sent=sent,
        notes=notes,
        activities=plan_activities(careplans),
        goals=view.goals(launch, today),
        sent_on={ref: day_words(s.authored, today) for ref, s in sent.items()},
        patient_name=view.patient_name(launch),
        journal=journal,
        entries=careplan_view.journal_rows(entries),
        item=item,
    )


@bp.get("/results")
def results(ctx: str) -> str:
    """The patient's own scores in plain words, or a note that the clinic keeps them for the
    appointment (ATTACH_PATIENT_RESULTS=false)."""
    launch = _launch()
    if not results_shown(current_app):
        abort(404)
    observed: list[dict[str, Any]] = []
    if launch.can("Observation", "s"):
        try:
            observed = careplan_records.score_observations(launch.fhir(), str(launch.patient_id))
        except AttachError as exc:
            log.info("patient.results outcome=%s", exc.code)
    return render_template(
        "patient/results.html", launch=launch, days=view.result_days(observed, view.today())
    )


def _journal_page(
    launch: LaunchContext, form: Any, sid: str, activity: PlanActivity | None, status: int = 200
) -> tuple[str, int]:
    page = render_template(
        "patient/journal.html",
        launch=launch,
        form=form,
        submission_id=sid,
        activity=activity,
    )
    return page, status


@bp.route("/journal", methods=["GET", "POST"])
def journal(ctx: str) -> Any:
    """Write a journal entry; it is saved linked to the plan's journaling activity."""
    launch = _launch()
    questionnaire = library().questionnaire(JOURNAL_URL)
    activity = journal_activity(_plans(launch))
    if request.method == "GET":
        return _journal_page(launch, build_form(questionnaire), str(uuid.uuid4()), activity)
    sid = request.form.get("submission_id", "")
    if not SUBMISSION_ID.fullmatch(sid):
        abort(400, "The form carried no valid submission id; please reload it.")
    parsed = parse_form(questionnaire, request.form, status="completed")
    if not parsed.ok:
        return _journal_page(launch, parsed.form, sid, activity, 422)
    write_plan = plan(capabilities(delivery.outbox_services().capabilities, launch), launch)
    if not write_plan.writes:
        abort(403, "This EHR does not let the app save your journal entries.")
    who = people(launch)
    ctx_ = WritebackContext(
        submission_id=sid,
        patient=who.patient,
        author=who.author,
        authored=now(),
        source=who.source,
        security_labels=registration_option(launch, "security_labels"),
        include_provenance=write_plan.provenance,
    )
    bundle = journal_transaction(
        parsed.response,
        questionnaire,
        careplan=activity.careplan if activity else None,
        activity=activity.coding if activity else None,
        ctx=ctx_,
    )
    mode: Mode = "ordered-creates" if write_plan.mode == "ordered-creates" else "transaction"
    item = delivery.send(launch, sid, bundle, mode)
    log.info("patient.journal outcome=%s", item.status)
    return redirect(url_for(".home", ctx=ctx, sid=sid), code=303)
