"""The care-plan blueprint: propose, edit and approve a plan; revise it; judge goals; review.

URLs live under ``/app/<ctx>/careplan/``. Nothing is written until the clinician approves: the
proposal and every edit live in the server-side store (``careplan-draft``). Approval, revision,
re-assessment and the review of a patient's own results each become one transaction through the
assessment outbox (:mod:`smart_app.records.delivery`). A revision is an update with ``If-Match``:
when
someone else changed the plan first (412/409), the clinician sees both changes, and nothing is
overwritten. The clinic's rules come from ``ATTACH_CAREPLAN_RULES``, validated at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from typing import Any, cast

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from attach_fhir.careplan_diff import plan_changes
from attach_fhir.careplan_edit import InvalidPlanEdit, WorkingPlan, apply_form
from attach_fhir.careplan_fhir import PlanResources, build_resources
from attach_fhir.careplan_proposal import ProposalInputs, ScoreInput, propose
from attach_fhir.careplan_writeback import (
    approval_transaction,
    reassessment_transaction,
    revision_transaction,
)
from attach_fhir.errors import AttachError
from attach_fhir.goal_target import packaged_scales
from attach_fhir.io.outbox_store import FAILED
from attach_fhir.lifestage import Role
from attach_fhir.plan_version import plan_version
from attach_fhir.result_review import confirmation_transaction
from smart_app.records import careplan_delivery as writes
from smart_app.records import careplan_records as records
from smart_app.records import careplan_view as view
from smart_app.records import delivery, patient_facts
from smart_app.records.submission import relative
from smart_app.web.audience import clinicians_only
from smart_app.web.context import LaunchContext, current_launch

log = logging.getLogger(__name__)

bp = Blueprint("careplan", __name__, template_folder="templates", url_prefix="/app/<ctx>/careplan")
clinicians_only(bp)  # a patient's launch gets the friendly 403 (web.audience)
DRAFT_NS = "careplan-draft"
CONFLICT_CODES = ("fhir_precondition_failed", "fhir_conflict")


class NeedsClinician(AttachError):
    """Care plans are approved by a clinician identified by the EHR (fhirUser)."""

    code = "needs_clinician"
    description = "Only a clinician signed in through the EHR can propose or change a care plan."
    status_code = 403


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    writes.init_rules(cast(Flask, state.app))


def _clinician(launch: LaunchContext) -> tuple[str, str]:
    """The patient id and the clinician's reference; refuses patients and anonymous users."""
    if not launch.patient_id:
        abort(400, "No patient is in context.")
    user = relative(launch.iss, launch.fhir_user) if launch.fhir_user else ""
    if launch.record.get("kind") == "patient" or not user.startswith("Practitioner"):
        raise NeedsClinician()
    return launch.patient_id, user


@bp.get("/")
def show(ctx: str) -> str:
    """The active plan: goals with their trajectory, activities, journal, results to review."""
    launch = current_launch()
    patient_id, _ = _clinician(launch)
    client = launch.fhir()
    plan = records.active_plan(client, patient_id)
    observations = records.score_observations(client, patient_id)
    sid = request.args.get("sid", "")
    item = delivery.outbox_services().outbox.store.get(sid) if sid else None
    return render_template(
        "careplan/show.html",
        launch=launch,
        plan=plan,
        goals=view.goal_rows(plan.goals, observations) if plan else [],
        version=(
            plan_version(plan.careplan, records.version_count(client, plan.careplan["id"]))
            if plan
            else ""
        ),
        activities=view.activity_rows(plan.careplan) if plan else [],
        journal=view.journal_rows(records.journal_entries(client, patient_id)),
        pending=records.preliminary(observations),
        item=item,
        update_problem=writes.problem(launch, "update") if plan else None,
        results_problem=writes.problem(launch, "results"),
    )


@bp.route("/propose", methods=["GET", "POST"])
def start(ctx: str) -> Any:
    """Choose the focus; POST makes the proposal from the latest scores (nothing is written)."""
    launch = current_launch()
    patient_id, clinician = _clinician(launch)
    client = launch.fhir()
    latest = records.latest(client, patient_id)
    if request.method == "GET":
        return render_template(
            "careplan/propose.html",
            launch=launch,
            rules=writes.rules(),
            latest=view.score_rows(latest),
        )
    focuses = tuple(f for f in request.form.getlist("focus") if f in writes.rules().focuses)
    patient = patient_facts.load(launch)
    scales = packaged_scales()
    inputs = ProposalInputs(
        scores={
            code: ScoreInput(code, s.value, observation=s.reference) for code, s in latest.items()
        },
        scales=scales,
        start_date=dt.date.today(),
        birth_date=patient.birth_date,
        roles=frozenset({Role.CAREGIVER}) if patient.facts.children else frozenset(),
        focuses=focuses,
        clinician=clinician,
    )
    proposal = propose(inputs, writes.rules())
    plan_id = str(uuid.uuid4())
    built = build_resources(
        proposal,
        plan_id=plan_id,
        subject=f"Patient/{patient_id}",
        author=clinician,
        clinician=clinician,
        caregiver=patient_facts.caregiver(launch),
    )
    draft = {
        "plan_id": plan_id,
        "plan": WorkingPlan(built.careplan, dict(built.goals)).to_json(),
        "base": None,
        "skipped": [[s.score, s.reason] for s in proposal.skipped],
    }
    return redirect(url_for(".edit", ctx=ctx, draft_id=_store(launch, draft)), code=303)


@bp.get("/revise")
def revise(ctx: str) -> Any:
    """Load the active plan (with its version) for editing."""
    launch = current_launch()
    patient_id, _ = _clinician(launch)
    writes.require(launch, "update")
    found = records.active_plan(launch.fhir(), patient_id)
    if found is None:
        raise records.NoActivePlan()
    draft = {
        "plan_id": records.plan_identifier(found.careplan),
        "plan": found.working().to_json(),
        "base": found.working().to_json(),
        "submission": str(uuid.uuid4()),
    }
    return redirect(url_for(".edit", ctx=ctx, draft_id=_store(launch, draft)), code=303)


def _store(launch: LaunchContext, draft: dict[str, Any], draft_id: str | None = None) -> str:
    draft_id = draft_id or secrets.token_urlsafe(12)
    draft["owner"] = [launch.id, launch.patient_id]
    ttl = float(current_app.config["LAUNCH_TTL"])
    launch.services.store.put(DRAFT_NS, draft_id, draft, ttl)
    return draft_id


def _load(launch: LaunchContext, draft_id: str) -> dict[str, Any]:
    draft = launch.services.store.get(DRAFT_NS, draft_id) if len(draft_id) < 40 else None
    if draft is None or draft.get("owner") != [launch.id, launch.patient_id]:
        abort(404)
    return dict(draft)


@bp.route("/drafts/<draft_id>", methods=["GET", "POST"])
def edit(ctx: str, draft_id: str) -> Any:
    """The plan beside the latest scores; POST applies edits, adds, or approves."""
    launch = current_launch()
    patient_id, clinician = _clinician(launch)
    draft = _load(launch, draft_id)
    plan = WorkingPlan.from_json(draft["plan"])
    errors: dict[str, str] = {}
    if request.method == "POST":
        action = request.form.get("action", "update")
        try:
            plan = apply_form(plan, request.form)
            if action == "add-goal":
                latest = records.latest(launch.fhir(), patient_id)
                view.add_goal_from_form(plan, request.form, latest, patient_id, clinician, draft)
            elif action == "add-activity":
                view.add_activity_from_form(
                    plan, request.form, writes.rules(), patient_id, clinician
                )
        except InvalidPlanEdit as exc:
            errors = exc.errors
        draft["plan"] = plan.to_json()
        _store(launch, draft, draft_id)
        if action == "approve" and not errors:
            return _approve(launch, draft, plan, clinician)
    latest = records.latest(launch.fhir(), patient_id)
    status = 422 if errors else 200
    return render_template(
        "careplan/edit.html",
        launch=launch,
        draft_id=draft_id,
        revising=draft.get("base") is not None,
        goals=view.edit_rows(plan),
        activities=plan.careplan.get("activity", []),
        statuses=view.ACTIVITY_STATUS_WORDS,
        latest=view.score_rows(latest),
        addable_scores=view.addable_scores(plan, latest),
        addable_activities=view.addable_activities(plan, writes.rules()),
        skipped=draft.get("skipped", []),
        errors=errors,
        write_problem=writes.problem(launch, "update" if draft.get("base") else "approve"),
    ), status


def _approve(launch: LaunchContext, draft: dict[str, Any], plan: WorkingPlan, who: str) -> Any:
    ctx = writes.context(launch, draft["plan_id"], who)
    if draft.get("base") is None:
        resources = PlanResources(
            f"urn:uuid:{draft['plan_id']}", plan.careplan, tuple(plan.goals.items())
        )
        item = writes.send(
            launch, draft["plan_id"], approval_transaction(resources, ctx), "approve"
        )
        return redirect(url_for(".show", ctx=launch.id, sid=item.submission_id), code=303)
    base = WorkingPlan.from_json(draft["base"])
    bundle = revision_transaction(base.careplan, base.goals, plan.careplan, plan.goals, ctx)
    item = writes.send(launch, draft["submission"], bundle, "update")
    if item.status == FAILED and str(item.last_error_code or "").startswith(CONFLICT_CODES):
        server = records.refresh(launch.fhir(), base.careplan["id"])
        page = render_template(
            "careplan/conflict.html",
            launch=launch,
            theirs=plan_changes(base.careplan, base.goals, server.careplan, server.goals),
            mine=plan_changes(base.careplan, base.goals, plan.careplan, plan.goals),
        )
        return page, 409
    return redirect(url_for(".show", ctx=launch.id, sid=item.submission_id), code=303)


@bp.post("/reassess")
def reassess(ctx: str) -> Any:
    """Judge every active goal against the latest final score and link the Observation."""
    launch = current_launch()
    patient_id, clinician = _clinician(launch)
    writes.require(launch, "update")
    client = launch.fhir()
    found = records.active_plan(client, patient_id)
    if found is None:
        raise records.NoActivePlan()
    context = writes.context(launch, records.plan_identifier(found.careplan), clinician)
    latest = records.latest(client, patient_id)
    bundle = reassessment_transaction(
        found.goals.values(), latest, context, writes.rules().reliable_change
    )
    if bundle is None:
        return redirect(url_for(".show", ctx=ctx, note="no-new-scores"), code=303)
    item = writes.send(launch, str(uuid.uuid4()), bundle, "update")
    return redirect(url_for(".show", ctx=ctx, sid=item.submission_id), code=303)


@bp.post("/results/confirm")
def confirm(ctx: str) -> Any:
    """The clinician has reviewed the patient's own results: they become final."""
    launch = current_launch()
    patient_id, clinician = _clinician(launch)
    writes.require(launch, "results")
    pending = records.preliminary(records.score_observations(launch.fhir(), patient_id))
    wanted = set(request.form.getlist("observation"))
    chosen = [o for o in pending if f"Observation/{o['id']}" in wanted]
    bundle = confirmation_transaction(chosen, writes.context(launch, str(uuid.uuid4()), clinician))
    if bundle is None:
        return redirect(url_for(".show", ctx=ctx), code=303)
    item = writes.send(launch, str(uuid.uuid4()), bundle, "results")
    return redirect(url_for(".show", ctx=ctx, sid=item.submission_id), code=303)
