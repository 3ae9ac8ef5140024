"""The Choose page of a patient's launch: instruments that fit, drafts, history and the
request-to-the-patient panel (docs/assess-flow.md). Rendered by assess, and by assign when a
request to the patient comes back with its errors: a page two flows show, so neither owns it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from flask import current_app, render_template, url_for

from attach_fhir.errors import AttachError
from attach_fhir.instruments import library
from smart_app.forms.instrument_choice import choices
from smart_app.records import assignment_panel, delivery, patient_facts, responses
from smart_app.web.context import LaunchContext, current_launch
from smart_app.web.errors import NoPatient
from smart_app.web.server_profile import WritePlan, capabilities, plan

log = logging.getLogger("smart_app.assess.routes")


def write_context() -> tuple[LaunchContext, WritePlan, Any]:
    """This request's launch (with a patient, else NoPatient), how this EHR takes writes, and
    its capabilities: what every page that reads or writes for the patient starts from."""
    launch = current_launch()
    if not launch.patient_id:
        raise NoPatient("No patient was selected in the EHR, so there is no one to assess.")
    caps = capabilities(delivery.outbox_services().capabilities, launch)
    return launch, plan(caps, launch), caps


def render_choose(
    launch: LaunchContext,
    write_plan: WritePlan,
    caps: Any,
    *,
    forms: dict[str, assignment_panel.AssignForm] | None = None,
    outcome: assignment_panel.Outcome | None = None,
    assigned: str | None = None,
    withdrawn: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The Choose page; ``forms`` and ``outcome`` bring back a request to the patient that
    could not be used or sent (:mod:`smart_app.assign.routes`)."""
    patient = patient_facts.load(launch)
    lib = library()
    pairs = [(i, lib.questionnaire(f"{i.url}|{i.version}")) for i in lib.instruments()]
    by_url = {i.url: i for i, _ in pairs}
    drafts: list[responses.StoredResponse] = []
    history: list[responses.StoredResponse] = []
    if write_plan.can_search_responses:
        try:
            client = launch.fhir()
            drafts = [
                r for r in responses.search(client, patient.id, "in-progress") if r.url in by_url
            ]
            history = [
                r for r in responses.search(client, patient.id, "completed") if r.url in by_url
            ]
        except AttachError as exc:
            log.info("assess.responses outcome=%s", exc.code)
    assign = assignment_panel.load(
        launch,
        caps,
        by_url,
        [i.id for i, _ in pairs],
        forms=forms,
        outcome=outcome,
        assigned=assigned,
        withdrawn=withdrawn,
    )
    if assign is not None and assign.notices:
        write_plan = dataclasses.replace(write_plan, notices=write_plan.notices + assign.notices)
    page = render_template(
        "assess/choose.html",
        launch=launch,
        patient=patient,
        plan=write_plan,
        choices=choices(pairs, patient.facts, dt.date.today()),
        drafts=drafts,
        history=history,
        by_url=by_url,
        review_url=review_url,
        assign=assign,
    )
    return page, status


def review_url(launch: LaunchContext, reference: str, sid: str | None = None) -> str | None:
    """The review page of a delivered response (engineer J's ``review.scores``), if present;
    ``sid`` (a random submission id, no patient data) lets it say where the answers went."""
    if "review.scores" not in current_app.view_functions:
        return None
    qr_id = reference.rpartition("/")[2]
    if sid is None:
        return url_for("review.scores", ctx=launch.id, qr_id=qr_id)
    return url_for("review.scores", ctx=launch.id, qr_id=qr_id, sid=sid)
