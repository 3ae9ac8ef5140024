"""The patient picker: a clinician whose launch brought no patient finds and chooses one.

URLs live under ``/app/<ctx>/patients/``. GET shows the search form ("Find a patient", or
"Change patient" once the app chose one). The search is a POST (CSRF checked app-wide) and goes
to the FHIR server as ``POST Patient/_search`` (GET only where the server declares GET only or
refuses the POST), so no name or birth date is in any URL or access log. Choosing is a POST of
the Patient id: the id must be a FHIR id, and the Patient is read back with the launch's own
token before it becomes the launch's patient, under a new context id (see
:meth:`smart_app.web.context.LaunchContext.choose_patient`). Never for a patient's own launch, nor
once the EHR chose the patient (403 with the reason).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirClientError, FhirError
from attach_fhir.fhir_url import is_fhir_id
from smart_app.picker.search import Criteria, Results, is_patient, results
from smart_app.records import delivery
from smart_app.web import server_profile
from smart_app.web.audience import clinicians_only
from smart_app.web.context import LaunchContext, current_launch
from smart_app.web.errors import BadLaunchRequest
from smart_app.web.kept_forms import not_kept

log = logging.getLogger(__name__)

bp = Blueprint("picker", __name__, template_folder="templates", url_prefix="/app/<ctx>/patients")
clinicians_only(bp)  # a patient's launch gets the friendly 403 (web.audience)


class PatientChoiceRefused(AttachError):
    """This launch may not choose its patient in the app."""

    code = "patient_choice_refused"
    description = "This launch cannot choose a patient in the app."
    status_code = 403


class PatientNotReadable(AttachError):
    """The chosen Patient could not be read with the launch's token: not chosen."""

    code = "patient_not_readable"
    description = (
        "That patient could not be read with this sign-in, so they were not chosen. "
        "Search again and choose from the list."
    )
    status_code = 403


def _launch() -> LaunchContext:
    launch = current_launch()
    refused = launch.patient_choice_refused
    if refused is not None:
        raise PatientChoiceRefused(refused)
    return launch


@bp.get("/")
def search_form(ctx: str) -> str:
    """The search form on its own (the landing page shows it too)."""
    return _page(_launch(), Criteria())[0]


@bp.post("/")
@not_kept  # a search expired with the launch is typed again, its criteria never stored
def search(ctx: str) -> tuple[str, int]:
    """Search the EHR's patients by the posted criteria; the matches, each with Choose."""
    launch = _launch()
    criteria, problems = Criteria.from_form(request.form)
    if problems:
        return _page(launch, criteria, problems=problems, status=422)
    client = launch.fhir()
    caps = server_profile.capabilities(delivery.outbox_services().capabilities, launch)
    by_post = caps is None or caps.searches_by_post("Patient")
    try:
        bundle, method = client.search_first_page("Patient", criteria.params(), by_post=by_post)
    except FhirError as exc:
        log.info("picker.search outcome=%s", exc.code)
        return _page(launch, criteria, error=exc, status=502)
    found = results(bundle)
    log.info(
        "picker.search outcome=ok method=%s rows=%d more=%s", method, len(found.rows), found.more
    )
    return _page(launch, criteria, found=found)


@bp.post("/choose")
@not_kept
def choose(ctx: str) -> Any:
    """Make the posted Patient this launch's patient, once the launch's token has read it."""
    launch = _launch()
    patient_id = request.form.get("patient_id", "")
    if not is_fhir_id(patient_id):
        raise BadLaunchRequest("The form did not name a patient; please search again.")
    try:
        resource = launch.fhir().read("Patient", patient_id)
    except FhirClientError as exc:  # not found, forbidden, gone: not this token's to choose
        log.info("picker.choose outcome=%s", exc.code)
        raise PatientNotReadable() from exc
    if not is_patient(resource, patient_id):
        log.info("picker.choose outcome=not_the_patient")
        raise PatientNotReadable()
    chosen = launch.choose_patient(patient_id)
    delivery.follow_move(launch, chosen)
    log.info("picker.choose outcome=ok changed=%s", bool(launch.patient_id))
    return redirect(url_for("launch.landing", ctx=chosen.id), code=303)


def _page(
    launch: LaunchContext,
    criteria: Criteria,
    *,
    found: Results | None = None,
    problems: list[str] | None = None,
    error: FhirError | None = None,
    status: int = 200,
) -> tuple[str, int]:
    page = render_template(
        "picker/search.html",
        launch=launch,
        criteria=criteria,
        found=found,
        problems=problems or [],
        error=error,
    )
    return page, status
