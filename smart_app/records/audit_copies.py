"""Copies of the audit trail for the EHR (``AUDIT_TO_EHR``), where it accepts AuditEvent create.

Each app context (a request, a worker drain) gathers its launches' records and, at its end,
queues one transaction per launch in the outbox, on a target of its own; the worker delivers
them with that launch's token. Queued only, never sent in the request: the user never waits.
A failed authorization has no launch: its record is held (session store, ``LAUNCH_TTL``) for
the next launch of the same browser session at the same EHR, and goes with that launch's
records. A refused ``iss`` names no EHR to send to: it stays in the local trail.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from flask import Flask, current_app, g

from attach_fhir.audit_events import APP_EVENT
from attach_fhir.errors import AttachError
from attach_fhir.io.fhir_client import FhirClient
from smart_app.records import delivery
from smart_app.web.audit import AuditTrail, Who
from smart_app.web.services import get_services

log = logging.getLogger(__name__)

PENDING = "attach_audit_copies"
#: Records of this app context waiting for a launch: (event, iss, browser session).
HELD = "attach_audit_held"
#: Session-store namespace of the held records, per (browser session, iss).
HELD_NS = "audit-held"
#: At most this many held records per browser session and EHR (the newest): a browser that
#: fails sign-in after sign-in cannot grow its record without bound.
MAX_HELD = 20


def init_app(app: Flask, trail: AuditTrail) -> None:
    """Gather each record that has a launch; queue them when the app context ends."""

    def gather(event: dict[str, Any], who: Who | None) -> None:
        if who is None:
            return  # a refused iss: no EHR to send it to
        if who.launch is not None:
            pending = g.setdefault(PENDING, [])
            pending.append((event, who.launch))
            if _is_launch(event):  # what this browser's failed tries left goes with it
                pending.extend((held, who.launch) for held in _take_held(who.launch))
        elif who.session:
            g.setdefault(HELD, []).append((event, who.server, who.session))

    trail.on_record = gather

    @app.teardown_appcontext
    def hold_copies(_exc: BaseException | None) -> None:
        for event, iss, session in g.pop(HELD, []):
            try:
                _hold(event, iss, session)
            except Exception as exc:  # the trail keeps its record; only the copy is lost
                log.error("audit.copy outcome=failed error=%s", type(exc).__name__)

    @app.teardown_appcontext
    def queue_copies(_exc: BaseException | None) -> None:
        pending = g.pop(PENDING, [])
        by_target: dict[str, list[dict[str, Any]]] = {}
        launches: dict[str, Any] = {}
        for event, launch in pending:
            target = delivery.target_for(launch) + delivery.AUDIT_SUFFIX
            by_target.setdefault(target, []).append(event)
            launches[target] = launch
        for target, events in by_target.items():
            try:
                _queue(launches[target], events)
            except Exception as exc:  # the user's request is done; the trail keeps its records
                log.error("audit.copy outcome=failed error=%s", type(exc).__name__)


def _is_launch(event: dict[str, Any]) -> bool:
    return any(c.get("system") == APP_EVENT and c.get("code") == "launch" for c in event["subtype"])


def _held_key(session: str, iss: str) -> str:
    """The store key of a browser session's held records for ``iss`` (no session id in it)."""
    return hashlib.sha256(f"{session}|{iss.rstrip('/')}".encode()).hexdigest()


def _hold(event: dict[str, Any], iss: str, session: str) -> None:
    """Keep ``event`` for the session's next launch at ``iss``."""
    store = get_services().store
    key = _held_key(session, iss)
    events = [*(store.get(HELD_NS, key) or {}).get("events", []), event][-MAX_HELD:]
    store.put(HELD_NS, key, {"events": events}, float(current_app.config["LAUNCH_TTL"]))


def _take_held(launch: Any) -> list[dict[str, Any]]:
    """The records held for this launch's browser session and EHR, no longer held."""
    session = launch.record.get("sid")
    if not session:
        return []
    found = launch.services.store.take(HELD_NS, _held_key(str(session), launch.iss))
    return list(found["events"]) if found else []


def accepts_audit_events(launch: Any) -> bool:
    """The EHR declares AuditEvent create and granted this launch ``AuditEvent.c``."""
    if not launch.can("AuditEvent", "c"):
        return False
    services = launch.services
    cache = delivery.outbox_services().capabilities
    try:
        with services.http(services.registrations.lookup(launch.iss)) as http:
            caps = cache.get(FhirClient(launch.iss, http, token_source=launch.token_source))
    except AttachError as exc:
        log.info("audit.copy capabilities=%s", exc.code)
        return False
    return bool(caps.can_create("AuditEvent"))


def _queue(launch: Any, events: list[dict[str, Any]]) -> None:
    if not accepts_audit_events(launch):
        return
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": event,
                "request": {"method": "POST", "url": "AuditEvent"},
            }
            for event in events
        ],
    }
    delivery.queue_audit_copies(launch, bundle)
    log.info("audit.copy queued=%d", len(events))
