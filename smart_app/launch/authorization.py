"""The two halves of a SMART launch: send the browser to authorize, and finish at the callback.

Order matters for safety: the ``iss`` allow-list and the address check come before any outbound
request; the ``state`` is taken (deleted) before anything else is checked, so a replayed or
raced callback always fails; the RFC 9207 ``iss`` is compared before the code is spent.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, url_for

from attach_fhir.audit_events import MINOR_FAILURE, SUCCESS
from attach_fhir.errors import AttachError
from attach_fhir.fhir_url import is_fhir_id, is_resource_type
from smart_app.launch import style
from smart_app.web import audit, netguard, scopes, smart_client
from smart_app.web.context import LAUNCH_NS, LaunchContext
from smart_app.web.errors import (
    AuthorizationDenied,
    BadLaunchRequest,
    IdTokenInvalid,
    IssuerMismatch,
    StateInvalid,
)
from smart_app.web.registrations import Registration
from smart_app.web.services import Services

log = logging.getLogger(__name__)

STATE_NS = "state"
KINDS = ("ehr", "patient", "clinician")
#: Launch context parameters the app keeps from the token response.
CONTEXT_KEYS = ("patient", "encounter", "need_patient_banner", "intent", "tenant")
#: At most this many ``fhirContext`` entries are looked at; the rest are dropped.
MAX_FHIR_CONTEXT = 20
#: A ``role`` is an absolute URI or a registered word (``launch``): no spaces, bounded.
ROLE = re.compile(r"^[!-~]{1,200}$")


def redirect_uri() -> str:
    """The registered redirect URI: ``PUBLIC_URL`` + ``/callback`` when configured."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return str(public).rstrip("/") + url_for("launch.callback")
    return url_for("launch.callback", _external=True)


def check_iss(services: Services, iss: str | None) -> Registration:
    """Allow-list then address check; both without sending a request. A refusal is audited
    (by its code: the ``iss`` itself came from whoever sent the browser here)."""
    try:
        if not iss or len(iss) > 2000:
            raise BadLaunchRequest("The launch did not say which FHIR server it came from (iss).")
        reg = services.registrations.lookup(iss)
        netguard.check_url(iss, reg.allow_addresses)
    except AttachError as exc:
        audit.record("iss-refused", MINOR_FAILURE, detail=exc.code)
        raise
    return reg


def begin(services: Services, sid: str, iss: str, kind: str, launch: str | None) -> str:
    """Discover, remember the pending authorization under a fresh state; the authorize URL."""
    reg = check_iss(services, iss)
    config = services.smart_configuration(iss, reg)
    wanted = scopes.request_scopes(kind, reg.scopes, config, reg.extra_scopes)
    if not (config.issuer and config.jwks_uri):  # no way to verify an id_token
        wanted = [s for s in wanted if s not in ("openid", "fhirUser")]
    made = smart_client.new_secrets()
    callback_uri = redirect_uri()
    pending: dict[str, Any] = {
        "sid": sid,
        "iss": iss,
        "kind": kind,
        "scopes": wanted,
        "nonce": made["nonce"],
        "code_verifier": made["code_verifier"],
        "redirect_uri": callback_uri,
        "token_endpoint": config.token_endpoint,
        "authorization_endpoint": config.authorization_endpoint,
        "issuer": config.issuer,
        "jwks_uri": config.jwks_uri,
        "iss_parameter_supported": config.iss_parameter_supported,
    }
    services.store.put(STATE_NS, made["state"], pending, current_app.config["STATE_TTL"])
    log.info("launch.begin kind=%s registration=%s", kind, reg.name)
    return smart_client.authorization_url(
        reg,
        config.authorization_endpoint,
        iss=iss,
        redirect_uri=callback_uri,
        scopes=wanted,
        state=made["state"],
        code_verifier=made["code_verifier"],
        nonce=made["nonce"],
        launch=launch,
    )


def complete(services: Services, sid: str | None, args: dict[str, str]) -> str:
    """Check the callback, exchange the code, verify the id_token; the new launch context id.
    Either way the outcome is audited."""
    state = args.get("state", "")
    pending = services.store.take(STATE_NS, state) if 20 <= len(state) <= 200 else None
    try:
        ctx, record = _complete(services, sid, args, pending)
    except AttachError as exc:
        # The browser session that began it: a copy for the EHR waits for its next launch.
        who = audit.Who(str(pending["iss"]), session=str(pending["sid"])) if pending else None
        audit.record("authorize-failed", MINOR_FAILURE, who, detail=exc.code)
        raise
    # With the new launch, whose token carries the record's copy to the EHR (AUDIT_TO_EHR).
    audit.record("launch", SUCCESS, LaunchContext(id=ctx, record=record, services=services).who)
    return ctx


def _complete(
    services: Services, sid: str | None, args: dict[str, str], pending: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    if pending is None or sid is None or not secrets.compare_digest(pending["sid"], sid):
        raise StateInvalid()
    if "iss" in args and not _is_our_issuer(args["iss"], pending):
        raise IssuerMismatch()
    if "iss" not in args and pending["iss_parameter_supported"]:
        raise IssuerMismatch("The sign-in response did not name its authorization server.")
    if "error" in args:
        raise AuthorizationDenied(oauth_error=args["error"][:100])
    code = args.get("code")
    if not code:
        raise BadLaunchRequest("The sign-in response carried no authorization code.")
    reg = services.registrations.lookup(pending["iss"])
    token = smart_client.exchange_code(
        reg,
        pending["token_endpoint"],
        code=code,
        code_verifier=pending["code_verifier"],
        redirect_uri=pending["redirect_uri"],
        transport=services.transport,
    )
    claims = _identity(services, reg, pending, token)
    record = _launch_record(services, reg, sid, pending, token, claims)
    ctx = secrets.token_urlsafe(18)
    services.store.put(LAUNCH_NS, ctx, record, current_app.config["LAUNCH_TTL"])
    log.info("launch.complete kind=%s registration=%s", pending["kind"], reg.name)
    return ctx, record


def _is_our_issuer(iss: str, pending: dict[str, Any]) -> bool:
    """RFC 9207: the discovered ``issuer`` exactly; without one (CapabilityStatement discovery)
    the issuer must be the authorization endpoint's own base (same origin, path prefix)."""
    if pending["issuer"]:
        return bool(iss == pending["issuer"])
    endpoint = pending["authorization_endpoint"]
    return origin(iss) == origin(endpoint) and endpoint.startswith(iss.rstrip("/") + "/")


def _identity(
    services: Services, reg: Registration, pending: dict[str, Any], token: dict[str, Any]
) -> dict[str, Any]:
    """The verified id_token claims, or {} when openid was neither asked for nor granted."""
    granted = scopes.Granted.parse(token.get("scope"))
    id_token = token.get("id_token")
    if "openid" not in pending["scopes"] or (not id_token and not granted.has("openid")):
        return {}
    if not isinstance(id_token, str) or not pending["issuer"] or not pending["jwks_uri"]:
        raise IdTokenInvalid("The EHR granted openid but sent no verifiable id_token.")
    return smart_client.verify_id_token(
        id_token,
        jwks=lambda refetch: services.jwks(pending["jwks_uri"], reg, refetch),
        issuer=pending["issuer"],
        client_id=reg.client_id,
        nonce=pending["nonce"],
        access_token=token["access_token"],
    )


def _launch_record(
    services: Services,
    reg: Registration,
    sid: str,
    pending: dict[str, Any],
    token: dict[str, Any],
    claims: dict[str, Any],
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sid": sid,
        "iss": pending["iss"],
        "kind": pending["kind"],
        "registration": reg.name,
        "token_endpoint": pending["token_endpoint"],
        "token": {
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "expires_at": token.get("expires_at"),
            "expires_in": token.get("expires_in"),
            "scope": token.get("scope") or " ".join(pending["scopes"]),
        },
        "requested_scope": " ".join(pending["scopes"]),
        "fhir_user": claims.get("fhirUser") if isinstance(claims.get("fhirUser"), str) else None,
        "created": int(time.time()),
    }
    for key in CONTEXT_KEYS:
        if isinstance(token.get(key), str | bool):
            record[key] = token[key]
    if "fhirContext" in token:
        context = fhir_context(token["fhirContext"])
        if context:
            record["fhir_context"] = context
    style_url = token.get("smart_style_url")
    if isinstance(style_url, str):
        trusted = [pending["iss"], pending["token_endpoint"]]
        with services.http(reg) as http:
            record["style"] = style.fetch_colours(style_url, trusted, http)
    return record


def fhir_context(value: Any) -> list[dict[str, str]]:
    """The token response's ``fhirContext`` (SMART 2.x) as the app keeps it: entries with a
    relative ``reference`` ``Type/id`` (and their ``role``, when a string), at most
    ``MAX_FHIR_CONTEXT``, each once. The rest (``canonical`` or ``identifier`` only, malformed,
    a Patient or Encounter in the launch role) is dropped and logged by reason, never by value."""
    dropped: Counter[str] = Counter()
    kept: list[dict[str, str]] = []
    entries = value[:MAX_FHIR_CONTEXT] if isinstance(value, list) else []
    if not isinstance(value, list):
        dropped["not_a_list"] += 1
    else:
        dropped["over_limit"] += len(value) - len(entries)
    for entry in entries:
        problem = _context_problem(entry)
        if problem:
            dropped[problem] += 1
            continue
        keep = {"reference": entry["reference"]}
        if "role" in entry:
            keep["role"] = entry["role"]
        if keep not in kept:
            kept.append(keep)
    reasons = ",".join(f"{code}:{n}" for code, n in sorted(dropped.items()) if n)
    log.info("launch.fhir_context kept=%d dropped=%s", len(kept), reasons or "none")
    return kept


def _context_problem(entry: Any) -> str | None:
    """Why one ``fhirContext`` entry is not kept (a reason code); None when it is."""
    if not isinstance(entry, dict):
        return "not_an_object"
    reference = entry.get("reference")
    if reference is None:
        return "no_reference"  # canonical or identifier only: nothing the app reads by
    kind, slash, ident = reference.partition("/") if isinstance(reference, str) else ("", "", "")
    if not (slash and is_resource_type(kind) and is_fhir_id(ident)):
        return "bad_reference"  # absolute, versioned, contained or not a string
    if "type" in entry and entry["type"] != kind:
        return "type_mismatch"
    role = entry.get("role")
    if "role" in entry and not (isinstance(role, str) and ROLE.fullmatch(role)):
        return "bad_role"
    if kind in ("Patient", "Encounter") and role in (None, "launch"):
        return "patient_or_encounter"  # SMART: those travel as ``patient`` and ``encounter``
    return None


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
