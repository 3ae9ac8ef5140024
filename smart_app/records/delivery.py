"""Delivery of submissions from the app: the outbox, whose credentials it uses, and its worker.

Every submission goes through :class:`attach_fhir.io.outbox.Outbox` (store first, then deliver).
The seam is the outbox's ``ClientFactory``: given a target it returns a ``FhirClient`` or None.

Targets are ``<iss>#cred=<key>``, where ``key`` names *whose* token delivers: a hash of (iss,
patient, fhirUser). The session store maps that key to the latest live launch of the same user
for the same patient, so an item queued in one launch is delivered with the token of that launch
or, once it expired, of the user's next launch for that patient (a patient-scoped token can
only write its own patient's record). Order is kept per target. A backend-services client
(system scopes) would be another factory answering plain ``<iss>`` targets; nothing else changes.

The worker is a daemon thread started by ``create_app`` when ``OUTBOX_WORKER`` is true (off by
default and in tests unless asked; ``attach-fhir serve`` turns it on); it drains inside an app
context so token refresh and the SSRF-guarded HTTP clients work as in a request. After each
drain it runs the follow-ups of what it delivered (:mod:`smart_app.records.follow_ups`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g

from attach_fhir.capabilities import CapabilityCache
from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirUnauthorized
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Backoff, Mode, Outbox, StuckWatch, lease_seconds, payload
from attach_fhir.io.outbox_store import (
    DELIVERED,
    FAILED,
    OutboxConfigError,
    OutboxItem,
    open_outbox_store,
)
from attach_fhir.io.sql_store import is_shared, store_url
from smart_app.web.context import LAUNCH_NS, LaunchContext
from smart_app.web.errors import ConfigurationError
from smart_app.web.services import get_services

log = logging.getLogger(__name__)

EXTENSION = "attach_outbox"
CREDENTIAL_NS = "outbox-credential"
CRED_MARK = "#cred="
#: Ends the target of a launch's AuditEvent copies: a queue of their own, so a copy never
#: waits before a submission (targets are delivered in order), and delivered unaudited.
AUDIT_SUFFIX = ";audit"


def credential_key(launch: LaunchContext) -> str:
    """Whose token delivers: one key per (iss, patient, user)."""
    raw = f"{launch.iss}|{launch.patient_id or ''}|{launch.fhir_user or ''}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def target_for(launch: LaunchContext) -> str:
    """The outbox target of this launch's submissions."""
    return f"{launch.iss.rstrip('/')}{CRED_MARK}{credential_key(launch)}"


def remember(launch: LaunchContext, if_changed: bool = False) -> None:
    """Make this launch the one whose token delivers its user's queued items for the patient.

    ``if_changed``: leave a live pointer to this same launch as it is (a read instead of a
    write where nothing waits on it yet; a submission left waiting writes it, renewing its TTL).
    """
    store, key = launch.services.store, credential_key(launch)
    if if_changed and (store.get(CREDENTIAL_NS, key) or {}).get("ctx") == launch.id:
        return
    store.put(CREDENTIAL_NS, key, {"ctx": launch.id}, float(current_app.config["LAUNCH_TTL"]))


def follow_move(old: LaunchContext, new: LaunchContext) -> None:
    """The app changed a launch's patient (a new context id): the previous patient's items
    waiting on the old id keep this user's token under the new one. Its key stays the previous
    patient's, so nothing of theirs is shown or delivered as the new patient's."""
    store, key = old.services.store, credential_key(old)
    if old.patient_id and (store.get(CREDENTIAL_NS, key) or {}).get("ctx") == old.id:
        store.put(CREDENTIAL_NS, key, {"ctx": new.id}, float(current_app.config["LAUNCH_TTL"]))


def live_launch(target: str) -> LaunchContext | None:
    """The live launch whose token delivers the target's items, or None (none live, or a plain
    target: no backend-services credentials yet)."""
    base, mark, key = target.partition(CRED_MARK)
    key = key.removesuffix(AUDIT_SUFFIX)
    if not mark:
        return None
    services = get_services()
    pointer = services.store.get(CREDENTIAL_NS, key)
    ctx = str(pointer["ctx"]) if pointer else ""
    record = services.store.get(LAUNCH_NS, ctx) if ctx else None
    if record is None or record.get("refresh_failed") or str(record["iss"]).rstrip("/") != base:
        return None
    return LaunchContext(id=ctx, record=record, services=services)


def send(
    launch: LaunchContext, submission_id: str, bundle: dict[str, Any], mode: Mode
) -> OutboxItem:
    """Queue ``bundle`` under ``submission_id`` for the launch's server, delivered at once if the
    server answers: how every flow writes. The delivery at once uses this launch's token; an item
    left waiting renews the pointer's lifetime so the worker can still find a token when due."""
    remember(launch, if_changed=True)
    outbox = outbox_services().outbox
    item = outbox.submit(submission_id, target_for(launch), payload(bundle, mode))
    if item.status not in (DELIVERED, FAILED):
        remember(launch)
    return item


def queue_audit_copies(launch: LaunchContext, bundle: dict[str, Any]) -> OutboxItem:
    """Queue a transaction of AuditEvents for the launch's server on its audit target, for the
    worker to deliver with the launch's token; nothing is sent now (the user never waits)."""
    remember(launch, if_changed=True)
    outbox = outbox_services().outbox
    return outbox.store.enqueue(
        f"audit-{uuid.uuid4()}",
        target_for(launch) + AUDIT_SUFFIX,
        payload(bundle, "transaction"),
        outbox.clock(),
    )


def launch_clients(target: str) -> FhirClient | None:
    """The ``ClientFactory``: a client with the token of the launch the target names, or None."""
    launch = live_launch(target)
    if launch is None:
        return None
    services = launch.services

    def token_source(rejected: str | None) -> str | None:
        try:
            return launch.token_source(rejected)
        except AttachError as exc:  # expired, not refreshable: wait for the user's next launch
            raise FhirUnauthorized("The launch's authorization has expired.") from exc

    reg = services.registrations.lookup(launch.iss)
    # The trail's own copies are not audited again (each would make another copy).
    is_copy = target.endswith(AUDIT_SUFFIX)
    http = services.http(reg) if is_copy else services.audited_http(reg, launch.who)
    g.setdefault("attach_http", []).append(http)  # closed at app-context teardown
    return FhirClient(launch.iss, http, token_source=token_source)


class OutboxServices:
    """The app's outbox, its worker and the capability cache, kept on the app by ``create_app``;
    the outbox store opens on first use."""

    def __init__(self, open_outbox: Callable[[], Outbox], capabilities: CapabilityCache) -> None:
        self._open_outbox = open_outbox
        self._outbox: Outbox | None = None
        self._lock = threading.Lock()
        self.capabilities = capabilities
        self.worker: Worker | None = None

    @property
    def outbox(self) -> Outbox:
        """The outbox (opened on first use)."""
        with self._lock:
            if self._outbox is None:
                self._outbox = self._open_outbox()
            return self._outbox

    def stop(self) -> None:
        """Stop the worker (if any) and close the outbox store (if it was opened)."""
        if self.worker is not None:
            self.worker.stop()
        if self._outbox is not None:
            self._outbox.store.close()


#: What runs after a drain delivered submissions: their follow-ups (goals, Task).
AfterDelivery = Callable[[Iterable[str]], None]


class Worker:
    """Drains the outbox in the background, in the app's context, until stopped."""

    def __init__(self, app: Flask, outbox: Outbox, poll: float, after: AfterDelivery) -> None:
        self.app = app
        self.outbox = outbox
        self.poll = poll
        self.after = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attach-outbox", daemon=True)
        self.watch = StuckWatch(float(app.config.get("OUTBOX_STUCK_AFTER", 300.0)))

    def start(self) -> None:
        """Start draining."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll
            try:
                with self.app.app_context():
                    report = self.outbox.drain()
                    if report.delivered or report.failed:
                        log.info(
                            "outbox.worker delivered=%d failed=%d retrying=%d",
                            len(report.delivered),
                            len(report.failed),
                            len(report.retrying),
                        )
                    if report.delivered:
                        self.after(report.delivered)
                    self.watch.check(self.outbox.store, time.time())
                    due = self.outbox.next_due_in()
                    if due is not None:
                        wait = min(self.poll, max(due, 0.05))
            except Exception:  # keep the worker alive: the store or the network may come back
                log.exception("outbox.worker drain failed")
            self._stop.wait(wait)


def init_app(app: Flask, after_delivery: AfterDelivery) -> OutboxServices:
    """Open the outbox (``OUTBOX_DSN``, else ``DATABASE_URL``, else SQLite in DATA_DIR) and start
    the worker if asked; ``after_delivery`` follows up what the worker delivers."""
    url = store_url(app.config.get("OUTBOX_DSN"), app.config.get("DATABASE_URL"))
    try:  # checked at start-up
        lease = lease_seconds(app.config.get("OUTBOX_LEASE_SECONDS"))
    except OutboxConfigError as exc:
        raise ConfigurationError(exc.description) from exc

    def open_outbox() -> Outbox:
        data_dir = Path(app.config["DATA_DIR"])  # set by create_app
        store = open_outbox_store(url, data_dir)
        backoff = Backoff(
            base=float(app.config.get("OUTBOX_BACKOFF_BASE", 5.0)),
            cap=float(app.config.get("OUTBOX_BACKOFF_CAP", 600.0)),
        )
        return Outbox(store, launch_clients, backoff=backoff, lease=lease)

    services = OutboxServices(
        open_outbox, CapabilityCache(float(app.config.get("CAPABILITIES_TTL", 3600.0)))
    )
    if is_shared(url):
        services.outbox  # noqa: B018 - opened now: a schema not current stops the start
    if app.config.get("OUTBOX_WORKER"):
        poll = float(app.config.get("OUTBOX_POLL", 5.0))
        services.worker = Worker(app, services.outbox, poll, after_delivery)
        services.worker.start()
        log.info("outbox.worker started")
    app.extensions[EXTENSION] = services
    return services


def outbox_services(app: Flask | None = None) -> OutboxServices:
    """The outbox services of ``app`` (default: the current app)."""
    found: OutboxServices = (app or current_app).extensions[EXTENSION]
    return found


def stop(app: Flask) -> None:
    """Stop ``app``'s outbox worker (if any) and close its outbox store (if opened)."""
    found: OutboxServices | None = app.extensions.get(EXTENSION)
    if found is not None:
        found.stop()
