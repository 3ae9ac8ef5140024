"""The durable outbox: every submission is stored first, then delivered in order, once.

``Outbox.submit`` stores a submission and tries to deliver it at once; whatever cannot be
delivered now (server down, timeout, 5xx, 429, no token at hand) stays ``queued`` and a worker
(``Outbox.drain`` / ``Outbox.run``, or ``attach-fhir outbox drain``) retries it with capped
exponential backoff with full jitter, honouring Retry-After. A 4xx answer is final: the item becomes
``failed-permanent`` with the server's OperationOutcome for the user, and is never retried as
something else. Delivery is idempotent (conditional creates on client-generated identifiers), so
an item delivered twice after a crash or a lost answer still writes each resource once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from attach_fhir.fhir_errors import FhirError, FhirUnauthorized
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox_store import (
    DELIVERED,
    FAILED,
    OutboxConfigError,
    OutboxItem,
    SqlOutboxStore,
)
from attach_fhir.io.sql_store import StoreUnavailable
from attach_fhir.writeback import ordered_creates, resolve_references

log = logging.getLogger(__name__)

#: Gives the client for a target (backend-services token or the user's session), or ``None``
#: when no credentials are at hand right now (the item waits). A target is the FHIR base URL,
#: optionally followed by ``#<who>``: whose session delivers it (the web app queues each user's
#: submissions so); a factory with credentials of its own (backend services, an open server)
#: delivers to the base (:func:`target_base`) whatever follows.
ClientFactory = Callable[[str], FhirClient | None]
Mode = Literal["transaction", "ordered-creates"]


def target_base(target: str) -> str:
    """The FHIR base URL of an outbox target (``https://ehr/fhir#cred=...`` -> ``https://ehr/fhir``;
    a base URL never has a fragment)."""
    return target.partition("#")[0].rstrip("/")


def payload(bundle: Mapping[str, Any], mode: Mode) -> dict[str, Any]:
    """What the outbox stores for one submission: the transaction Bundle and how to send it."""
    if mode not in ("transaction", "ordered-creates"):
        raise ValueError(f"unknown delivery mode {mode!r}")
    return {"mode": mode, "bundle": dict(bundle)}


def _local_reference(location: str) -> str:
    """``[base/]Type/id[/_history/v]`` -> ``Type/id``."""
    parts = urlsplit(location).path.split("/_history/")[0].strip("/").split("/")
    return "/".join(parts[-2:])


def conditional_update(client: FhirClient, url: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT Type?search``: update the one match (a draft completed in place) or create."""
    path, _, query = url.partition("?")
    response = client.request("PUT", path, params=parse_qsl(query), json=resource)
    if response.content:
        written: dict[str, Any] = response.json()
        return written
    location = response.headers.get("Location") or ""
    return {"id": _local_reference(location).rpartition("/")[2]} if location else {}


def deliver(client: FhirClient, item_payload: Mapping[str, Any]) -> dict[str, str]:
    """Write one payload; return the receipt (bundle fullUrl -> ``Type/id``). Raises FhirError."""
    bundle = item_payload["bundle"]
    receipt: dict[str, str] = {}
    if item_payload["mode"] == "transaction":
        response = client.transaction(bundle)
        answers = response.get("entry") or []
        requests = bundle.get("entry") or []
        if len(answers) != len(requests):
            raise FhirError("The FHIR server's transaction response does not match the request.")
        for sent, answer in zip(requests, answers, strict=True):
            result = answer.get("response") or {}
            if not str(result.get("status", "")).startswith("2"):
                raise FhirError("The FHIR server did not write every resource of the transaction.")
            location = result.get("location") or ""
            resource = answer.get("resource") or {}
            if not location and resource.get("id"):
                location = f"{resource['resourceType']}/{resource['id']}"
            receipt[sent["fullUrl"]] = _local_reference(location)
        return receipt
    for step in ordered_creates(bundle):
        resource = resolve_references(step["resource"], receipt)
        if "conditionalUrl" in step:
            written = conditional_update(client, step["conditionalUrl"], resource)
        else:
            written = client.create(resource, if_none_exist=step["ifNoneExist"])
        if not written.get("id"):
            raise FhirError("The FHIR server did not say which resource it wrote.")
        receipt[step["fullUrl"]] = f"{resource['resourceType']}/{written['id']}"
    return receipt


#: Seconds a claim holds an item (``ATTACH_OUTBOX_LEASE_SECONDS``): a killed worker's claim
#: waits this long before another worker delivers the item again.
DEFAULT_LEASE = 120.0
LEASE_SETTING = "ATTACH_OUTBOX_LEASE_SECONDS"


def lease_seconds(value: object) -> float:
    """The lease setting as seconds (default when unset); OutboxConfigError names the setting
    unless it is a number above 0 (a lease of 0 would let every worker claim every item)."""
    if value is None or value == "":
        return DEFAULT_LEASE
    try:
        seconds = float(value) if isinstance(value, str | int | float) else float("nan")
    except ValueError:
        seconds = float("nan")
    if isinstance(value, bool) or not 0 < seconds < float("inf"):
        raise OutboxConfigError(f"{LEASE_SETTING} must be a number of seconds above 0.")
    return seconds


#: Past this many doublings the ceiling is the cap anyway; a larger power would overflow a float.
MAX_DOUBLINGS = 62


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter; a server's Retry-After wins (up to its cap)."""

    base: float = 5.0
    cap: float = 600.0
    retry_after_cap: float = 3600.0
    #: A uniform draw in [0, 1): injectable so that tests know every wait.
    draw: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def ceiling(self, attempts: int) -> float:
        """The longest wait after the ``attempts``-th failed attempt: min(cap, base * 2^(n-1))."""
        return float(min(self.cap, self.base * 2 ** min(MAX_DOUBLINGS, max(0, attempts - 1))))

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        if retry_after is not None:
            return min(self.retry_after_cap, max(0.0, retry_after))
        # Full jitter (uniform below the ceiling): every client that failed in the same EHR
        # outage would otherwise come back at the same instant, and again at each doubling.
        return self.draw() * self.ceiling(attempts)


@dataclass
class DrainReport:
    """What one drain did, by submission id."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Progress(Protocol):
    """Told about each attempt (the CLI prints it on stderr); never given payload data."""

    def __call__(self, item: OutboxItem, outcome: str, detail: str) -> None:
        """One attempt finished: outcome is delivered, retrying or failed-permanent."""


class StuckWatch:
    """Warns once per item that has waited longer than ``after`` seconds undelivered (until then
    only `attach-fhir outbox status` would show it)."""

    def __init__(self, after: float = 300.0) -> None:
        self.after = after
        self._warned: set[str] = set()

    def check(self, store: SqlOutboxStore, now: float) -> list[OutboxItem]:
        """Log a warning for each item newly past ``after``; returns those items."""
        stuck = [
            item
            for item in store.pending_since(now - self.after)
            if item.submission_id not in self._warned
        ]
        for item in stuck:
            self._warned.add(item.submission_id)
            log.warning(
                "outbox.stuck submission=%s target=%s waiting=%ds attempts=%d last_error=%s",
                item.submission_id,
                urlsplit(item.target).netloc,
                now - item.created_at,
                item.attempts,
                item.last_error_code or "-",  # codes only: the text may quote data
            )
        return stuck


class Outbox:
    """Store-then-deliver, in order per target, once."""

    def __init__(
        self,
        store: SqlOutboxStore,
        clients: ClientFactory,
        *,
        backoff: Backoff | None = None,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clients = clients
        self.backoff = backoff or Backoff()
        self.lease = lease
        self.clock = clock
        #: Deliveries the store was down to record: submission id -> (claim, receipt, when).
        self._unrecorded: dict[str, tuple[OutboxItem, dict[str, str], float]] = {}
        self._guard = threading.Lock()

    def submit(self, submission_id: str, target: str, item_payload: dict[str, Any]) -> OutboxItem:
        """Store a submission, then try to deliver what is due for its target now.

        Returns the stored item: ``delivered`` (with its receipt), ``queued`` (saved, waiting to
        sync; ``last_error`` says why) or ``failed-permanent`` (show ``last_error``).
        """
        stored, claimed = self.store.enqueue_claimed(
            submission_id, target, item_payload, self.clock(), self.lease
        )
        if claimed:  # nothing older pending for the target: this one goes now
            self._attempt(stored)
        else:
            self.drain(target=target)
        item = self.store.get(submission_id)
        assert item is not None
        return item

    def drain(self, target: str | None = None, progress: Progress | None = None) -> DrainReport:
        """Deliver everything due (each item at most once per call), oldest first per target."""
        report = DrainReport(delivered=self._record_kept(target))
        tried: set[int] = set()
        while True:
            due = [i for i in self.store.due(self.clock(), target) if i.seq not in tried]
            if not due:
                return report
            for candidate in due:
                tried.add(candidate.seq)
                item = self.store.claim(candidate, self.clock(), self.lease)
                if item is not None:
                    outcome, detail = self._attempt(item)
                    getattr(report, outcome).append(item.submission_id)
                    if progress is not None:
                        progress(item, outcome.replace("failed", FAILED), detail)

    def next_due_in(self) -> float | None:
        """Seconds until the earliest queued item is due (0 if one is due now), None if none."""
        now = self.clock()
        pending = self.store.due(float("inf"))
        if not pending:
            return None
        return max(0.0, min(i.next_attempt_at for i in pending) - now)

    def run(self, stop: threading.Event, poll: float = 5.0) -> None:
        """Drain until ``stop`` is set, sleeping until the next item is due (at most ``poll``)."""
        while not stop.is_set():
            try:
                self.drain()
                wait = self.next_due_in()
            except Exception:  # keep the worker alive; the store or network may come back
                log.exception("outbox drain failed")
                wait = poll
            stop.wait(poll if wait is None else min(poll, max(wait, 0.05)))

    def _attempt(self, item: OutboxItem) -> tuple[str, str]:
        host = urlsplit(item.target).netloc
        sid = item.submission_id
        assert item.payload is not None
        try:
            client = self.clients(item.target)
            if client is None:
                return self._retry(item, "no_credentials", "No token for this server yet.", None)
            receipt = deliver(client, item.payload)
        except FhirUnauthorized as exc:
            # The data is fine; the credentials are not. Wait for a fresh token, do not fail.
            return self._retry(item, exc.log_text(), exc.user_text(), exc.retry_after)
        except FhirError as exc:
            if exc.retryable:
                return self._retry(item, exc.log_text(), exc.user_text(), exc.retry_after)
            self._fenced(
                item,
                self.store.mark_failed(
                    sid, exc.user_text(), exc.log_text(), self.clock(), item.fence
                ),
            )
            log.warning("outbox failed submission=%s target=%s %s", sid, host, exc.log_text())
            return "failed", exc.log_text()
        except (KeyError, TypeError, ValueError) as exc:
            # A malformed payload fails the same way every time: never retry it.
            code = f"invalid_payload {type(exc).__name__}"
            self._fenced(
                item,
                self.store.mark_failed(
                    sid, "The stored submission is malformed.", code, self.clock(), item.fence
                ),
            )
            log.error("outbox failed submission=%s target=%s %s", sid, host, code)
            return "failed", code
        except (httpx.HTTPError, OSError) as exc:
            return self._retry(
                item, type(exc).__name__, "The FHIR server could not be reached.", None
            )
        now = self.clock()
        try:
            self._fenced(item, self.store.mark_delivered(sid, receipt, now, item.fence))
        except StoreUnavailable:
            # Written to the EHR, not recorded: the next drain records it, so the item does not
            # wait out its lease to be delivered (and written, idempotently) again.
            with self._guard:
                self._unrecorded[sid] = (item, receipt, now)
            raise
        # The EHR answers again: what waits for it need not sit out back-offs earned while it
        # was down (the head of each queue held every item behind it).
        woken = self.store.wake(target_base(item.target), now)
        log.info(
            "outbox delivered submission=%s target=%s attempts=%d woken=%d",
            sid,
            host,
            item.attempts,
            woken,
        )
        return "delivered", f"{len(receipt)} resources"

    def _record_kept(self, target: str | None = None) -> list[str]:
        """Record the deliveries (of ``target``, or all) the store was down to record when they
        happened; returns the submission ids recorded (an item claimed again since is left to
        that claim). A drain of one target leaves the others' to the worker's drain, which runs
        their follow-ups."""
        with self._guard:
            kept = {
                sid: entry
                for sid, entry in self._unrecorded.items()
                if target is None or entry[0].target == target.rstrip("/")
            }
            for sid in kept:
                del self._unrecorded[sid]
        recorded: list[str] = []
        for sid, (item, receipt, at) in list(kept.items()):
            try:
                done = self.store.mark_delivered(sid, receipt, at, item.fence)
            except StoreUnavailable:
                with self._guard:
                    for key, value in kept.items():
                        self._unrecorded.setdefault(key, value)
                raise
            del kept[sid]
            self._fenced(item, done)
            if done:
                recorded.append(sid)
        return recorded

    @staticmethod
    def _fenced(item: OutboxItem, recorded: bool) -> None:
        """Log a result the store refused: this claim's lease ran out and another worker
        claimed the item since (it delivers again, idempotently, and records its own result)."""
        if not recorded:
            log.warning(
                "outbox.fenced submission=%s target=%s fence=%d",
                item.submission_id,
                urlsplit(item.target).netloc,
                item.fence,
            )

    def _retry(
        self, item: OutboxItem, code: str, text: str, retry_after: float | None
    ) -> tuple[str, str]:
        delay = self.backoff.delay(item.attempts, retry_after)
        now = self.clock()
        self._fenced(
            item,
            self.store.mark_retry(item.submission_id, now + delay, text, code, now, item.fence),
        )
        log.info(
            "outbox retry submission=%s target=%s attempts=%d in=%.0fs %s",
            item.submission_id,
            urlsplit(item.target).netloc,
            item.attempts,
            delay,
            code,
        )
        return "retrying", f"{code}; next attempt in {delay:.0f}s"


class OpenClients:
    """A ClientFactory for open servers (no token), e.g. the sandbox; closes its HTTP clients."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._clients: dict[str, FhirClient] = {}
        self._http: list[httpx.Client] = []

    def http_client(self, base_url: str) -> httpx.Client:
        """The HTTP client for one server (a subclass may audit its requests)."""
        return httpx.Client(timeout=self._timeout)

    def __call__(self, target: str) -> FhirClient | None:
        """A client for the target's base URL without authorization."""
        base_url = target_base(target)
        if base_url not in self._clients:
            http = self.http_client(base_url)
            self._http.append(http)
            self._clients[base_url] = FhirClient(base_url, http)
        return self._clients[base_url]

    def close(self) -> None:
        """Close every HTTP client opened."""
        for http in self._http:
            http.close()


__all__ = [
    "DEFAULT_LEASE",
    "DELIVERED",
    "FAILED",
    "LEASE_SETTING",
    "Backoff",
    "ClientFactory",
    "DrainReport",
    "Outbox",
    "deliver",
    "lease_seconds",
    "target_base",
]
