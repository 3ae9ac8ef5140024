"""FHIR R4 AuditEvents modelled on IHE BALP: who did what to which patient's record, and how.

Pure: the caller supplies every fact (the clock too). References and codes only: never a
token, a name, an answer or a search value that could hold one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from attach_fhir.canonical import BASE

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
IHE_EVENT = "urn:ihe:event-type-code"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
BALP_USER = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
#: This app's own event codes (second subtype coding), for the SMART launch events.
APP_EVENT = f"{BASE}/CodeSystem/audit-event"
CLIENT_ID = "urn:ietf:params:oauth:client-id"

#: RESTful interactions and their AuditEvent.action (BALP: searches and operations execute).
ACTIONS = {
    "capabilities": "R",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "search-type": "E",
    "search-system": "E",
    "operation": "E",
    "transaction": "E",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
}
#: SMART launch events: (event type code, display, IHE subtype or None, display).
LAUNCH_EVENTS = {
    "launch": ("110114", "User Authenticated", "ITI-71", "Get Access Token"),
    "token-refresh": ("110114", "User Authenticated", "ITI-71", "Get Access Token"),
    "authorize-failed": ("110114", "User Authenticated", "ITI-71", "Get Access Token"),
    "iss-refused": ("110113", "Security Alert", None, None),
}
#: Bulk Data steps after the ``$export`` kickoff (an ``operation``): polling the status URL,
#: cancelling (DELETE on it), downloading one output file. One record per step, not per line.
BULK_EVENTS = {"bulk-status": "E", "bulk-cancel": "D", "bulk-file": "R"}
EVENTS = frozenset(ACTIONS) | frozenset(LAUNCH_EVENTS) | frozenset(BULK_EVENTS)
#: The httpx request extension naming a Bulk Data step: ``(event, resource type or None)``.
AUDIT_STEP = "attach_audit_step"

#: AuditEvent.outcome codes.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"

#: Search parameters whose values are kept in the recorded query: references, ids, codes and
#: paging. Any other value (a name, a birth date, an MRN) is replaced by ``*``.
KEPT_PARAMETERS = frozenset(
    {
        "_id",
        "_count",
        "_sort",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_total",
        "patient",
        "subject",
        "encounter",
        "based-on",
        "derived-from",
        "part-of",
        "questionnaire",
        "url",
        "version",
        "status",
        "category",
        "code",
        "context-type",
        "_lastUpdated",
        "_type",
        "_since",
        "_outputFormat",
    }
)
REDACTED = "*"


@dataclass(frozen=True)
class AuditFacts:
    """What happened, as references and codes: the input of :func:`audit_event`."""

    #: A RESTful interaction of :data:`ACTIONS` or a launch event of :data:`LAUNCH_EVENTS`.
    event: str
    outcome: str
    recorded: datetime
    #: The FHIR server (``iss``) the event concerns.
    server: str | None = None
    #: The app's OAuth client id there.
    client_id: str | None = None
    #: ``fhirUser`` of the signed-in user (a reference, relative or absolute).
    user: str | None = None
    #: ``Patient/<id>`` whose record it touched.
    patient: str | None = None
    #: ``Type/<id>`` read or written, or ``Type`` (a search, a create whose id is unknown).
    resource: str | None = None
    #: The search as sent, ``a=b&c=d`` (values redacted here, see :data:`KEPT_PARAMETERS`).
    query: str | None = None
    #: The X-Request-Id of the HTTP request.
    request_id: str | None = None
    #: An error code (never a message from the server: it may quote data).
    detail: str | None = None


def audit_event(facts: AuditFacts, observer: str = "attach-fhir") -> dict[str, Any]:
    """The AuditEvent for ``facts`` (FHIR R4 JSON), ``observer`` naming the recording app."""
    if facts.event not in EVENTS:
        raise ValueError(f"unknown audit event {facts.event!r}")
    if facts.outcome not in (SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, "12"):
        raise ValueError(f"unknown audit outcome {facts.outcome!r}")
    if facts.recorded.tzinfo is None:
        raise ValueError("recorded must be an aware datetime")
    event: dict[str, Any] = {"resourceType": "AuditEvent", **_what(facts)}
    event["recorded"] = facts.recorded.isoformat(timespec="milliseconds")
    event["outcome"] = facts.outcome
    if facts.detail:
        event["outcomeDesc"] = facts.detail
    event["agent"] = _agents(facts)
    event["source"] = {
        "observer": {"display": observer},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities = _entities(facts)
    if entities:
        event["entity"] = entities
    return event


def _what(facts: AuditFacts) -> dict[str, Any]:
    """type, subtype and action."""
    if facts.event in ACTIONS:
        return {
            "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
            "subtype": [{"system": RESTFUL, "code": facts.event}],
            "action": ACTIONS[facts.event],
        }
    if facts.event in BULK_EVENTS:
        return {
            "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
            "subtype": [
                {"system": RESTFUL, "code": "operation"},
                {"system": APP_EVENT, "code": facts.event},
            ],
            "action": BULK_EVENTS[facts.event],
        }
    code, display, ihe, ihe_display = LAUNCH_EVENTS[facts.event]
    subtype = [{"system": IHE_EVENT, "code": ihe, "display": ihe_display}] if ihe else []
    subtype.append({"system": APP_EVENT, "code": facts.event})
    return {
        "type": {"system": DCM, "code": code, "display": display},
        "subtype": subtype,
        "action": "E",
    }


def _agents(facts: AuditFacts) -> list[dict[str, Any]]:
    """The user (requestor), the app (source role) and the FHIR server (destination role)."""
    agents: list[dict[str, Any]] = []
    if facts.user:
        agents.append(
            {
                "type": {"coding": [{"system": BALP_USER, "code": "UserOauthAgent"}]},
                "who": {"reference": facts.user},
                "requestor": True,
            }
        )
    app: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"display": "attach-fhir"},
        "requestor": not facts.user,
    }
    if facts.client_id:
        app["who"]["identifier"] = {"system": CLIENT_ID, "value": facts.client_id}
    agents.append(app)
    if facts.server:
        agents.append(
            {
                "type": {
                    "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
                },
                "who": {"identifier": {"value": facts.server}},
                "requestor": False,
                "network": {"address": facts.server, "type": "5"},
            }
        )
    return agents


def _entities(facts: AuditFacts) -> list[dict[str, Any]]:
    """The patient, the resource or query, and the request id."""
    entities: list[dict[str, Any]] = []
    if facts.patient:
        entities.append(_entity({"reference": facts.patient}, "1", "Person", "1", "Patient"))
    if facts.resource and facts.query is None:
        entities.append(
            _entity(_reference(facts.resource), "2", "System Object", "4", "Domain Resource")
        )
    if facts.query is not None:
        query = _entity(_reference(facts.resource or ""), "2", "System Object", "24", "Query")
        query["query"] = base64.b64encode(redacted_query(facts.query).encode()).decode("ascii")
        entities.append(query)
    if facts.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": facts.request_id}},
                "type": {"system": BALP_ENTITY, "code": "XrequestId"},
            }
        )
    return entities


def _entity(
    what: dict[str, Any], type_: str, type_display: str, role: str, role_display: str
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "type": {"system": ENTITY_TYPE, "code": type_, "display": type_display},
        "role": {"system": OBJECT_ROLE, "code": role, "display": role_display},
    }
    if what:
        entity["what"] = what
    return entity


def _reference(resource: str) -> dict[str, str]:
    """``Type/id`` as a reference; a bare ``Type`` as a typed reference to no instance."""
    if not resource:
        return {}
    return {"reference": resource} if "/" in resource else {"type": resource}


def redacted_query(query: str) -> str:
    """``query`` with every value of a parameter outside :data:`KEPT_PARAMETERS` as ``*``
    (modifiers and chains count by their base name: ``name:exact`` is ``name``)."""
    known = _FULLY_KEPT.get(query)
    if known is not None:
        return known
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(name, value if _base_name(name) in KEPT_PARAMETERS else None) for name, value in pairs]
    redacted = urlencode(
        [(name, REDACTED if value is None else value) for name, value in kept], safe="*/:,|"
    )
    if all(value is not None for _, value in kept) and len(_FULLY_KEPT) < _FULLY_KEPT_MAX:
        _FULLY_KEPT[query] = redacted
    return redacted


#: Queries nothing was redacted from (references, codes, paging: the app's own searches, which
#: every page repeats), with their result; never one that held a redacted value. Bounded.
_FULLY_KEPT: dict[str, str] = {}
_FULLY_KEPT_MAX = 4096


def _base_name(parameter: str) -> str:
    return parameter.split(":", 1)[0].split(".", 1)[0]


@dataclass(frozen=True)
class Interaction:
    """A FHIR REST request, classified: its interaction, ``Type[/id]`` and search (if any)."""

    event: str
    resource: str | None
    query: str | None


def interaction(method: str, path: str, query: str, form: str | None = None) -> Interaction | None:
    """The RESTful interaction of ``method`` on ``path`` (relative to the FHIR base, no leading
    slash) with URL ``query`` (and, for ``POST _search``, the ``form`` body); None for what is
    not a FHIR interaction (``.well-known``, an empty path segment)."""
    segments = [s for s in path.strip("/").split("/")] if path.strip("/") else []
    if segments and segments[0].startswith(".well-known"):
        return None
    method = method.upper()
    if any(s.startswith("$") for s in segments):
        named = [s for s in segments if not s.startswith("$")]
        return Interaction("operation", "/".join(named[:2]) or None, query or None)
    if not segments:
        if method == "POST":
            return Interaction("transaction", "Bundle", None)
        return Interaction("search-system", None, query) if method == "GET" else None
    kind = segments[0]
    if kind == "metadata" and len(segments) == 1:
        return Interaction("capabilities", None, None)
    if len(segments) == 1:
        if method == "GET":
            return Interaction("search-type", kind, query)
        if method == "POST":
            return Interaction("create", kind, None)
        if method in ("PUT", "PATCH", "DELETE"):  # conditional: the search names the target
            name = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
            return Interaction(name, kind, query)
        return None
    if segments[1] == "_search" and method == "POST":
        return Interaction("search-type", kind, "&".join(p for p in (query, form or "") if p))
    ref = f"{kind}/{segments[1]}"
    if len(segments) == 2:
        verbs = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        return Interaction(verbs[method], ref, None) if method in verbs else None
    if segments[2] == "_history" and method == "GET":
        return Interaction("vread" if len(segments) > 3 else "history-instance", ref, None)
    return None


def fhir_interaction(
    method: str, path: str, base: str, query: str, form: str | None = None
) -> Interaction | None:
    """The interaction a request for URL ``path`` makes on the FHIR server whose base path is
    ``base``; None for a request elsewhere (a token endpoint, a style sheet), for what is no FHIR
    interaction, and for AuditEvents (the trail's own copies are not audited again)."""
    base = base.rstrip("/")
    if not (path == base or path.startswith(base + "/")):
        return None
    found = interaction(method, path[len(base) :], query, form)
    if found is None or (found.resource or "").startswith("AuditEvent"):
        return None
    return found


def location_reference(location: str) -> str | None:
    """``Type/id`` of a ``Location`` header (``[base/]Type/id[/_history/v]``), if it names one."""
    parts = urlsplit(location).path.split("/_history/")[0].strip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and all(parts[-2:]) else None


def outcome_of(status: int | None) -> str:
    """The AuditEvent outcome of an HTTP status (None: no answer at all)."""
    if status is not None and status < 400:
        return SUCCESS
    if status is not None and status < 500:
        return MINOR_FAILURE
    return SERIOUS_FAILURE


#: Search parameters whose value names the patient a search is about.
PATIENT_PARAMETERS = frozenset({"patient", "subject", "subject:Patient", "patient:Patient"})


def query_patients(query: str) -> list[str]:
    """``Patient/<id>`` of each patient a search names (``patient=1``, ``subject=Patient/1``)."""
    found: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in PATIENT_PARAMETERS:
            continue
        for each in value.split(","):
            ref = _patient_reference(each, bare_id=name.startswith("patient"))
            if ref and ref not in found:
                found.append(ref)
    return found


def patients_in(resource: Any) -> list[str]:
    """``Patient/<id>`` of each patient a resource (or each entry of a Bundle) is about: its
    ``subject`` or ``patient`` where they name a Patient, or the Patient itself."""
    if not isinstance(resource, dict):
        return []
    if resource.get("resourceType") == "Bundle":
        found: list[str] = []
        for entry in resource.get("entry") or []:
            inner = entry.get("resource") if isinstance(entry, dict) else None
            for ref in patients_in(inner):
                if ref not in found:
                    found.append(ref)
        return found
    if resource.get("resourceType") == "Patient":
        own = _patient_reference(str(resource.get("id") or ""), bare_id=True)
        return [own] if own else []
    for key in ("subject", "patient"):
        value = resource.get(key)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            named = _patient_reference(value["reference"], bare_id=False)
            if named:
                return [named]
    return []


def _patient_reference(value: str, bare_id: bool) -> str | None:
    """``Patient/<id>`` from ``Patient/<id>``, a URL ending so, or (``bare_id``) a plain id."""
    value = value.strip()
    parts = urlsplit(value).path.split("/_history/")[0].strip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and _is_id(parts[-1]):
        return f"Patient/{parts[-1]}"
    if bare_id and _is_id(value):
        return f"Patient/{value}"
    return None


def _is_id(value: str) -> bool:
    """A FHIR id: 1-64 of letters, digits, ``-`` and ``.``."""
    return 0 < len(value) <= 64 and all(c.isalnum() or c in "-." for c in value)
