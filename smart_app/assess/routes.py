"""The assess blueprint: choose an instrument, fill it, save a draft, submit, see what happened.

URLs live under ``/app/<ctx>/assess/`` (see :mod:`smart_app.web.context`). Every POST carries the
CSRF token (checked app-wide) and the form's submission id, generated once when the form is
first shown. What the EHR allows (CapabilityStatement and granted scopes) is told on the Choose
page before anyone starts, and buttons it does not allow are disabled with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from typing import Any, cast

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState

from attach_fhir.canonical import USED_ALTHOUGH_NOT_FITTING_EXT
from attach_fhir.errors import AttachError
from attach_fhir.fhir_url import is_fhir_id
from attach_fhir.instrument_fit import without_sections
from attach_fhir.instruments import UnknownInstrument, library
from attach_fhir.response_check import InvalidResponse
from smart_app.forms import choose_page, instrument_choice
from smart_app.forms.form_instances import form_after_action
from smart_app.forms.form_response import parse_form, response_to_values
from smart_app.forms.instrument_choice import choices
from smart_app.forms.questionnaire_form import ErrorLink, QuestionnaireForm, build_form
from smart_app.forms.questionnaire_source import Resolved, instrument, resolve
from smart_app.records import (
    delivery,
    follow_ups,
    goal_updates,
    patient_facts,
    response_summaries,
    responses,
    submission,
    task_updates,
)
from smart_app.records.receipt import describe
from smart_app.records.submission import SUBMISSION_ID
from smart_app.web import kept_forms
from smart_app.web.audience import PATIENT_HOME, clinician_page, is_patient_launch
from smart_app.web.context import LaunchContext, current_launch
from smart_app.web.errors import AuthorizationExpired, BadLaunchRequest
from smart_app.web.server_profile import WritePlan

log = logging.getLogger(__name__)

#: Store namespace: submission id -> the clinician's "use anyway" (reason, instrument, user).
ANYWAY_NS = "fit-anyway"

bp = Blueprint("assess", __name__, template_folder="templates", url_prefix="/app/<ctx>/assess")


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    instrument_choice.init_app(cast(Flask, state.app))  # loads and validates ATTACH_FIT_RULES


@bp.get("/")
@clinician_page
def choose(ctx: str) -> tuple[str, int]:
    """Instruments that fit the patient, with earlier responses and drafts in progress."""
    launch, write_plan, caps = choose_page.write_context()
    delivery.remember(launch, if_changed=True)
    return choose_page.render_choose(
        launch,
        write_plan,
        caps,
        assigned=request.args.get("assigned"),
        withdrawn=request.args.get("withdrawn"),
    )


@bp.route("/<instrument_id>/", methods=["GET", "POST"])
def fill(ctx: str, instrument_id: str) -> Any:
    """GET shows the form (fresh, a draft, or kept answers); POST updates, saves or submits."""
    launch, write_plan, caps = choose_page.write_context()
    resolved = _for_patient(launch, resolve(launch, write_plan, caps, instrument(instrument_id)))
    if request.method == "GET":
        return _show_fresh(launch, write_plan, resolved)
    sid = request.form.get("submission_id", "")
    if not SUBMISSION_ID.fullmatch(sid):
        raise BadLaunchRequest("The form carried no valid submission id; please reload it.")
    action = request.form.get("action", "submit")
    if action == "draft":
        return _save_draft(launch, write_plan, resolved, sid)
    if action == "submit":
        return _submit(launch, write_plan, resolved, sid)
    # "update" (no-JS enableWhen) or a repeating group's add/remove button: the page again with
    # every answer, nothing saved, submitted or scored
    values = parse_form(resolved.questionnaire, request.form, status="in-progress").values
    form = form_after_action(resolved.questionnaire, values, action)
    return _page(launch, write_plan, resolved, form, sid)


def _show_fresh(launch: LaunchContext, write_plan: WritePlan, resolved: Resolved) -> Any:
    draft_id = request.args.get("draft")
    if draft_id:
        draft = _read_draft(launch, resolved, draft_id)
        values = response_to_values(resolved.questionnaire, draft)
        sid = responses.submission_tag(draft) or str(uuid.uuid4())
        form = build_form(resolved.questionnaire, values)
        saved = draft.get("authored") if request.args.get("saved") else None
        return _page(launch, write_plan, resolved, form, sid, draft_id=draft_id, saved=saved)
    kept = kept_forms.take(launch, kept_forms.form_name())
    if kept is not None:  # answers posted when the last launch expired
        sid = next(iter(kept.get("submission_id") or []), "")
        form = build_form(resolved.questionnaire, kept)
        sid = sid if SUBMISSION_ID.fullmatch(sid) else str(uuid.uuid4())
        note = _bind_assignment(launch, resolved, sid) or (
            "Your answers from before the connection to the EHR expired are back."
        )
        return _page(launch, write_plan, resolved, form, sid, note=note)
    form, sid = build_form(resolved.questionnaire), str(uuid.uuid4())
    anyway = request.args.get("anyway", "")
    reason = _anyway_reason(launch, anyway, resolved.instrument.url)
    if reason is not None:  # started with "use anyway" on the Choose page
        note = (
            "You chose to use this questionnaire although it does not fit this patient. "
            f"{reason} The response records that choice."
        )
        return _page(launch, write_plan, resolved, form, anyway, note=note)
    if request.args.get("task") is None and _does_not_fit(launch, resolved):
        # only after "Use anyway" (a POST), so that the response records the choice
        choose_url = url_for(".choose", ctx=launch.id)
        return redirect(f"{choose_url}#instrument-{resolved.instrument.id}", code=303)
    closed = _bind_assignment(launch, resolved, sid)
    return _page(launch, write_plan, resolved, form, sid, note=closed)


def _not_fitting(launch: LaunchContext, resolved: Resolved) -> str | None:
    """Why the instrument does not fit the patient, when a clinician uses it; else None."""
    if launch.record.get("kind") == "patient":
        return None
    inst = resolved.instrument
    pair = [(inst, resolved.packaged)]
    (choice,) = choices(pair, patient_facts.load(launch).facts, dt.date.today())
    return choice.reason if choice.fit == "no" else None


def _does_not_fit(launch: LaunchContext, resolved: Resolved) -> bool:
    """Whether a clinician opens an instrument that does not fit the patient."""
    return _not_fitting(launch, resolved) is not None


def _for_patient(launch: LaunchContext, resolved: Resolved) -> Resolved:
    """The Questionnaire to show without the sections that do not apply to this patient (the
    romantic partner for a child); scoring still uses the packaged Questionnaire, where a
    section not shown is one the respondent skipped."""
    if not instrument_choice.rules_have_sections(resolved.instrument.id):
        return resolved
    patient = patient_facts.load(launch)
    hidden = instrument_choice.hidden(resolved.instrument.id, patient.facts, dt.date.today())
    if not hidden:
        return resolved
    if launch.record.get("kind") != "patient":
        g.hidden_sections = [s.label for s in hidden]
    trimmed = without_sections(resolved.questionnaire, hidden)
    return dataclasses.replace(resolved, questionnaire=trimmed)


@bp.post("/<instrument_id>/use-anyway")
def use_anyway(ctx: str, instrument_id: str) -> Any:
    """A clinician starts an instrument that does not fit the patient: the reason is kept with
    a new submission id, shown on the form and recorded on the response."""
    launch, _, _ = choose_page.write_context()
    if launch.record.get("kind") == "patient":
        abort(403)
    inst = instrument(instrument_id)
    patient = patient_facts.load(launch)
    pair = [(inst, library().questionnaire(f"{inst.url}|{inst.version}"))]
    (choice,) = choices(pair, patient.facts, dt.date.today())
    target = url_for(".fill", ctx=launch.id, instrument_id=inst.id)
    if choice.fit != "no":  # it fits (or may): nothing to record
        return redirect(target, code=303)
    sid = str(uuid.uuid4())
    record = {"cred": delivery.credential_key(launch), "url": inst.url, "reason": choice.reason}
    ttl = float(current_app.config["LAUNCH_TTL"]) * 14  # as long as a task binding
    launch.services.store.put(ANYWAY_NS, sid, record, ttl)
    log.info("assess.use_anyway instrument=%s", inst.id)
    return redirect(f"{target}?anyway={sid}", code=303)


def _anyway_reason(launch: LaunchContext, sid: str, url: str) -> str | None:
    """The reason kept by "use anyway" for this submission, user and instrument, if any."""
    if not SUBMISSION_ID.fullmatch(sid):
        return None
    record = launch.services.store.get(ANYWAY_NS, sid)
    if record is None or record.get("cred") != delivery.credential_key(launch):
        return None
    return str(record["reason"]) if record.get("url") == url else None


def _mark_anyway(
    launch: LaunchContext, resolved: Resolved, response: dict[str, Any], sid: str
) -> None:
    """Record the clinician's "use anyway" on the response (draft or completed); also when the
    form was reached another way (a draft from before, a form posted without the button)."""
    reason = _anyway_reason(launch, sid, resolved.instrument.url) or _not_fitting(launch, resolved)
    if reason is not None:
        response["extension"] = [{"url": USED_ALTHOUGH_NOT_FITTING_EXT, "valueString": reason}]


def _bind_assignment(launch: LaunchContext, resolved: Resolved, sid: str) -> str | None:
    """``?task=<id>`` (the patient's assignment link): bind that Task to this form's submission
    id on the server, once the server shows it is this patient's open assignment of this
    instrument (404 otherwise). A note for the form when it is already closed."""
    task_id = request.args.get("task")
    if task_id is None:
        return None
    return task_updates.bind(launch, sid, task_id, resolved.instrument.url)


def _read_draft(launch: LaunchContext, resolved: Resolved, draft_id: str) -> dict[str, Any]:
    if not is_fhir_id(draft_id):
        abort(404)
    draft = launch.fhir().read("QuestionnaireResponse", draft_id)
    subject = (draft.get("subject") or {}).get("reference")
    url = str(draft.get("questionnaire") or "").partition("|")[0]
    if subject != f"Patient/{launch.patient_id}" or url != resolved.instrument.url:
        abort(404)  # another patient's or another instrument's response: not via this URL
    if draft.get("status") != "in-progress":
        abort(409, "This response was already submitted.")
    return draft


def _write_draft(launch: LaunchContext, response: dict[str, Any], sid: str) -> str:
    """Create or update the submission's in-progress QuestionnaireResponse; its id."""
    who = submission.people(launch)
    draft_ctx = responses.DraftContext(
        submission_id=sid,
        patient=str(launch.patient_id),
        author=who.author,
        source=who.source,
        encounter=launch.encounter_id,
        security_labels=submission.registration_option(launch, "security_labels"),
    )
    return responses.save_draft(launch.fhir(), response, draft_ctx)


def _save_draft(launch: LaunchContext, write_plan: WritePlan, resolved: Resolved, sid: str) -> Any:
    parsed = parse_form(resolved.questionnaire, request.form, status="in-progress")
    if not parsed.ok:
        return _page(launch, write_plan, resolved, parsed.form, sid, status=422)
    if not write_plan.can_draft:
        note = write_plan.draft_reason or "Drafts cannot be saved here."
        return _page(launch, write_plan, resolved, parsed.form, sid, note=note, status=403)
    if submission.status(launch, sid) is not None:
        return redirect(url_for(".submitted", ctx=launch.id, sid=sid), code=303)
    _mark_anyway(launch, resolved, parsed.response, sid)
    try:
        draft_id = _write_draft(launch, parsed.response, sid)
    except responses.DraftClosed:
        return redirect(url_for(".submitted", ctx=launch.id, sid=sid), code=303)
    except AttachError as exc:
        note = f"The draft could not be saved: {exc.description} Your answers are still here."
        return _page(launch, write_plan, resolved, parsed.form, sid, note=note, status=502)
    target = url_for(".fill", ctx=launch.id, instrument_id=resolved.instrument.id)
    return redirect(f"{target}?draft={draft_id}&saved=1", code=303)


@bp.post("/<instrument_id>/draft")
def autosave(ctx: str, instrument_id: str) -> tuple[Response, int]:
    """The answers as the draft, posted by static/autosave.js when the page is left with changes.

    JSON: 200 ``{"draft": id}``; 409 once submitted; 422 answers the form would refuse; 403
    drafts not allowed here; 502 the server refused; 401 the launch expired, answers kept for
    the next launch's form. The CSRF token comes with the form.
    """
    try:
        return _autosave(instrument_id)
    except AuthorizationExpired:
        # Kept under the fill page's name: the form opened after the next launch shows them.
        fill = url_for(".fill", ctx=ctx, instrument_id=instrument_id)
        kept_forms.keep_posted_form(kept_forms.form_name(fill))
        return jsonify({"code": AuthorizationExpired.code}), 401


def _autosave(instrument_id: str) -> tuple[Response, int]:
    launch, write_plan, caps = choose_page.write_context()
    resolved = _for_patient(launch, resolve(launch, write_plan, caps, instrument(instrument_id)))
    sid = request.form.get("submission_id", "")
    if not SUBMISSION_ID.fullmatch(sid):
        raise BadLaunchRequest("The form carried no valid submission id; please reload it.")
    parsed = parse_form(resolved.questionnaire, request.form, status="in-progress")
    if not parsed.ok:
        return jsonify({"code": "invalid_answers"}), 422
    if not write_plan.can_draft:
        return jsonify({"code": "drafts_not_allowed"}), 403
    if submission.status(launch, sid) is not None:
        return jsonify({"code": "submitted"}), 409
    _mark_anyway(launch, resolved, parsed.response, sid)
    try:
        draft_id = _write_draft(launch, parsed.response, sid)
    except responses.DraftClosed:
        return jsonify({"code": "submitted"}), 409
    except AuthorizationExpired:
        raise
    except AttachError as exc:
        log.info("assess.autosave outcome=%s", exc.code)
        return jsonify({"code": exc.code}), 502
    return jsonify({"draft": draft_id}), 200


def _submit(launch: LaunchContext, write_plan: WritePlan, resolved: Resolved, sid: str) -> Any:
    if submission.status(launch, sid) is not None:  # a double click or a retried POST
        return redirect(url_for(".submitted", ctx=launch.id, sid=sid), code=303)
    parsed = parse_form(resolved.questionnaire, request.form, status="completed")
    if not parsed.ok:
        return _page(launch, write_plan, resolved, parsed.form, sid, status=422)
    caregiver = None
    if resolved.instrument.respondent == "parent-caregiver":
        caregiver = patient_facts.caregiver(launch)
    assignment = task_updates.bound(launch, sid, resolved.instrument.url)
    _mark_anyway(launch, resolved, parsed.response, sid)
    try:
        submission.submit(
            launch, resolved, parsed.response, write_plan, sid, caregiver, assignment=assignment
        )
    except InvalidResponse as exc:
        form = parsed.form
        form.errors.extend(ErrorLink("#", p["message"]) for p in exc.problems)
        return _page(launch, write_plan, resolved, form, sid, status=422)
    if assignment:
        task_updates.index(launch, assignment["task"], sid)
    # delivered now: the care plan's goals follow the new scores, the assigning Task closes
    follow_ups.after_delivery([sid], launch)
    return redirect(url_for(".submitted", ctx=launch.id, sid=sid), code=303)


def _page(
    launch: LaunchContext,
    write_plan: WritePlan,
    resolved: Resolved,
    form: QuestionnaireForm,
    sid: str,
    *,
    draft_id: str | None = None,
    saved: str | None = None,
    note: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    page = render_template(
        "assess/fill.html",
        launch=launch,
        plan=write_plan,
        resolved=resolved,
        form=form,
        submission_id=sid,
        action_url=url_for(".fill", ctx=launch.id, instrument_id=resolved.instrument.id),
        autosave_url=(
            url_for(".autosave", ctx=launch.id, instrument_id=resolved.instrument.id)
            if write_plan.can_draft
            else None
        ),
        draft_id=draft_id,
        saved=saved,
        note=note,
        hidden_sections=g.get("hidden_sections", []),
        ehr_style_url=url_for("launch.ehr_style", ctx=launch.id),
    )
    return page, status


@bp.get("/submissions/<sid>")
def submitted(ctx: str, sid: str) -> Any:
    """What became of a submission: delivered (to the review), waiting to sync, or refused."""
    launch = current_launch()
    found = submission.status(launch, sid) if SUBMISSION_ID.fullmatch(sid) else None
    if found is None:
        abort(404)
    goals = found.record.get("goals")
    task = found.record.get("task_outcome")
    # delivered later, when no launch of this user was live: the follow-ups wait for the button
    follow_up = found.state == "delivered" and follow_ups.pending(found.record)
    patient = is_patient_launch(launch)
    reference = found.response_reference
    delivered = found.state == "delivered" and reference and not patient
    review = choose_page.review_url(launch, reference, sid) if delivered and reference else None
    told = (goals or {}).get("state") == goal_updates.NOT_UPDATED or (task or {}).get(
        "state"
    ) in task_updates.REPORTED
    # The patient's home says, in their words, where the answers went; only a Task left open
    # (or follow-ups still to run) is told here: their clinician judges the goals.
    if patient and not follow_up and (task or {}).get("state") not in task_updates.REPORTED:
        return redirect(url_for(PATIENT_HOME, ctx=launch.id, sid=sid), code=303)
    if review and not told and not follow_up:
        return redirect(review, code=303)
    codes = library().score_codes()
    return render_template(
        "assess/submitted.html",
        launch=launch,
        found=found,
        receipt=describe(found.item, patient=patient),
        reference=reference,
        review=review,
        goals=goals,
        task=task,
        follow_up=follow_up,
        codes=codes,
        patient_launch=patient,
    )


@bp.post("/submissions/<sid>/follow-up")
def follow_up(ctx: str, sid: str) -> Any:
    """Update the record now: the follow-ups of a delivered submission (goals, Task) that the
    worker could not run, or that waited on the EHR; then back to the submission's page."""
    launch = current_launch()
    found = submission.status(launch, sid) if SUBMISSION_ID.fullmatch(sid) else None
    if found is None:
        abort(404)
    follow_ups.after_delivery([sid], launch)
    return redirect(url_for(".submitted", ctx=launch.id, sid=sid), code=303)


@bp.get("/submissions/<sid>/export")
def export(ctx: str, sid: str) -> Response:
    """The write-back Bundle as a JSON download, while the app still holds it."""
    launch = current_launch()
    found = submission.status(launch, sid) if SUBMISSION_ID.fullmatch(sid) else None
    bundle = submission.export_bundle(found) if found else None
    if bundle is None:
        abort(404)
    body = json.dumps(bundle, indent=2)
    disposition = f'attachment; filename="attach-fhir-{sid}.json"'
    return Response(
        body, mimetype="application/fhir+json", headers={"Content-Disposition": disposition}
    )


@bp.get("/submissions/<sid>/summary.pdf")
@clinician_page
def summary_pdf(ctx: str, sid: str) -> Response:
    """The submission's printable summary (PDF): answers, scores and what they mean."""
    launch = current_launch()
    found = submission.status(launch, sid) if SUBMISSION_ID.fullmatch(sid) else None
    pdf = response_summaries.submission_pdf(launch, found) if found else None
    if pdf is None:
        abort(404)
    return _pdf(pdf, f"attach-fhir-summary-{sid}.pdf")


@bp.get("/responses/<qr_id>/summary.pdf")
@clinician_page
def response_summary_pdf(ctx: str, qr_id: str) -> Response:
    """The printable summary (PDF) of a completed response of this patient in the record."""
    launch = current_launch()
    if not is_fhir_id(qr_id):
        abort(404)
    response = launch.fhir().read("QuestionnaireResponse", qr_id)
    subject = (response.get("subject") or {}).get("reference")
    if subject != f"Patient/{launch.patient_id}" or response.get("status") != "completed":
        abort(404)
    try:
        pdf = response_summaries.response_pdf(launch, response)
    except (UnknownInstrument, InvalidResponse):
        abort(404)  # not one of the packaged instruments, or answers it cannot score
    return _pdf(pdf, f"attach-fhir-summary-{qr_id}.pdf")


def _pdf(body: bytes, filename: str) -> Response:
    disposition = f'attachment; filename="{filename}"'
    return Response(body, mimetype="application/pdf", headers={"Content-Disposition": disposition})
