"""Bulk Data $export, the pure parts: kick-off requests, the manifest, Retry-After, NDJSON lines,
scoring one exported response, and the run's tally. No sockets, no disk (those are in io/)."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.errors import AttachError
from attach_fhir.instruments import UnknownInstrument, library
from attach_fhir.response_check import InvalidResponse
from attach_fhir.scoring import FINAL, Scorer, ScoreResult

Json = dict[str, Any]
Level = Literal["system", "patient", "group"]
#: The types an export asks for by default: the responses, and the Observations already written.
DEFAULT_TYPES = ("QuestionnaireResponse", "Observation")
#: Wait this long when the server gives no (or an unreadable) Retry-After.
DEFAULT_RETRY = 5.0
#: Never wait longer than this between two status requests, whatever Retry-After says.
MAX_RETRY = 120.0


class BulkExportError(AttachError):
    """The server's export could not be started, followed or read."""

    code = "bulk_export_failed"
    description = "The bulk export failed."
    status_code = 502


class BadManifest(BulkExportError):
    """The completed export's manifest is not one the app can read."""

    code = "bulk_manifest_invalid"
    description = "The export manifest is not valid."


class ExportTimedOut(BulkExportError):
    """The export did not complete within the time allowed; the job is kept, to resume."""

    code = "bulk_export_timeout"
    description = "The export did not complete in time; run again to resume it."
    status_code = 504


def kickoff_path(level: Level, group: str | None = None) -> str:
    """The path, under the FHIR base, of the ``$export`` kick-off for ``level``."""
    if level == "system":
        return "$export"
    if level == "patient":
        return "Patient/$export"
    if not group or "/" in group:
        raise BulkExportError("A Group export needs one Group id.")
    return f"Group/{group}/$export"


def kickoff_params(types: Iterable[str], since: str | None) -> list[tuple[str, str]]:
    """The kick-off query: ``_outputFormat``, ``_type`` (comma-joined) and ``_since``."""
    params = [("_outputFormat", "application/fhir+ndjson")]
    wanted = ",".join(dict.fromkeys(t for t in types if t))
    if wanted:
        params.append(("_type", wanted))
    if since:
        params.append(("_since", since))
    return params


def since_instant(text: str) -> str:
    """``_since`` is a FHIR instant: a bare date means its start in UTC."""
    return f"{text}T00:00:00Z" if len(text) == 10 else text


@dataclass(frozen=True)
class ExportFile:
    """One file of a manifest: its resource type and URL."""

    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A completed export's manifest (Bulk Data 2.0 ``complete status`` body)."""

    transaction_time: str
    requires_access_token: bool
    output: tuple[ExportFile, ...]
    error: tuple[ExportFile, ...]

    def ordered_output(self) -> list[ExportFile]:
        """Observations first (they tell which responses are already scored), then the rest."""
        return sorted(self.output, key=lambda f: f.type != "Observation")


def _files(value: object, key: str) -> tuple[ExportFile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadManifest(f"The manifest's {key} is not a list.")
    files = []
    for i, entry in enumerate(value):
        url = entry.get("url") if isinstance(entry, dict) else None
        kind = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadManifest(f"The manifest's {key}[{i}].url is not an absolute URL.")
        count = entry.get("count")
        files.append(
            ExportFile(
                kind if isinstance(kind, str) else "",
                url,
                count if isinstance(count, int) and not isinstance(count, bool) else None,
            )
        )
    return tuple(files)


def parse_manifest(document: object) -> Manifest:
    """The manifest from the completed status response's JSON (raises BadManifest)."""
    if not isinstance(document, dict):
        raise BadManifest("The manifest is not a JSON object.")
    when = document.get("transactionTime")
    if not isinstance(when, str) or not when:
        raise BadManifest("The manifest has no transactionTime.")
    requires = document.get("requiresAccessToken")
    if not isinstance(requires, bool):
        raise BadManifest("The manifest's requiresAccessToken is not true or false.")
    return Manifest(
        when,
        requires,
        _files(document.get("output"), "output"),
        _files(document.get("error"), "error"),
    )


def retry_after(header: str | None, now: dt.datetime) -> float:
    """Seconds to wait from a ``Retry-After`` (seconds or an HTTP date), within [1, MAX_RETRY]."""
    if not header:
        return DEFAULT_RETRY
    text = header.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return DEFAULT_RETRY
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 1.0), MAX_RETRY)


def ndjson_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank lines of an NDJSON byte stream, whatever the chunking (CRLF allowed)."""
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line and not line.isspace():  # isspace copies nothing; strip would
                yield line
    if rest and not rest.isspace():
        yield rest


def parse_line(line: bytes) -> Json | None:
    """One NDJSON line as a resource; None when it is not a JSON object with a resourceType."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value
    return None


@dataclass
class ExportTally:
    """What one export run found and did. Problems carry ids and codes only, never answers."""

    exported: int = 0
    scored: int = 0
    already_scored: int = 0
    written: int = 0
    observations_written: int = 0
    invalid: int = 0
    skipped: int = 0
    error_lines: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    #: The counters, in the order the summary prints them.
    COUNTS = (
        "exported",
        "scored",
        "already_scored",
        "written",
        "observations_written",
        "invalid",
        "skipped",
        "error_lines",
    )

    def problem(self, response_id: str, code: str, path: str | None = None) -> None:
        """Record one response that could not be read, scored or written (kept to 1,000)."""
        if len(self.problems) < 1000:
            self.problems.append(response_problem(response_id, code, path))

    def malformed(self, file_type: str, line: int) -> None:
        """Record one NDJSON line that is not a resource (by file type and line number)."""
        self.invalid += 1
        if len(self.problems) < 1000:
            self.problems.append({"file": file_type, "line": str(line), "code": "malformed-line"})

    def counts(self) -> dict[str, int]:
        """The counters by name."""
        return {name: int(getattr(self, name)) for name in self.COUNTS}

    def add(self, counts: Mapping[str, int]) -> None:
        """Add counters saved by an earlier, interrupted run."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + int(counts.get(name, 0)))

    def to_json(self) -> Json:
        """The tally as JSON-ready data."""
        return {**self.counts(), "problems": self.problems}


def response_problem(response_id: str, code: str, path: str | None = None) -> dict[str, str]:
    """One response's problem as a run reports it: the response, a code, and where if known."""
    entry = {"response": f"QuestionnaireResponse/{response_id}", "code": code}
    if path:
        entry["path"] = path
    return entry


def our_score_codes(observation: Mapping[str, Any]) -> list[str]:
    """The codes of our scores (``SCORES_SYSTEM``) an Observation carries."""
    return [
        str(c["code"])
        for c in (observation.get("code") or {}).get("coding") or []
        if c.get("system") == SCORES_SYSTEM and c.get("code")
    ]


def derived_response_ids(observation: Mapping[str, Any]) -> list[str]:
    """The ids of the QuestionnaireResponses an Observation is ``derivedFrom``, in order."""
    found = []
    for ref in observation.get("derivedFrom") or []:
        parts = str(ref.get("reference") or "").split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "QuestionnaireResponse":
            found.append(parts[-1])
    return found


def score_codes(observation: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the id of the response it derives from, our score codes) of one Observation."""
    codes = our_score_codes(observation)
    responses = derived_response_ids(observation) if codes else []
    return (responses[0], codes) if responses else (None, [])


class ResponseScorer:
    """Scores exported responses: one compiled Scorer per canonical, unknown ones remembered."""

    def __init__(self) -> None:
        self._scorers: dict[str, tuple[Json, Scorer] | None] = {}

    def questionnaire(self, canonical: str) -> tuple[Json, Scorer] | None:
        """The Questionnaire and its Scorer for a canonical; None when it is not ours."""
        try:
            return self._scorers[canonical]
        except KeyError:
            pass
        try:
            questionnaire = library().questionnaire(canonical)
            found: tuple[Json, Scorer] | None = (questionnaire, Scorer(questionnaire))
        except UnknownInstrument:
            found = None
        self._scorers[canonical] = found
        return found

    def score(self, qr: Mapping[str, Any], tally: ExportTally) -> tuple[Json, ScoreResult] | None:
        """Score one exported response into ``tally``; (Questionnaire, result) when it scored."""
        canonical = qr.get("questionnaire")
        known = self.questionnaire(canonical) if isinstance(canonical, str) else None
        if known is None or qr.get("status") != "completed":
            tally.skipped += 1
            return None
        questionnaire, scorer = known
        qr_id = str(qr.get("id") or "")
        try:
            result = scorer.score(qr)
        except InvalidResponse as exc:
            tally.invalid += 1
            first = (exc.problems or [{"code": exc.code}])[0]
            tally.problem(qr_id, str(first.get("code")), first.get("path"))
            return None
        except AttachError as exc:
            tally.invalid += 1
            tally.problem(qr_id, exc.code)
            return None
        if not any(s.status == FINAL and s.value is not None for s in result.scores.values()):
            tally.invalid += 1
            tally.problem(qr_id, "not-scored")
            return None
        tally.scored += 1
        return questionnaire, result


def final_codes(result: ScoreResult) -> list[str]:
    """The codes of the final, valued scores of a result (the Observations it should have)."""
    return [c for c, s in result.scores.items() if s.status == FINAL and s.value is not None]
