"""The CDS Hooks blueprint: discovery, the patient-view service and its feedback endpoint.

- ``GET /cds-services``: discovery (public: it carries no patient data).
- ``POST /cds-services/<id>``: the service. The CDS Client's JWT is checked first
  (:mod:`smart_app.cds.auth`), then the body against ``schema/cds-request.schema.json``; missing
  prefetch is fetched from ``fhirServer`` with the ``fhirAuthorization`` token, only when that
  server is registered for the calling client; the cards come from :mod:`attach_fhir.cds_cards`.
- ``POST /cds-services/<id>/feedback``: accepted and counted in the log (no content kept).

Errors are JSON ``{"code", "description"}`` with 400 (malformed), 401 (JWT), 403 (fhirServer
not registered), 404 (unknown service), 412 (no data to decide on), 415 (not JSON).

Configuration: ``CDS_CLIENTS`` (path of the CDS clients file) or ``CDS_CLIENTS_DATA`` (a
mapping); ``CDS_ALLOW_UNAUTHENTICATED`` (sandbox only: honoured for calls from loopback, whose
fhirServer is on loopback); ``CDS_APP_NAME``, ``CDS_DOCS_URL``, ``CDS_REASSESS_AFTER_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from jsonschema import Draft202012Validator, ValidationError
from werkzeug.exceptions import HTTPException

from attach_fhir.cds_cards import CardSettings, Offer, build_cards
from attach_fhir.errors import AttachError
from attach_fhir.fhir_url import is_fhir_id, is_resource_type
from attach_fhir.instruments import library
from attach_fhir.io.cds_prefetch import PREFETCH, PatientData, gather
from attach_fhir.io.fhir_client import FhirClient
from smart_app.cds import auth as cds_auth
from smart_app.cds.auth import CdsClient, CdsClients
from smart_app.forms.instrument_choice import PatientFacts, choices
from smart_app.web import netguard, outbound
from smart_app.web.audit import Who
from smart_app.web.security import csrf_exempt
from smart_app.web.services import get_services

log = logging.getLogger(__name__)

bp = Blueprint("cds", __name__)
EXTENSION = "attach_fhir_cds"
SERVICE_ID = "attach-fhir-patient-view"
SERVICE: dict[str, Any] = {
    "hook": "patient-view",
    "title": "Attachment assessment status (attach-fhir)",
    "description": (
        "When a patient's record is opened: the patient's latest attachment instrument scores "
        "(ECR-R, ECR-RS, ECR, RQ, PRFQ) with what they mean in the instrument's own words, "
        "whether an assessment was ever done, and any unfinished questionnaire; each card opens "
        "attach-fhir (SMART app)."
    ),
    "id": SERVICE_ID,
    "prefetch": dict(PREFETCH),
}
DEFAULT_DOCS_URL = "https://github.com/attach-fhir/attach-fhir/blob/main/docs/cds-hooks.md"
CORS_MAX_AGE = "600"


class BadCdsRequest(AttachError):
    """The request body is not a valid CDS Hooks call of this service."""

    code = "invalid_request"
    description = "The CDS Hooks request is malformed."
    status_code = 400


class NotJson(AttachError):
    """The request body is not declared as JSON."""

    code = "unsupported_media_type"
    description = "CDS Hooks requests must be JSON (Content-Type: application/json)."
    status_code = 415


class UnknownService(AttachError):
    """No service with this id."""

    code = "unknown_service"
    description = f"No CDS Service with this id; the only one is {SERVICE_ID!r}."
    status_code = 404


class FhirServerNotAllowed(AttachError):
    """The request names a fhirServer that is not registered for the calling CDS Client."""

    code = "fhir_server_not_allowed"
    description = (
        "fhirServer is not a FHIR server registered for this CDS Client, so the service will "
        "not send the access token there."
    )
    status_code = 403


@dataclass(frozen=True)
class _Target:
    server: str
    token: str
    allow: tuple[str, ...]

    def __repr__(self) -> str:  # never print the token
        return f"_Target(server={self.server!r})"


@dataclass(frozen=True)
class CdsState:
    """The CDS Clients and settings, read once when the blueprint is registered."""

    clients: CdsClients
    allow_unauthenticated: bool


def _init(state: BlueprintSetupState) -> None:
    config = state.app.config
    unauthenticated = bool(config.get("CDS_ALLOW_UNAUTHENTICATED", False))
    if unauthenticated:
        log.warning("cds.start unauthenticated=loopback-only: for the sandbox, never production")
    state.app.extensions[EXTENSION] = CdsState(
        cds_auth.clients_from_config(config), unauthenticated
    )


bp.record_once(_init)


def _state() -> CdsState:
    found: CdsState = current_app.extensions[EXTENSION]
    return found


@cache
def _validator(name: str) -> Draft202012Validator:
    text = files("smart_app").joinpath(f"schema/{name}").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _base_url() -> str:
    return str(current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")


def _body(schema: str) -> dict[str, Any]:
    if not request.is_json:
        raise NotJson()
    body = request.get_json(silent=True)
    if body is None:
        raise BadCdsRequest("The request body is not valid JSON.")
    errors = sorted(
        _validator(schema).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        problems = [_problem(e) for e in errors[:10]]
        raise BadCdsRequest("The CDS Hooks request is malformed: " + "; ".join(problems))
    result: dict[str, Any] = body
    return result


def _problem(error: ValidationError) -> str:
    """One schema problem, naming the rule broken but never echoing the value (tokens, PHI)."""
    if error.validator in ("required", "dependentRequired"):
        return f"{error.json_path}: {error.message}"
    return f"{error.json_path}: must satisfy {error.validator} {json.dumps(error.validator_value)}"


def _is_loopback(address: str | None) -> bool:
    literal = netguard.literal_address(address or "")
    return literal is not None and netguard.address_class(literal) == "loopback"


def _caller(audiences: tuple[str, ...]) -> CdsClient | None:
    """The authenticated CDS Client; None for an unauthenticated sandbox call from loopback."""
    state = _state()
    header = request.headers.get("Authorization")
    if header is None and state.allow_unauthenticated and _is_loopback(request.remote_addr):
        return None
    return cds_auth.verify(
        header, audiences, state.clients, cds_auth.jwks_for, get_services().store
    )


def _fhir_target(body: dict[str, Any], caller: CdsClient | None) -> _Target | None:
    """Where missing prefetch may be fetched, with which token; None without fhirAuthorization."""
    auth = body.get("fhirAuthorization")
    if auth is None:
        return None
    server = str(body["fhirServer"])
    if caller is not None:
        if not caller.allows_fhir_server(server):
            raise FhirServerNotAllowed()
        return _Target(server, str(auth["access_token"]), caller.allow_addresses)
    host = urlsplit(server).hostname or ""
    if host != "localhost" and not _is_loopback(host):
        raise FhirServerNotAllowed(
            "Unauthenticated sandbox calls may only name a fhirServer on loopback."
        )
    return _Target(server, str(auth["access_token"]), ("loopback",))


def _gather(body: dict[str, Any], caller: CdsClient | None) -> tuple[PatientData, list[str]]:
    target = _fhir_target(body, caller)
    context, prefetch = body["context"], body.get("prefetch")
    if target is None:
        return gather(context, prefetch, None)
    token = target.token
    services = get_services()
    transport = services.transport
    if transport is not None:  # create_app always sets one; each request it sends is audited
        transport = services.audited(transport, _who(target.server, context))
    with outbound.client(target.allow, transport) as http:
        client = FhirClient(target.server, http, token_source=lambda _rejected: token)
        return gather(context, prefetch, client)


def _who(server: str, context: dict[str, Any]) -> Who:
    """The hook's user and patient as the audit trail names them (well-formed references only:
    they came from the caller)."""
    user = str(context.get("userId") or "")
    kind, _, ident = user.partition("/")
    patient = str(context.get("patientId") or "")
    return Who(
        server,
        user=user if is_resource_type(kind) and is_fhir_id(ident) else None,
        patient=f"Patient/{patient}" if is_fhir_id(patient) else None,
    )


def _offers(data: PatientData, today: dt.date) -> list[Offer]:
    lib = library()
    pairs = [(inst, lib.questionnaire(inst.url)) for inst in lib.instruments()]
    birth = (data.patient or {}).get("birthDate")
    facts = PatientFacts(birth_date=str(birth) if birth else None, children=None)
    return [
        Offer(c.instrument.title, c.reason, c.instrument.restrictions)
        for c in choices(pairs, facts, today)
        if c.fit == "fits"
    ]


def _settings() -> CardSettings:
    config = current_app.config
    after = config.get("CDS_REASSESS_AFTER_DAYS")
    return CardSettings(
        app_name=str(config.get("CDS_APP_NAME") or "attach-fhir"),
        launch_url=f"{_base_url()}/launch",
        docs_url=str(config.get("CDS_DOCS_URL") or DEFAULT_DOCS_URL),
        reassess_after_days=int(after) if after not in (None, "") else None,
    )


@bp.get("/cds-services")
def discovery_endpoint() -> Response:
    """The discovery document: one patient-view service."""
    response = jsonify({"services": [SERVICE]})
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _check_service(service_id: str) -> str:
    if service_id != SERVICE_ID:
        raise UnknownService()
    return f"{_base_url()}/cds-services/{SERVICE_ID}"


@bp.route("/cds-services/<service_id>", methods=["POST", "OPTIONS"])
@csrf_exempt
def service(service_id: str) -> Response:
    """Answer one patient-view call with cards."""
    url = _check_service(service_id)
    if request.method == "OPTIONS":
        return _preflight()
    caller = _caller((url,))
    body = _body("cds-request.schema.json")
    data, fetched = _gather(body, caller)
    today = dt.date.today()
    cards = build_cards(
        body["hookInstance"], data, _offers(data, today), _settings(), today, library()
    )
    log.info(
        "cds.call outcome=ok client=%s cards=%d fetched=%s",
        caller.name if caller else "sandbox-unauthenticated",
        len(cards),
        ",".join(fetched) or "-",
    )
    return jsonify({"cards": cards})


@bp.route("/cds-services/<service_id>/feedback", methods=["POST", "OPTIONS"])
@csrf_exempt
def feedback(service_id: str) -> Response:
    """Accept feedback on cards (logged as counts only)."""
    url = _check_service(service_id)
    if request.method == "OPTIONS":
        return _preflight()
    _caller((f"{url}/feedback", url))
    body = _body("cds-feedback.schema.json")
    outcomes = [str(item["outcome"]) for item in body["feedback"]]
    log.info(
        "cds.feedback accepted=%d overridden=%d",
        outcomes.count("accepted"),
        outcomes.count("overridden"),
    )
    return Response(status=200)  # the spec defines no body; JSON may not be an empty {}


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin")
    extra = str(current_app.config.get("CDS_CORS_ORIGINS") or "").split()
    if origin and (origin in _state().clients.origins() or origin in extra):
        return origin
    return None


def _preflight() -> Response:
    origin = _allowed_origin()
    if origin is None:
        response = jsonify(code="cors_refused", description="This origin may not call the service.")
        response.status_code = 403
        return response
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    return response


@bp.after_request
def cors(response: Response) -> Response:
    """CORS for the service and feedback: only origins a CDS Client is registered with."""
    if request.endpoint in ("cds.service", "cds.feedback"):
        response.headers.add("Vary", "Origin")
        origin = _allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
    return response


@bp.errorhandler(AttachError)
def cds_error(exc: AttachError) -> tuple[Response, int]:
    """Every error of this blueprint as CDS-friendly JSON."""
    status = int(exc.status_code)
    log.info("cds.error code=%s status=%d", exc.code, status)
    response = jsonify({"code": exc.code, "description": exc.description})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response, status


@bp.errorhandler(HTTPException)
def cds_http_error(exc: HTTPException) -> tuple[Response, int]:
    """HTTP errors (405, 413 ...) of this blueprint as JSON."""
    status = exc.code or 500
    return jsonify({"code": exc.name, "description": exc.description or exc.name}), status
