"""The launch blueprint: EHR and standalone launch, callback, the app's JWKS, the landing page.

URLs an EHR registers: launch ``/launch``, redirect ``/callback``, JWKS ``/jwks.json``. After a
launch every page lives under ``/app/<ctx>/`` (see :mod:`smart_app.web.context`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from attach_fhir.errors import AttachError
from attach_fhir.human_names import human_name
from smart_app.launch import authorization as flow
from smart_app.launch import style
from smart_app.launch.launch_tasks import launch_tasks
from smart_app.web.audience import PATIENT_HOME, is_patient_launch
from smart_app.web.context import LaunchContext
from smart_app.web.errors import BadLaunchRequest
from smart_app.web.security import browser_session, had_cookie
from smart_app.web.services import get_services

log = logging.getLogger(__name__)

bp = Blueprint("launch", __name__, template_folder="templates")

#: What the landing page says the app may do, with the scope each needs.
CAPABILITIES = (
    ("Read the patient's record", "Patient", "r"),
    ("Read questionnaires", "Questionnaire", "r"),
    ("Save questionnaire answers", "QuestionnaireResponse", "c"),
    ("Record scores", "Observation", "c"),
    ("Update the care plan", "CarePlan", "u"),
    ("Set goals", "Goal", "c"),
)


@bp.get("/")
def start() -> str:
    """The standalone start page: one link per registered FHIR server, per role."""
    servers = [(reg.name, iss) for reg in get_services().registrations.items for iss in reg.iss]
    return render_template("launch/start.html", servers=servers)


@bp.get("/launch")
def ehr_launch() -> Any:
    """EHR launch: ``iss`` and ``launch`` from the EHR; checked before any outbound request."""
    iss = request.args.get("iss")
    launch = request.args.get("launch")
    flow.check_iss(get_services(), iss)
    if not launch or len(launch) > 2000:
        raise BadLaunchRequest("The EHR launch carried no launch token.")
    return _authorize(str(iss), "ehr", launch)


@bp.get("/launch/standalone")
def standalone_launch() -> Any:
    """Standalone launch by a patient (portal) or a clinician (patient picked at the EHR)."""
    iss = request.args.get("iss")
    role = request.args.get("role", "patient")
    if role not in ("patient", "clinician"):
        raise BadLaunchRequest("role must be patient or clinician.")
    flow.check_iss(get_services(), iss)
    return _authorize(str(iss), role, None)


def _authorize(iss: str, kind: str, launch: str | None) -> Any:
    """Make sure the browser keeps our cookie, then send it to the authorization endpoint."""
    if not had_cookie():
        if request.args.get("cookie_check") == "1":
            retry = {k: v for k, v in request.args.items() if k != "cookie_check"}
            url = request.path + "?" + urlencode(retry)
            return render_template("launch/new_window.html", url=url), 200
        browser_session(create=True)
        args = {**request.args.to_dict(), "cookie_check": "1"}
        return redirect(request.path + "?" + urlencode(args), code=303)
    session = browser_session(create=False)
    assert session is not None
    return redirect(flow.begin(get_services(), session[0], iss, kind, launch), code=303)


@bp.get("/callback")
def callback() -> Any:
    """The redirect URI: state, RFC 9207 iss, code exchange, id_token; then the landing page."""
    session = browser_session(create=False)
    args = {k: v for k, v in request.args.items() if isinstance(v, str)}
    ctx = flow.complete(get_services(), session[0] if session else None, args)
    return redirect(url_for("launch.landing", ctx=ctx), code=303)


@bp.get("/jwks.json")
def jwks() -> Response:
    """The app's public keys (client assertion verification); never any private member."""
    response = jsonify(get_services().registrations.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/app/<ctx>/")
def landing(ctx: str) -> Any:
    """The patient in context (unless the EHR shows its own banner), the assignment of a Task
    the EHR launched the app for, and what the app may do; without a patient, the search form
    of the app's picker where this launch may use it."""
    launch = LaunchContext.load(ctx)
    if (
        is_patient_launch(launch)
        and launch.patient_id
        and PATIENT_HOME in current_app.view_functions
    ):
        return redirect(url_for(PATIENT_HOME, ctx=launch.id), code=303)  # no EHR checklist
    patient = _read_patient(launch) if launch.show_patient_banner else None
    capabilities = [(label, launch.can(res, act)) for label, res, act in CAPABILITIES]
    refused = launch.patient_choice_refused
    return render_template(
        "launch/landing.html",
        launch=launch,
        patient=patient,
        user=_read_user(launch),
        capabilities=capabilities,
        flows=_flows(launch),
        tasks=launch_tasks(launch) if "assess.fill" in current_app.view_functions else None,
        can_pick=refused is None and "picker.search" in current_app.view_functions,
        picker_refused=refused,
    )


#: Other flows the landing page lists, when installed: endpoint, label, what it does, the scope
#: it needs and, in words, what is missing when the EHR did not grant that scope.
FLOWS = (
    (
        "assess.choose",
        "Questionnaires",
        "Choose an attachment questionnaire, fill it in and see the scores.",
        ("Questionnaire", "r"),
        "read questionnaires",
    ),
    (
        "review.patient_history",
        "Scores over time",
        "Earlier questionnaire scores side by side, to follow change.",
        ("Observation", "s"),
        "search recorded scores",
    ),
)


@dataclass(frozen=True)
class FlowLink:
    """One flow on the landing page: its link (None when not granted) and why it is missing."""

    label: str
    description: str
    href: str | None
    missing: str


def _flows(launch: LaunchContext) -> list[FlowLink]:
    """The installed flows for a launch with a patient; a link only where the scope is granted."""
    if not launch.patient_id:
        return []
    return [
        FlowLink(
            label,
            description,
            url_for(endpoint, ctx=launch.id) if launch.can(resource, interaction) else None,
            missing,
        )
        for endpoint, label, description, (resource, interaction), missing in FLOWS
        if endpoint in current_app.view_functions
    ]


@bp.get("/app/<ctx>/style.css")
def ehr_style(ctx: str) -> Response:
    """The EHR's validated colours as CSS custom properties (no raw CSS from the EHR)."""
    launch = LaunchContext.load(ctx)
    css = style.stylesheet(launch.record.get("style") or {})
    return Response(css, mimetype="text/css", headers={"Cache-Control": "private, max-age=300"})


def _read_patient(launch: LaunchContext) -> dict[str, str] | None:
    if not launch.patient_id or not launch.can("Patient", "r"):
        return None
    resource = launch.fhir().read("Patient", launch.patient_id)
    return {"name": human_name(resource.get("name")), "birth_date": resource.get("birthDate", "")}


def _read_user(launch: LaunchContext) -> str | None:
    """The signed-in user's display name from ``fhirUser``, when it lies on this FHIR server."""
    if not launch.fhir_user:
        return None
    client = launch.fhir()
    try:
        resource = client.read_reference(launch.fhir_user)
    except AttachError as exc:  # a user we may not read is shown by type, not an error page
        log.info("launch.fhir_user outcome=%s", exc.code)
        return _reference_type(launch.fhir_user)
    return human_name(resource.get("name")) or _reference_type(launch.fhir_user)


def _reference_type(reference: str) -> str:
    """``a Practitioner`` from ``.../Practitioner/123`` (shown when the name is unreadable)."""
    parts = reference.rstrip("/").split("/")
    kind = parts[-2] if len(parts) >= 2 and parts[-2].isalpha() else "user"
    return f"a {kind}"
