"""Bulk scoring: score every completed QuestionnaireResponse for our instruments on one server.

For each packaged instrument the job searches ``QuestionnaireResponse?questionnaire=<url>&
status=completed`` (optionally ``authored=ge<since>``), scores each response with the library's
scorer, and looks up the score Observations already derived from it (``Observation?derived-from``).
With ``write`` it writes only the missing ones, built by the write-back builders with identifiers
derived from the response's id (so a rerun, or a crash mid-run, writes nothing twice) and sent as
one transaction per response (ordered conditional creates where the server has no transaction).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from attach_fhir.bulk_export import derived_response_ids, our_score_codes, response_problem
from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.capabilities import ServerCapabilities
from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirUnauthorized
from attach_fhir.instruments import library
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Mode, deliver, payload
from attach_fhir.response_check import InvalidResponse
from attach_fhir.scoring import FINAL, Scorer, ScoreResult
from attach_fhir.writeback import WritebackContext, build_transaction, resolve_references

Json = dict[str, Any]
#: Prefix of the submission id the identifiers of a bulk-scored response derive from.
SUBMISSION_PREFIX = "bulk-score/QuestionnaireResponse/"


@dataclass
class BulkReport:
    """What one bulk run found and did; problems carry ids and codes only (never answers)."""

    found: int = 0
    scored: int = 0
    already_scored: int = 0
    missing: int = 0
    written: int = 0
    observations_written: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, response_id: str, code: str, path: str | None = None) -> None:
        """Record one response that could not be scored or written."""
        self.problems.append(response_problem(response_id, code, path))

    def to_json(self) -> Json:
        """The report as JSON-ready data."""
        return {
            "found": self.found,
            "scored": self.scored,
            "already_scored": self.already_scored,
            "missing": self.missing,
            "written": self.written,
            "observations_written": self.observations_written,
            "problems": self.problems,
            "notes": self.notes,
        }


def submission_id(response_id: str) -> str:
    """The submission id a bulk-scored response's Observations derive their identifiers from."""
    return SUBMISSION_PREFIX + response_id


def existing_scores(observations: Iterable[Json]) -> dict[str, dict[str, str]]:
    """Response id -> {score code -> ``Observation/id``} from Observations derived from it."""
    found: dict[str, dict[str, str]] = {}
    for obs in observations:
        codes = our_score_codes(obs)
        for qr_id in derived_response_ids(obs):
            for code in codes:
                found.setdefault(qr_id, {})[code] = f"Observation/{obs.get('id')}"
    return found


def response_context(qr: Mapping[str, Any], include_provenance: bool) -> WritebackContext | None:
    """The write-back context of a response already on the server (its patient, author and
    date); None when it names no patient or no date."""
    patient = (qr.get("subject") or {}).get("reference")
    authored = qr.get("authored") or (qr.get("meta") or {}).get("lastUpdated")
    if not isinstance(patient, str) or not patient.startswith("Patient/") or not authored:
        return None
    author = (qr.get("author") or qr.get("source") or qr.get("subject") or {}).get("reference")
    return WritebackContext(
        submission_id=submission_id(str(qr["id"])),
        patient=patient,
        author=str(author),
        authored=str(authored),
        encounter=(qr.get("encounter") or {}).get("reference"),
        source=(qr.get("source") or {}).get("reference"),
        include_provenance=include_provenance,
    )


def missing_bundle(
    qr: Mapping[str, Any],
    questionnaire: Mapping[str, Any],
    result: ScoreResult,
    ctx: WritebackContext,
    existing: Mapping[str, str],
) -> Json:
    """The transaction writing the score Observations ``existing`` lacks (and a Provenance)."""
    bundle = build_transaction(qr, questionnaire, result, ctx)
    entries = bundle["entry"]
    resolved = {entries[0]["fullUrl"]: f"QuestionnaireResponse/{qr['id']}"}
    kept = []
    for entry in entries[1:]:
        resource = entry["resource"]
        code = _score_code(resource)
        if code is not None and code in existing:
            resolved[entry["fullUrl"]] = existing[code]
        else:
            kept.append(entry)
    for entry in kept:
        entry["resource"] = resolve_references(entry["resource"], resolved)
    return {"resourceType": "Bundle", "type": "transaction", "entry": copy.deepcopy(kept)}


def _score_code(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") != "Observation":
        return None
    for coding in (resource.get("code") or {}).get("coding") or []:
        if coding.get("system") == SCORES_SYSTEM:
            return str(coding.get("code"))
    return None


class BulkScoring:
    """One bulk run against one server (the client carries the system token)."""

    def __init__(
        self,
        client: FhirClient,
        *,
        write: bool = False,
        since: str | None = None,
        page_size: int = 100,
        progress: Callable[[BulkReport], None] | None = None,
    ) -> None:
        self.client = client
        self.write = write
        self.since = since
        self.page_size = page_size
        self.progress = progress
        self.report = BulkReport()
        self._scorers: dict[str, Scorer] = {}
        self._mode: Mode = "transaction"
        self._provenance = True

    def run(self) -> BulkReport:
        """Search, score and (with ``write``) write the missing Observations; the report."""
        if self.write:
            self._plan_writes()
        for instrument in library().instruments():
            params: list[tuple[str, str]] = [
                ("questionnaire", instrument.url),
                ("status", "completed"),
                ("_count", str(self.page_size)),
            ]
            if self.since:
                params.append(("authored", f"ge{self.since}"))
            for page in self.client.search_pages("QuestionnaireResponse", params):
                responses = [
                    e["resource"]
                    for e in page.get("entry") or []
                    if (e.get("search") or {}).get("mode", "match") == "match"
                    and (e.get("resource") or {}).get("resourceType") == "QuestionnaireResponse"
                ]
                self._page(responses)
                if self.progress is not None:
                    self.progress(self.report)
        return self.report

    def _plan_writes(self) -> None:
        caps = ServerCapabilities.from_statement(self.client.base_url, self.client.capabilities())
        if not caps.can_create("Observation"):
            self.write = False
            self.report.notes.append("Observation not writable on this server: nothing written")
            return
        self._mode = "transaction" if caps.transaction else "ordered-creates"
        self._provenance = caps.writes_provenance
        if self._mode == "ordered-creates":
            self.report.notes.append("no transaction: ordered conditional creates")

    def _page(self, responses: list[Json]) -> None:
        if not responses:
            return
        refs = ",".join(f"QuestionnaireResponse/{qr['id']}" for qr in responses)
        observations = self.client.search(
            "Observation", [("derived-from", refs), ("_count", str(self.page_size * 20))]
        )
        existing = existing_scores(observations)
        for qr in responses:
            self.report.found += 1
            self._one(qr, existing.get(str(qr["id"]), {}))

    def _one(self, qr: Json, existing: Mapping[str, str]) -> None:
        qr_id = str(qr["id"])
        canonical = str(qr.get("questionnaire") or "")
        try:
            questionnaire = library().questionnaire(canonical)
            scorer = self._scorers.get(canonical)
            if scorer is None:
                scorer = self._scorers[canonical] = Scorer(questionnaire)
            result = scorer.score(qr)
        except InvalidResponse as exc:
            for problem in exc.problems or [{"code": exc.code}]:
                self.report.problem(qr_id, str(problem.get("code")), problem.get("path"))
            return
        except AttachError as exc:
            self.report.problem(qr_id, exc.code)
            return
        codes = [c for c, s in result.scores.items() if s.status == FINAL and s.value is not None]
        if not codes:
            self.report.problem(qr_id, "not-scored")
            return
        self.report.scored += 1
        if all(code in existing for code in codes):
            self.report.already_scored += 1
            return
        self.report.missing += 1
        if self.write:
            self._write(qr, questionnaire, result, existing)

    def _write(
        self, qr: Json, questionnaire: Json, result: ScoreResult, existing: Mapping[str, str]
    ) -> None:
        qr_id = str(qr["id"])
        ctx = response_context(qr, self._provenance)
        if ctx is None:
            self.report.problem(qr_id, "no-subject-or-date")
            return
        try:
            bundle = missing_bundle(qr, questionnaire, result, ctx, existing)
            deliver(self.client, payload(bundle, self._mode))
        except FhirUnauthorized:
            raise
        except AttachError as exc:  # FhirError included: recorded, the run goes on
            self.report.problem(qr_id, exc.code)
            return
        self.report.written += 1
        self.report.observations_written += sum(
            1 for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
        )
