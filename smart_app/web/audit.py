"""The app's audit trail: one AuditEvent per FHIR request it sends and per launch event.

FHIR requests are recorded by :class:`AuditedTransport`, under every launch's outbound client;
launch, refresh and refusal events by :func:`record`. Built by attach_fhir.audit_events.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import Flask, current_app, g, has_app_context

from attach_fhir.audit_events import (
    SERIOUS_FAILURE,
    AuditFacts,
    Interaction,
    audit_event,
    fhir_interaction,
    location_reference,
    outcome_of,
)
from attach_fhir.io.audit_store import SqlAuditStore, configured_dsn, open_audit_store

log = logging.getLogger(__name__)

EXTENSION = "attach_audit"
REQUEST_ID = "X-Request-Id"
#: The records an app context (a request, a worker drain) made, written when it ends.
PENDING = "attach_audit_pending"
#: Records a failed write keeps in memory for the next page's write (the store may be back by
#: then, e.g. after a database restart); past this many the oldest are dropped, and logged.
UNWRITTEN_LIMIT = 10_000


@dataclass(frozen=True)
class Who:
    """Whose launch a request serves: the FHIR server, the app's client id there, the user and
    the patient (references only)."""

    server: str
    client_id: str | None = None
    user: str | None = None
    patient: str | None = None
    #: The launch (a LaunchContext) whose token may carry a copy to the EHR, if any.
    launch: Any = field(default=None, compare=False, repr=False)
    #: The browser session a failed authorization came from (no launch): the EHR's copy of its
    #: record waits for that session's next launch there.
    session: str | None = field(default=None, compare=False, repr=False)


#: Told about each record appended, with whose it is (sends copies to the EHR).
OnRecord = Callable[[dict[str, Any], "Who | None"], None]


class AuditTrail:
    """Builds and appends AuditEvents; a failed write is logged, never shown to the user.

    Within an app context the records wait on ``g`` and are written together, in one commit,
    when it ends (:meth:`flush`): one commit per page, not one per FHIR request.
    """

    def __init__(
        self, store: SqlAuditStore, clock: Callable[[], float] = time.time, observer: str = ""
    ) -> None:
        self.store = store
        self.clock = clock
        self.observer = observer or "attach-fhir"
        self.on_record: OnRecord | None = None
        self._unwritten: list[tuple[dict[str, Any], float]] = []
        self._guard = threading.Lock()

    def record(self, event: str, outcome: str, who: Who | None = None, **facts: str | None) -> None:
        """Append one AuditEvent (``facts``: resource, query, request_id, detail)."""
        now = self.clock()
        built = audit_event(
            AuditFacts(
                event=event,
                outcome=outcome,
                recorded=datetime.fromtimestamp(now, UTC),
                server=who.server if who else None,
                client_id=who.client_id if who else None,
                user=who.user if who else None,
                patient=who.patient if who else None,
                **facts,
            ),
            self.observer,
        )
        try:
            if has_app_context():
                g.setdefault(PENDING, []).append((built, now))
            else:
                self.store.append(built, now)
            if self.on_record is not None:
                self.on_record(built, who)
        except Exception as exc:  # the user's work must not fail for the trail
            log.error("audit.write outcome=failed error=%s", type(exc).__name__)

    def flush(self) -> None:
        """Write the records the current app context made, and any an earlier failed write
        kept (called when the context ends)."""
        pending = g.pop(PENDING, [])
        with self._guard:
            pending, self._unwritten = self._unwritten + pending, []
        if not pending:
            return
        try:
            self.store.append_many(pending)
        except Exception as exc:  # the user's work must not fail for the trail
            with self._guard:
                kept = pending + self._unwritten
                self._unwritten = kept[-UNWRITTEN_LIMIT:]
            log.error(
                "audit.write outcome=failed error=%s count=%d kept=%d dropped=%d",
                type(exc).__name__,
                len(pending),
                len(self._unwritten),
                len(kept) - len(self._unwritten),
            )

    def close(self) -> None:
        """Close the store."""
        self.store.close()


class AuditedTransport(httpx.BaseTransport):
    """Records each FHIR interaction sent through it for ``who``, with its X-Request-Id."""

    def __init__(self, inner: httpx.BaseTransport, trail: AuditTrail, who: Who) -> None:
        self._inner = inner
        self._trail = trail
        self._who = who
        self._base = urlsplit(who.server.rstrip("/")).path

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send, then record the interaction and its outcome (a transport error too)."""
        found = self._classify(request)
        if found is None:
            return self._inner.handle_request(request)
        request_id = request.headers.get(REQUEST_ID) or secrets.token_hex(16)
        request.headers[REQUEST_ID] = request_id
        try:
            response = self._inner.handle_request(request)
        except httpx.HTTPError:
            self._record(found, SERIOUS_FAILURE, request_id, None)
            raise
        resource = found.resource
        if found.event == "create" and response.status_code < 300:
            resource = location_reference(response.headers.get("Location", "")) or resource
        self._record(found, outcome_of(response.status_code), request_id, resource)
        return response

    def _classify(self, request: httpx.Request) -> Interaction | None:
        form = None
        # Only a POST (``_search``) carries its search as a form; a header lookup costs more
        # than the rest of the classification, so GETs skip it.
        if request.method == "POST" and request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = request.content.decode("utf-8", "replace")
        query = request.url.query.decode("ascii", "replace")
        return fhir_interaction(request.method, request.url.path, self._base, query, form)

    def _record(
        self, found: Interaction, outcome: str, request_id: str, resource: str | None
    ) -> None:
        patient = self._who.patient
        if resource and resource.startswith("Patient/"):
            patient = resource
        self._trail.record(
            found.event,
            outcome,
            Who(self._who.server, self._who.client_id, self._who.user, patient, self._who.launch),
            resource=resource or found.resource,
            query=found.query,
            request_id=request_id,
        )

    def close(self) -> None:
        """The inner transport belongs to whoever made it."""
        self._inner.close()


def init_app(app: Flask, data_dir: str) -> AuditTrail:
    """Open the audit store the settings name (``AUDIT_STORE``, else ``DATABASE_URL``) and keep
    the trail on ``app``."""
    store = open_audit_store(configured_dsn(app.config), data_dir)
    clock = app.config.get("AUDIT_CLOCK") or time.time
    trail = AuditTrail(store, clock, str(app.config.get("AUDIT_OBSERVER") or ""))
    app.extensions[EXTENSION] = trail

    @app.teardown_appcontext
    def write_records(_exc: BaseException | None) -> None:
        trail.flush()

    return trail


def trail() -> AuditTrail | None:
    """The current app's audit trail."""
    found: AuditTrail | None = current_app.extensions.get(EXTENSION)
    return found


def record(event: str, outcome: str, who: Who | None = None, **facts: str | None) -> None:
    """Record a launch event on the current app's trail."""
    current = trail()
    if current is not None:
        current.record(event, outcome, who, **facts)
