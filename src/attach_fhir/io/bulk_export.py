"""One Bulk Data ``$export`` scoring run: kick-off, poll, stream each NDJSON file, score, and
write the missing score Observations in bounded transactions; resumable through ExportStore."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from attach_fhir.audit_events import AUDIT_STEP
from attach_fhir.bulk_export import (
    DEFAULT_RETRY,
    DEFAULT_TYPES,
    MAX_RETRY,
    BulkExportError,
    ExportFile,
    ExportTally,
    ExportTimedOut,
    Level,
    Manifest,
    ResponseScorer,
    final_codes,
    kickoff_params,
    kickoff_path,
    ndjson_lines,
    parse_line,
    parse_manifest,
    retry_after,
    score_codes,
)
from attach_fhir.capabilities import ServerCapabilities
from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import (
    FhirError,
    FhirNotFound,
    FhirRateLimited,
    FhirServerError,
    FhirTransportError,
    FhirUnauthorized,
)
from attach_fhir.io.bulk_scoring import missing_bundle, response_context
from attach_fhir.io.export_store import ExportStore
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Mode, deliver, payload

log = logging.getLogger(__name__)
TokenSource = Callable[[str | None], str | None]


@dataclass(frozen=True)
class ExportRequest:
    """What to export: the level (system, all patients, one Group), types and ``_since``."""

    iss: str
    level: Level = "system"
    group: str | None = None
    types: tuple[str, ...] = DEFAULT_TYPES
    since: str | None = None

    def key(self) -> str:
        """The request's key in the store: the same request resumes the same job."""
        return json.dumps(
            [self.iss.rstrip("/"), self.level, self.group, list(self.types), self.since]
        )


@dataclass
class ExportOptions:
    """How the run behaves: writing, batch size, polling timeout, the clock (injected)."""

    write: bool = False
    batch_entries: int = 100
    checkpoint_every: int = 5000
    poll_timeout: float = 3600.0
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: Called with (phase, done, total): "progress" (the server's X-Progress), a file type...
    progress: Callable[[str, int, int | None], None] | None = None


@dataclass
class _Pending:
    qr_ids: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)


class BulkExportRun:
    """One ``bulk-score --export`` run against one server."""

    def __init__(
        self,
        client: FhirClient,
        http: httpx.Client,
        store: ExportStore,
        request: ExportRequest,
        options: ExportOptions | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        self.client = client
        self.http = http
        self.store = store
        self.request = request
        self.options = options or ExportOptions()
        self.token_source = token_source
        self.key = request.key()
        self.tally = ExportTally()
        self.notes: list[str] = []
        self.scorer = ResponseScorer()
        self.existing: dict[str, dict[str, str]] = {}
        self._mode: Mode = "transaction"
        self._provenance = True
        self._write = self.options.write

    # -- the job --------------------------------------------------------------------------------

    def run(self) -> ExportTally:
        """Kick off (or resume) the export, download, score and write; the tally."""
        if self._write:
            self._plan_writes()
        saved = self.store.job(self.key)
        if saved is None:
            status_url = self.kickoff()
        else:
            status_url = saved.status_url
            self.tally.add(saved.counts)
            self.notes.append("resumed an export started earlier")
        raw = saved.manifest if saved is not None else None
        if raw is None:
            raw = self.wait(status_url)
            self.store.completed(self.key, raw)
        manifest = parse_manifest(raw)
        self.download(manifest)
        self.store.forget(self.key)
        return self.tally

    def kickoff(self) -> str:
        """Start the export; the status URL (kept in the store before anything else)."""
        response = self.client.request(
            "GET",
            kickoff_path(self.request.level, self.request.group),
            params=kickoff_params(self.request.types, self.request.since),
            headers={"Prefer": "respond-async"},
        )
        location = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise BulkExportError(
                "The server did not accept the export (no 202 with a status URL)."
            )
        status_url = self.client.url(location)
        self.store.started(self.key, status_url)
        log.info("bulk export started level=%s", self.request.level)
        return status_url

    def wait(self, status_url: str) -> dict[str, Any]:
        """Poll the status URL, honouring Retry-After, until complete; the manifest JSON."""
        options = self.options
        deadline = options.monotonic() + options.poll_timeout
        while True:
            try:
                response = self.client.request("GET", status_url, extensions=_step("bulk-status"))
            except FhirNotFound:
                self.store.forget(self.key)
                raise BulkExportError(
                    "The server no longer knows this export; run again to start a new one."
                ) from None
            except (FhirRateLimited, FhirServerError, FhirTransportError) as exc:
                transient = not isinstance(exc, FhirServerError) or exc.retry_after is not None
                if not transient:
                    # A 5xx without Retry-After: the export failed; the next run starts anew.
                    self.store.forget(self.key)
                    raise BulkExportError(f"The export failed on the server ({exc.code}).") from exc
                pause = min(max(exc.retry_after or DEFAULT_RETRY, 1.0), MAX_RETRY)
                if options.monotonic() + pause > deadline:
                    raise ExportTimedOut() from exc
                options.sleep(pause)
                continue
            if response.status_code == 200:
                document = response.json()
                parse_manifest(document)
                return dict(document)
            if response.status_code != 202:
                raise BulkExportError(f"The export status answered {response.status_code}.")
            if options.progress is not None:
                options.progress(response.headers.get("X-Progress", "in progress")[:80], 0, None)
            pause = retry_after(response.headers.get("Retry-After"), options.now())
            if options.monotonic() + pause > deadline:
                raise ExportTimedOut()
            options.sleep(pause)

    def cancel(self) -> bool:
        """DELETE the saved job on the server and forget it; False when there is none."""
        saved = self.store.job(self.key)
        if saved is None:
            return False
        try:
            self.client.request("DELETE", saved.status_url, extensions=_step("bulk-cancel"))
        except FhirNotFound:
            pass
        self.store.forget(self.key)
        return True

    # -- files ----------------------------------------------------------------------------------

    def download(self, manifest: Manifest) -> None:
        """Every output file (Observations first), then the error files, each streamed."""
        for file in manifest.ordered_output():
            if file.type == "Observation":
                self._observations(file, manifest)
            elif file.type == "QuestionnaireResponse":
                self._responses(file, manifest)
        for file in manifest.error:
            _, finished = self.store.lines_done(self.key, file.url)
            if finished:
                continue
            count = sum(1 for _ in self.lines(file, manifest))
            self.tally.error_lines += count
            self.store.checkpoint(self.key, file.url, count, self.tally.counts(), done=True)

    def lines(self, file: ExportFile, manifest: Manifest, skip: int = 0) -> Iterator[bytes]:
        """The lines of one file, streamed (token when required); the first ``skip`` dropped."""
        token = self._file_token(file, manifest)
        for attempt in (0, 1):
            headers = {"Accept": "application/fhir+ndjson"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            step = _step("bulk-file", file.type)  # one audit record per download, not per line
            with self.http.stream("GET", file.url, headers=headers, extensions=step) as response:
                if response.status_code == 401 and attempt == 0 and token and self.token_source:
                    token = self.token_source(token)
                    continue
                if response.status_code in (404, 410):
                    self.store.forget(self.key)
                    raise BulkExportError(
                        "An export file is gone (expired?); run again to start a new export."
                    )
                if response.status_code != 200:
                    raise BulkExportError(f"An export file answered {response.status_code}.")
                for n, line in enumerate(ndjson_lines(response.iter_bytes())):
                    if n >= skip:
                        yield line
                return

    def _file_token(self, file: ExportFile, manifest: Manifest) -> str | None:
        if not manifest.requires_access_token or self.token_source is None:
            return None
        if not self.client.is_within_base(file.url):
            # The token is for the FHIR server: never hand it to another host.
            raise BulkExportError("An export file that needs the token lies outside the server.")
        return self.token_source(None)

    def _observations(self, file: ExportFile, manifest: Manifest) -> None:
        for line in self.lines(file, manifest):
            obs = parse_line(line)
            if obs is None or obs.get("resourceType") != "Observation":
                continue
            qr_id, codes = score_codes(obs)
            if qr_id is not None:
                known = self.existing.setdefault(qr_id, {})
                for code in codes:
                    known[code] = f"Observation/{obs.get('id')}"

    def _responses(self, file: ExportFile, manifest: Manifest) -> None:
        done, finished = self.store.lines_done(self.key, file.url)
        if finished:
            return
        progress = self.options.progress
        pending = _Pending()
        n = done
        for line in self.lines(file, manifest, skip=done):
            n += 1
            self._line(line, n, file, pending)
            if len(pending.entries) >= self.options.batch_entries or (
                n % self.options.checkpoint_every == 0
            ):
                self._flush(pending)
                self.store.checkpoint(self.key, file.url, n, self.tally.counts())
                if progress is not None:
                    progress(file.type, n, file.count)
        self._flush(pending)
        self.store.checkpoint(self.key, file.url, n, self.tally.counts(), done=True)
        if progress is not None:
            progress(file.type, n, file.count)

    def _line(self, line: bytes, n: int, file: ExportFile, pending: _Pending) -> None:
        tally = self.tally
        qr = parse_line(line)
        if qr is None:
            tally.malformed(file.type, n)
            return
        if qr["resourceType"] != "QuestionnaireResponse":
            tally.skipped += 1
            return
        tally.exported += 1
        scored = self.scorer.score(qr, tally)
        if scored is None:
            return
        questionnaire, result = scored
        qr_id = str(qr.get("id") or "")
        existing = self.existing.get(qr_id, {})
        if all(code in existing for code in final_codes(result)):
            tally.already_scored += 1
            return
        if not self._write:
            return
        ctx = response_context(qr, self._provenance)
        if ctx is None or not qr_id:
            tally.invalid += 1
            tally.problem(qr_id, "no-subject-or-date")
            return
        try:
            bundle = missing_bundle(qr, questionnaire, result, ctx, existing)
        except AttachError as exc:
            tally.invalid += 1
            tally.problem(qr_id, exc.code)
            return
        if pending.entries and len(pending.entries) + len(bundle["entry"]) > (
            self.options.batch_entries
        ):
            self._flush(pending)
        pending.qr_ids.append(qr_id)
        pending.sizes.append(len(bundle["entry"]))
        pending.entries.extend(bundle["entry"])

    # -- writes ---------------------------------------------------------------------------------

    def _plan_writes(self) -> None:
        caps = ServerCapabilities.from_statement(self.client.base_url, self.client.capabilities())
        if not caps.can_create("Observation"):
            self._write = False
            self.notes.append("Observation not writable on this server: nothing written")
            return
        self._mode = "transaction" if caps.transaction else "ordered-creates"
        self._provenance = caps.writes_provenance
        if self._mode == "ordered-creates":
            self.notes.append("no transaction: ordered conditional creates")

    def _flush(self, pending: _Pending) -> None:
        if not pending.entries:
            return
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": pending.entries}
        try:
            answers = self._send(bundle)
        except FhirUnauthorized:
            raise
        except FhirError as exc:
            # One response the server refuses must not sink its batch: each on its own.
            log.info("bulk batch refused (%s): writing one response at a time", exc.code)
            answers = self._one_by_one(pending)
        self.tally.written += len(set(pending.qr_ids))
        self.tally.observations_written += answers
        pending.qr_ids.clear()
        pending.sizes.clear()
        pending.entries.clear()

    def _send(self, bundle: Mapping[str, Any]) -> int:
        receipt = deliver(self.client, payload(bundle, self._mode))
        return sum(1 for ref in receipt.values() if ref.startswith("Observation/"))

    def _one_by_one(self, pending: _Pending) -> int:
        written = 0
        start = 0
        for qr_id, size in list(zip(pending.qr_ids, pending.sizes, strict=True)):
            entries = pending.entries[start : start + size]
            start += size
            try:
                written += self._send(
                    {"resourceType": "Bundle", "type": "transaction", "entry": entries}
                )
            except FhirUnauthorized:
                raise
            except FhirError as exc:
                self.tally.problem(qr_id, exc.code)
                pending.qr_ids.remove(qr_id)
        return written


def _step(event: str, resource: str | None = None) -> dict[str, Any]:
    """The request extension naming a Bulk Data step for the audit trail (where there is one)."""
    return {AUDIT_STEP: (event, resource)}
