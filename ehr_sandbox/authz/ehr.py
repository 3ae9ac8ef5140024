"""The EHR's own pages: pick patient, practitioner and app, launch it in an iframe or window."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .config import AuthzConfigError
from .directory import DirectoryError
from .models import Grantee
from .views import state

bp = Blueprint("ehr", __name__)

LAUNCH_MODES = ("iframe", "window")
#: One ``fhirContext`` entry as the EHR page takes it: a relative reference ``Type/id``.
CONTEXT_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63})/[A-Za-z0-9\-.]{1,64}$")
MAX_CONTEXT = 20


def fhir_context(value: str) -> tuple[str, ...] | None:
    """The references of the ``fhir_context`` field (space separated), or None when one is not
    ``Type/id``, names a Patient or Encounter (SMART carries those as ``patient`` and
    ``encounter``) or there are more than ``MAX_CONTEXT``. Whose they are is not checked: a
    tester may put another patient's Task in context on purpose."""
    refs = tuple(dict.fromkeys(value.split()))
    for ref in refs:
        found = CONTEXT_REFERENCE.fullmatch(ref)
        if found is None or found.group(1) in ("Patient", "Encounter"):
            return None
    return refs if len(refs) <= MAX_CONTEXT else None


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _apps() -> list[Any]:
    return [c.config for c in state().server.clients() if c.config.launch_url]


@bp.get("/")
def home() -> BaseResponse:
    """The EHR's front page."""
    return redirect("/ehr")


@bp.get("/ehr")
def ehr() -> str | tuple[str, int]:
    """Pick a patient, a practitioner and an app, and how to open it; the knobs for testers."""
    st = state()
    try:
        patients = st.directory.patients()
        practitioners = st.directory.practitioners()
    except DirectoryError as exc:
        page = render_template("authz/error.html", error=exc.code, description=exc.description)
        return page, 502
    return render_template(
        "ehr/home.html",
        patients=patients,
        practitioners=practitioners,
        apps=_apps(),
        knobs=st.config.knobs,
        config=st.config,
    )


@bp.post("/ehr/launch")
def launch() -> Response | str | tuple[str, int]:
    """Issue a launch token for the chosen context and open the app with it."""
    st = state()
    form = request.form
    client = st.server.query_client(form.get("app", ""))
    mode = form.get("mode", "iframe")
    patient = st.directory.person(f"Patient/{form.get('patient', '')}")
    practitioner = st.directory.person(f"Practitioner/{form.get('practitioner', '')}")
    if client is None or not client.config.launch_url or mode not in LAUNCH_MODES:
        return render_template(
            "authz/error.html",
            error="invalid_request",
            description="Choose an app and how to open it.",
        ), 400
    if patient is None or practitioner is None:
        return render_template(
            "authz/error.html",
            error="invalid_request",
            description="Choose a patient and a practitioner.",
        ), 400
    context = fhir_context(form.get("fhir_context", ""))
    if context is None:
        return render_template(
            "authz/error.html",
            error="invalid_request",
            description=(
                f"fhirContext takes up to {MAX_CONTEXT} relative references such as Task/123 "
                "(no Patient or Encounter), separated by spaces."
            ),
        ), 400
    encounter = form.get("encounter", "latest")
    encounter_id: str | None = None
    if encounter == "latest":
        found = st.directory.encounters(patient.id)
        encounter_id = found[0]["id"] if found else None
    elif encounter != "none":
        encounter_id = encounter
    grantee = Grantee(
        user_ref=practitioner.ref,
        user_name=practitioner.name,
        patient=patient.id,
        encounter=encounter_id,
        intent=form.get("intent") or None,
        fhir_context=context,
        embedded=mode == "iframe",
    )
    record = st.store.create_launch(client.get_client_id(), grantee)
    query = urlencode({"iss": st.config.fhir_base, "launch": record.token})
    launch_url = f"{client.config.launch_url}?{query}"
    if _wants_json():
        return jsonify(
            launch=record.token,
            launch_url=launch_url,
            patient=patient.id,
            encounter=encounter_id,
            fhir_context=list(context),
        )
    return render_template(
        "ehr/launched.html",
        patient=patient,
        practitioner=practitioner,
        app=client.config,
        mode=mode,
        launch_url=launch_url,
    )


def _knob_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if form.get("access_token_lifetime"):
        values["access_token_lifetime"] = int(form["access_token_lifetime"])
    if "refresh_fails" in form:
        values["refresh_fails"] = form["refresh_fails"] in ("on", "true", "1")
    if "grant_only" in form:
        only = form["grant_only"].split()
        values["grant_only"] = only or None
    if "need_patient_banner" in form:
        choice = form["need_patient_banner"]
        values["need_patient_banner"] = None if choice == "auto" else choice == "true"
    if "smart_style" in form:
        values["smart_style"] = form["smart_style"] in ("on", "true", "1")
    if "auto_approve" in form:
        values["auto_approve"] = form["auto_approve"] in ("on", "true", "1")
    if "standalone_patient_picker" in form:
        picker = form["standalone_patient_picker"]
        values["standalone_patient_picker"] = picker in ("on", "true", "1")
    return values


@bp.post("/ehr/settings")
def settings() -> BaseResponse | tuple[Response, int]:
    """Change the simulation knobs (form from the EHR page, or JSON from a test)."""
    knobs = state().config.knobs
    try:
        if request.is_json:
            knobs.update(request.get_json())
        else:
            knobs.update(_knob_values(request.form))
    except (AuthzConfigError, ValueError) as exc:
        return jsonify(error="invalid_knobs", description=str(exc)), 400
    if request.is_json:
        return jsonify(vars(knobs))
    return redirect("/ehr", code=303)
