"""Per-launch memory of the FHIR reads every page repeats: the Patient, the CapabilityStatement
and Questionnaires, kept ``ATTACH_READ_CACHE_SECONDS`` (default 60).

One launch used to read ``Patient/<id>`` on nearly every page and search the same Questionnaire
on the form, the submit and the review. :class:`LaunchReads` is an httpx transport between a
launch's ``FhirClient`` and the app's shared transport: a successful GET of one of those kinds
is answered from memory while it is fresh, and any write this launch sends drops what that write
may have changed (the types it writes; a Bundle's entries' types) before and after it goes.

Entries are keyed by the launch's context id and the exact URL, and held in this process only:
- never shared between launches or users: another launch, even of the same patient, reads with
  its own token, so it sees only what its own grant allows (and the context id, bound to one
  browser's session, is checked before a launch's client exists);
- no PHI in the session store or on disk: the Patient is held in memory for seconds, not written
  beside the tokens;
- several app processes each keep their own copy: a process that did not make a write may show
  the launch's Patient or Questionnaire up to the TTL late, which is also what a change made in
  the EHR itself costs. The app never writes a Patient or a CapabilityStatement; a Questionnaire
  it files is created conditionally (``If-None-Exist``), so a stale "not there" only repeats an
  idempotent create.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from attach_fhir.fhir_url import is_fhir_id

#: What is kept: the first path segment under the base. Patient only as a read (``Patient/<id>``),
#: not a search (the picker's results must be fresh); Questionnaires as reads and searches.
KINDS = frozenset({"metadata", "Patient", "Questionnaire"})
#: Memory bound for the whole process; the oldest entries go first.
MAX_BYTES = 32 * 1024 * 1024
#: A body larger than this (a search that ignored its filter) is not kept.
MAX_ENTRY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    expires: float
    kind: str
    status: int
    content_type: str
    body: bytes


class ReadCache:
    """Responses per (launch, URL) for ``ttl`` seconds, at most ``MAX_BYTES`` (thread-safe)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        #: Bumped by every write (of any launch: one number, however many launches come and
        #: go), so a read that was in flight across a write is not kept.
        self._writes = 0

    def get(self, launch_id: str, url: str) -> _Entry | None:
        """The fresh entry for this launch and URL, if any."""
        with self._lock:
            entry = self._entries.get((launch_id, url))
            if entry is None or entry.expires <= self._clock():
                return None
            return entry

    def generation(self) -> int:
        """The write count before a read is sent, to hand back to :meth:`put`."""
        with self._lock:
            return self._writes

    def put(
        self, launch_id: str, url: str, kind: str, response: httpx.Response, generation: int
    ) -> None:
        """Keep a response unless a write was sent since ``generation`` was taken."""
        body = response.content
        if self.ttl <= 0 or len(body) > MAX_ENTRY_BYTES:
            return
        now = self._clock()
        entry = _Entry(
            now + self.ttl,
            kind,
            response.status_code,
            response.headers.get("Content-Type", ""),
            body,
        )
        with self._lock:
            if self._writes != generation:
                return
            self._drop((launch_id, url))
            self._entries[(launch_id, url)] = entry
            self._bytes += len(body)
            # Insertion order is expiry order (one TTL): expired entries and, over the bound,
            # the oldest ones leave from the front.
            while self._entries:
                key, first = next(iter(self._entries.items()))
                if first.expires > now and self._bytes <= MAX_BYTES:
                    break
                self._drop(key)

    def forget(self, launch_id: str, kinds: frozenset[str] | None) -> None:
        """Drop the launch's entries of ``kinds`` (all of them for None)."""
        with self._lock:
            self._writes += 1
            for key in [k for k, e in self._entries.items() if k[0] == launch_id]:
                if kinds is None or self._entries[key].kind in kinds:
                    self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)


class LaunchReads(httpx.BaseTransport):
    """One launch's view of the cache, over the app's shared transport."""

    def __init__(
        self, inner: httpx.BaseTransport, cache: ReadCache, launch_id: str, base_url: str
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._launch = launch_id
        self._base = base_url.rstrip("/")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a fresh kept read from memory; send everything else, forgetting what a
        write may change."""
        url = str(request.url)
        if request.method != "GET":
            if request.method == "HEAD" or self._is_search(url):
                return self._inner.handle_request(request)
            changed = self._written_kinds(url, request)
            self._cache.forget(self._launch, changed)
            try:
                return self._inner.handle_request(request)
            finally:
                # Again once the server has it: a read racing the write must not keep the old.
                self._cache.forget(self._launch, changed)
        kind = self._kind(url)
        if kind is None:
            return self._inner.handle_request(request)
        hit = self._cache.get(self._launch, url)
        if hit is not None:
            headers = {"Content-Type": hit.content_type} if hit.content_type else {}
            return httpx.Response(hit.status, headers=headers, content=hit.body)
        generation = self._cache.generation()
        response = self._inner.handle_request(request)
        if response.status_code == 200:
            response.read()
            self._cache.put(self._launch, url, kind, response, generation)
        return response

    def close(self) -> None:
        """The shared transport outlives each launch's client (its owner shuts it down)."""

    # -- what a URL is --------------------------------------------------------------------------

    def _segments(self, url: str) -> list[str] | None:
        """The path segments under the base, or None for a URL outside it."""
        base = urlsplit(self._base)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return None
        if parts.path != base.path and not parts.path.startswith(base.path + "/"):
            return None
        return [s for s in parts.path[len(base.path) :].split("/") if s]

    def _kind(self, url: str) -> str | None:
        """The kept kind this GET reads, or None when it is not kept."""
        segments = self._segments(url)
        if not segments or segments[0] not in KINDS:
            return None
        kind = segments[0]
        if kind == "metadata":
            return kind if len(segments) == 1 else None
        if kind == "Patient":  # reads only: a search (the picker) is always fresh
            return kind if len(segments) == 2 and is_fhir_id(segments[1]) else None
        if len(segments) == 1 or (len(segments) == 2 and is_fhir_id(segments[1])):
            return kind
        return None

    def _is_search(self, url: str) -> bool:
        """``POST [type]/_search``: a read, whatever its method."""
        segments = self._segments(url) or []
        return len(segments) == 2 and segments[1] == "_search"

    def _type_of(self, reference: str) -> str | None:
        """The resource type a relative or in-base absolute URL names; None when elsewhere."""
        if urlsplit(reference).scheme:
            segments = self._segments(reference)
            if segments is None:
                return None
            return segments[0] if segments else ""
        return urlsplit(reference).path.strip("/").split("/")[0]

    def _written_kinds(self, url: str, request: httpx.Request) -> frozenset[str] | None:
        """The kept kinds a write may change; None (all) when that cannot be told."""
        target = self._type_of(url)
        if target is None:
            return None
        if target:
            return frozenset({target}) & KINDS
        kinds: set[str | None] = set()
        try:  # a transaction or batch at the base: the types of its entries
            bundle = json.loads(request.content)
            for entry in bundle.get("entry") or []:
                kinds.add(str((entry.get("resource") or {}).get("resourceType") or ""))
                kinds.add(self._type_of(str((entry.get("request") or {}).get("url") or "")))
        except (ValueError, TypeError, AttributeError, httpx.RequestNotRead):
            return None
        if None in kinds:
            return None
        return frozenset(k for k in kinds if k) & KINDS
