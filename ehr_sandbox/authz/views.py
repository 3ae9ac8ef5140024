"""OAuth endpoints: authorize (with sign-in, patient picker, approval), token, discovery."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from . import scopes
from .directory import DirectoryError
from .discovery import STYLE, openid_configuration, smart_configuration
from .keys import public_jwks
from .models import Grantee, PendingAuthorization
from .state import AuthzState
from .storage import new_token

bp = Blueprint("authz", __name__)
PENDING_PARAM = "sandbox_pending"


def state() -> AuthzState:
    """This app's authorization server state."""
    found: AuthzState = current_app.extensions["smart_authz"]
    return found


@bp.get("/.well-known/smart-configuration")
def smart_config() -> Response:
    """SMART configuration (also written to a file the FHIR server serves)."""
    return jsonify(smart_configuration(state().config.issuer))


@bp.get("/.well-known/openid-configuration")
def openid_config() -> Response:
    """OpenID Provider metadata."""
    return jsonify(openid_configuration(state().config))


@bp.get("/jwks.json")
def jwks() -> Response:
    """The public signing keys."""
    return jsonify(public_jwks(state().key))


@bp.get("/smart-style.json")
def smart_style() -> Response:
    """The colours behind smart_style_url."""
    response = jsonify(STYLE)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.post("/token")
def token() -> Response:
    """Authorization code and refresh token grants."""
    response: Response = state().server.create_token_response()
    return response


def _error(error: OAuth2Error) -> BaseResponse:
    """A redirect to the client carrying the error (with RFC 9207 iss), or an error page."""
    st = state()
    if error.redirect_uri:
        status, _body, headers = error()
        location = add_params_to_uri(dict(headers)["Location"], {"iss": st.config.issuer})
        return redirect(location, code=status)
    page = render_template(
        "authz/error.html", error=error.error, description=error.get_error_description()
    )
    return Response(page, status=400)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> BaseResponse | str:
    """Validate the request, gather who and which patient, then issue a code."""
    st = state()
    try:
        grant = st.server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        return _error(error)
    params = {k: v for k, v in request.values.items() if k != PENDING_PARAM}
    pending = st.store.get_pending(request.values.get(PENDING_PARAM, ""))
    if pending is not None and pending.params != params:
        pending = None
    granted = scopes.split(grant.request.scope)
    client_id = grant.request.client.get_client_id()
    try:
        grantee = _grantee(params, pending, granted, client_id)
    except OAuth2Error as error:
        error.redirect_uri = grant.redirect_uri
        error.state = params.get("state")
        return _error(error)
    if isinstance(grantee, str):
        if pending is None:
            pending = PendingAuthorization(id=new_token(), params=params)
            st.store.save_pending(pending)
        return _page(grantee, pending, granted, grant.request.client)
    if pending is not None:
        st.store.drop_pending(pending.id)
    response: BaseResponse = st.server.create_authorization_response(
        grant=grant, grant_user=grantee
    )
    return response


def _grantee(
    params: dict[str, str], pending: PendingAuthorization | None, granted: list[str], client: str
) -> Grantee | str:
    """The grantee when everything is known, else the name of the page still needed."""
    st = state()
    launch = params.get("launch")
    if launch:
        record = st.store.get_launch(launch)
        if record is None or record.client_id != client:
            raise InvalidRequestError("the launch was issued for another app")
        grantee = dataclasses.replace(record.grantee)
    else:
        if pending is None or pending.user_ref is None:
            return "sign_in"
        grantee = Grantee(user_ref=pending.user_ref, user_name=pending.user_name)
        if grantee.user_ref.startswith("Patient/"):
            grantee.patient = grantee.user_ref.split("/", 1)[1]
        elif scopes.needs_patient(granted) and st.config.knobs.standalone_patient_picker:
            if pending.patient is None:
                return "pick_patient"
            grantee.patient = pending.patient
    if not st.config.knobs.auto_approve and (pending is None or not pending.approved):
        return "approve"
    return grantee


def _page(page: str, pending: PendingAuthorization, granted: list[str], client: Any) -> str:
    st = state()
    try:
        patients = st.directory.patients() if page != "approve" else []
        practitioners = st.directory.practitioners() if page == "sign_in" else []
    except DirectoryError as exc:
        return render_template("authz/error.html", error=exc.code, description=exc.description)
    patient_only = page == "sign_in" and any(s.startswith("patient/") for s in granted)
    return render_template(
        f"authz/{page}.html",
        pending=pending,
        client=client.config,
        granted=granted,
        patients=patients,
        practitioners=[] if patient_only else practitioners,
    )


@bp.post("/authorize/choose")
def choose() -> BaseResponse | tuple[str, int]:
    """The user signed in, picked a patient, or answered the approval page."""
    st = state()
    pending = st.store.get_pending(request.form.get("pending", ""))
    if pending is None:
        page = render_template(
            "authz/error.html", error="invalid_request", description="This sign-in has expired."
        )
        return page, 400
    if "sign_in_as" in request.form:
        person = st.directory.person(request.form["sign_in_as"])
        if person is not None:
            pending.user_ref, pending.user_name = person.ref, person.name
    if "patient" in request.form:
        person = st.directory.person(f"Patient/{request.form['patient']}")
        if person is not None:
            pending.patient = person.id
    if request.form.get("decision") == "approve":
        pending.approved = True
    elif request.form.get("decision") == "deny":
        st.store.drop_pending(pending.id)
        client = st.server.query_client(pending.params.get("client_id", ""))
        uri = pending.params.get("redirect_uri") or (
            client.get_default_redirect_uri() if client else ""
        )
        answer = {"error": "access_denied", "iss": st.config.issuer}
        if pending.params.get("state"):
            answer["state"] = pending.params["state"]
        return redirect(add_params_to_uri(uri, answer), code=303)
    query = urlencode({**pending.params, PENDING_PARAM: pending.id})
    return redirect(f"/authorize?{query}", code=303)
