"""Copies of the audit trail for the EHR (``AUDIT_TO_EHR``), where it accepts AuditEvent create.

Each app context (a request, a worker drain) gathers its launches' records and, at its end,
queues one transaction per launch in the outbox, on a target of its own; the worker delivers
them with that launch's token. Queued only, never sent in the request: the user never waits.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, g

from attach_fhir.errors import AttachError
from attach_fhir.io.fhir_client import FhirClient
from smart_app.records import delivery
from smart_app.web.audit import AuditTrail, Who

log = logging.getLogger(__name__)

PENDING = "attach_audit_copies"


def init_app(app: Flask, trail: AuditTrail) -> None:
    """Gather each record that has a launch; queue them when the app context ends."""

    def gather(event: dict[str, Any], who: Who | None) -> None:
        if who is not None and who.launch is not None:
            g.setdefault(PENDING, []).append((event, who.launch))

    trail.on_record = gather

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
