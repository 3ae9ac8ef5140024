"""The audit trail of the commands that reach a FHIR server as a system client (SMART Backend
Services: ``bulk-score`` and its ``--export``, ``outcomes``, ``package load``, ``outbox drain``,
also without a token): one AuditEvent per FHIR request, to the app's audit store (docs/audit.md).

No user: the app, named by its ``client_id``, is the requesting agent (BALP's system actor).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from attach_fhir.audit_events import (
    AUDIT_STEP,
    SERIOUS_FAILURE,
    AuditFacts,
    Interaction,
    audit_event,
    fhir_interaction,
    location_reference,
    outcome_of,
    patients_in,
    query_patients,
)
from attach_fhir.io.audit_store import SqlAuditStore, configured_dsn, open_audit_store
from attach_fhir.io.outbox import OpenClients
from attach_fhir.io.outbox_store import default_data_dir
from attach_fhir.io.private_files import secure_data_dir
from attach_fhir.io.sql_store import is_shared

log = logging.getLogger(__name__)

REQUEST_ID = "X-Request-Id"
#: ``outcomeDesc`` of a refused system token request (BackendTokenError's code).
REFUSAL_CODE = "backend_token_failed"


class SystemAudit:
    """Builds and appends the AuditEvents of a system client; a record that cannot be written
    is logged (``audit.write outcome=failed``) and the command goes on."""

    def __init__(
        self,
        store: SqlAuditStore,
        clock: Callable[[], float] = time.time,
        observer: str = "attach-fhir",
    ) -> None:
        self.store = store
        self.clock = clock
        self.observer = observer

    def record(
        self, event: str, outcome: str, server: str, client_id: str | None, **facts: Any
    ) -> None:
        """Append one AuditEvent (``facts``: patient, resource, query, request_id, detail)."""
        now = self.clock()
        built = audit_event(
            AuditFacts(
                event=event,
                outcome=outcome,
                recorded=datetime.fromtimestamp(now, UTC),
                server=server,
                client_id=client_id,
                **facts,
            ),
            self.observer,
        )
        try:
            self.store.append(built, now)
        except Exception as exc:  # the job's own work must not fail for the trail
            log.error("audit.write outcome=failed error=%s", type(exc).__name__)

    def transport(
        self, server: str, client_id: str | None, inner: httpx.BaseTransport | None = None
    ) -> AuditedSystemTransport:
        """``inner`` (a fresh HTTP transport by default) recording each FHIR request."""
        return AuditedSystemTransport(inner or httpx.HTTPTransport(), self, server, client_id)

    def client(self, server: str, client_id: str | None, timeout: float) -> httpx.Client:
        """An HTTP client whose FHIR requests to ``server`` are audited for ``client_id``."""
        return httpx.Client(timeout=timeout, transport=self.transport(server, client_id))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> SystemAudit:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AuditedSystemTransport(httpx.BaseTransport):
    """Records each FHIR interaction with ``server`` (and each Bulk Data step a request names
    in its ``AUDIT_STEP`` extension, wherever its file lies) with its X-Request-Id."""

    def __init__(
        self, inner: httpx.BaseTransport, audit: SystemAudit, server: str, client_id: str | None
    ) -> None:
        self._inner = inner
        self._audit = audit
        self.server = server.rstrip("/")
        self.client_id = client_id
        parts = urlsplit(self.server)
        self._origin = (parts.scheme.lower(), parts.netloc.lower())
        self._base = parts.path.rstrip("/")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send, then record the interaction and its outcome (a transport error too)."""
        if _is_system_token_request(request):
            return self._token_request(request)
        found = self._classify(request)
        if found is None:
            return self._inner.handle_request(request)
        patients = self._patients(request, found)
        request_id = request.headers.get(REQUEST_ID) or secrets.token_hex(16)
        request.headers[REQUEST_ID] = request_id
        try:
            response = self._inner.handle_request(request)
        except httpx.HTTPError:
            self._record(found, SERIOUS_FAILURE, request_id, found.resource, patients)
            raise
        resource = found.resource
        if found.event == "create" and response.status_code < 300:
            resource = location_reference(response.headers.get("Location", "")) or resource
            if not patients and resource and resource.startswith("Patient/"):
                patients = [resource]
        self._record(found, outcome_of(response.status_code), request_id, resource, patients)
        return response

    def _token_request(self, request: httpx.Request) -> httpx.Response:
        """Send a ``client_credentials`` token request; a refusal is a failed authorization."""
        request_id = request.headers.get(REQUEST_ID) or secrets.token_hex(16)
        request.headers[REQUEST_ID] = request_id
        try:
            response = self._inner.handle_request(request)
        except httpx.HTTPError:
            self._refused(SERIOUS_FAILURE, request_id)
            raise
        if response.status_code >= 400:
            self._refused(outcome_of(response.status_code), request_id)
        return response

    def _refused(self, outcome: str, request_id: str) -> None:
        self._audit.record(
            "authorize-failed",
            outcome,
            self.server,
            self.client_id,
            request_id=request_id,
            detail=REFUSAL_CODE,
        )

    def _classify(self, request: httpx.Request) -> Interaction | None:
        step = request.extensions.get(AUDIT_STEP)
        if step is not None:
            event, resource = step
            return Interaction(event, resource, None)
        url = request.url
        if (url.scheme, url.netloc.decode("ascii")) != self._origin:
            return None  # the token endpoint on another host, say: not the FHIR server
        query = url.query.decode("ascii", "replace")
        found = fhir_interaction(request.method, url.path, self._base, query, _form(request))
        if found is None:
            return None
        if found.event == "transaction" and _only_audit_events(_json_body(request)):
            return None
        return found

    def _patients(self, request: httpx.Request, found: Interaction) -> list[str]:
        """The patients a request names: in its path, its search, or its body."""
        if (found.resource or "").startswith("Patient/"):
            return [str(found.resource)]
        named = query_patients(found.query) if found.query else []
        return named or patients_in(_json_body(request))

    def _record(
        self,
        found: Interaction,
        outcome: str,
        request_id: str,
        resource: str | None,
        patients: list[str],
    ) -> None:
        # BALP: one record per patient; a request about several (a transaction) makes several,
        # all with its one request id.
        each: list[str | None] = [*patients] or [None]
        for patient in each:
            self._audit.record(
                found.event,
                outcome,
                self.server,
                self.client_id,
                patient=patient,
                resource=resource,
                query=found.query,
                request_id=request_id,
            )

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()


class AuditedOpenClients(OpenClients):
    """The outbox's ClientFactory for open servers (no token, e.g. the sandbox), each request
    audited with no client id; closes its HTTP clients and the trail."""

    def __init__(self, audit: SystemAudit, timeout: float = 30.0) -> None:
        super().__init__(timeout)
        self._audit = audit

    def http_client(self, base_url: str) -> httpx.Client:
        """An audited HTTP client for one server."""
        return self._audit.client(base_url, None, self._timeout)

    def close(self) -> None:
        """Close every HTTP client opened, and the trail."""
        super().close()
        self._audit.close()


def _form(request: httpx.Request) -> str | None:
    if not request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return None
    try:
        return request.content.decode("utf-8", "replace")
    except httpx.RequestNotRead:
        return None


def _is_system_token_request(request: httpx.Request) -> bool:
    """A SMART Backend Services token request (``grant_type=client_credentials``)."""
    if request.method != "POST" or not (form := _form(request)):
        return False
    return ("grant_type", "client_credentials") in parse_qsl(form)


def _json_body(request: httpx.Request) -> Any:
    """The request's JSON body, if it has one that was read (None otherwise)."""
    if "json" not in request.headers.get("Content-Type", ""):
        return None
    try:
        return json.loads(request.content) if request.content else None
    except (httpx.RequestNotRead, ValueError):
        return None


def _only_audit_events(bundle: Any) -> bool:
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list) or not entries:
        return False
    return all(
        isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == "AuditEvent"
        for e in entries
    )


def open_system_audit(
    data_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> SystemAudit:
    """The trail in the store the app writes: ``ATTACH_AUDIT_STORE``, else
    ``ATTACH_DATABASE_URL``, else ``audit.sqlite3`` in ``data_dir`` (else ``ATTACH_DATA_DIR``,
    else the default data directory); ``ATTACH_AUDIT_OBSERVER`` names this instance."""
    env = os.environ if environ is None else environ
    folder = Path(data_dir or env.get("ATTACH_DATA_DIR") or default_data_dir())
    dsn = configured_dsn(env, "ATTACH_")
    if not is_shared(dsn):
        secure_data_dir(folder)  # as the app makes it: 0700, its files 0600
    store = open_audit_store(dsn, folder)
    return SystemAudit(store, observer=env.get("ATTACH_AUDIT_OBSERVER") or "attach-fhir")


@contextmanager
def audited_client(server: str, client_id: str | None, timeout: float) -> Iterator[httpx.Client]:
    """An HTTP client whose FHIR requests to ``server`` are audited for ``client_id`` in the
    trail :func:`open_system_audit` opens; both closed on leaving."""
    with open_system_audit() as audit, audit.client(server, client_id, timeout) as http:
        yield http
