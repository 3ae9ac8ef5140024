"""Bulk Data $export's pure parts: the kick-off request, the manifest, Retry-After, NDJSON lines
split however the bytes arrive, and one exported response scored, skipped or found invalid."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from attach_fhir.bulk_export import (
    BadManifest,
    BulkExportError,
    ExportFile,
    ExportTally,
    ResponseScorer,
    kickoff_params,
    kickoff_path,
    ndjson_lines,
    parse_line,
    parse_manifest,
    retry_after,
    score_codes,
    since_instant,
)
from attach_fhir.canonical import SCORES_SYSTEM
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import from_answers

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
NOW = dt.datetime(2025, 3, 4, 12, 0, 0, tzinfo=dt.UTC)
ECR_R = EXAMPLES[0]  # all 7: anxiety 114/18, avoidance 54/18 (worked in scoring_examples)


def ecr_r_response(qr_id: str = "qr-1", status: str = "completed") -> dict[str, object]:
    questionnaire = json.loads((QUESTIONNAIRES / "ecr-r.json").read_text())
    response = from_answers(questionnaire, ECR_R.answers, status)
    response["id"] = qr_id
    return response


def test_kickoff_at_each_level() -> None:
    assert kickoff_path("system") == "$export"
    assert kickoff_path("patient") == "Patient/$export"
    assert kickoff_path("group", "g1") == "Group/g1/$export"
    with pytest.raises(BulkExportError):
        kickoff_path("group", None)
    with pytest.raises(BulkExportError):
        kickoff_path("group", "../Patient")


def test_kickoff_params_join_types_once_and_carry_since() -> None:
    params = kickoff_params(["QuestionnaireResponse", "Observation", "Observation"], "2024-01-01")
    assert params == [
        ("_outputFormat", "application/fhir+ndjson"),
        ("_type", "QuestionnaireResponse,Observation"),
        ("_since", "2024-01-01"),
    ]
    assert kickoff_params([], None) == [("_outputFormat", "application/fhir+ndjson")]


def test_since_is_an_instant() -> None:
    assert since_instant("2024-01-01") == "2024-01-01T00:00:00Z"
    assert since_instant("2024-01-01T08:00:00+02:00") == "2024-01-01T08:00:00+02:00"


def test_a_manifest_is_read_and_observations_come_first() -> None:
    manifest = parse_manifest(
        {
            "transactionTime": "2025-03-04T12:00:00Z",
            "requiresAccessToken": True,
            "output": [
                {"type": "QuestionnaireResponse", "url": "https://ehr/f/1.ndjson", "count": 3},
                {"type": "Observation", "url": "https://ehr/f/2.ndjson"},
            ],
            "error": [{"type": "OperationOutcome", "url": "https://ehr/f/e.ndjson"}],
        }
    )
    assert manifest.requires_access_token is True
    assert manifest.ordered_output() == [
        ExportFile("Observation", "https://ehr/f/2.ndjson"),
        ExportFile("QuestionnaireResponse", "https://ehr/f/1.ndjson", 3),
    ]
    assert manifest.error == (ExportFile("OperationOutcome", "https://ehr/f/e.ndjson"),)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"requiresAccessToken": True, "output": []},
        {"transactionTime": "t", "requiresAccessToken": "yes", "output": []},
        {"transactionTime": "t", "requiresAccessToken": False, "output": [{"url": "/rel"}]},
        {"transactionTime": "t", "requiresAccessToken": False, "output": {"url": "x"}},
    ],
)
def test_a_manifest_the_app_cannot_read_is_refused(document: object) -> None:
    with pytest.raises(BadManifest):
        parse_manifest(document)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 1.0),  # never hammer the server
        ("86400", 120.0),  # never sleep past the cap
        ("Tue, 04 Mar 2025 12:00:30 GMT", 30.0),  # an HTTP date, 30 s after NOW
        ("Tue, 04 Mar 2025 11:00:00 GMT", 1.0),  # a date already past
        ("soon", 5.0),
        (None, 5.0),
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after(header, NOW) == seconds


def test_lines_are_whole_whatever_the_chunks() -> None:
    chunks = [b'{"a":', b'1}\n{"b"', b":2}\r\n\n", b"  \n", b'{"c":3}']
    assert [line.strip() for line in ndjson_lines(chunks)] == [
        b'{"a":1}',
        b'{"b":2}',
        b'{"c":3}',
    ]


def test_a_malformed_line_is_none() -> None:
    assert parse_line(b'{"resourceType":"Patient","id":"p"}') == {
        "resourceType": "Patient",
        "id": "p",
    }
    assert parse_line(b'{"resourceType":') is None
    assert parse_line(b"[1, 2]") is None
    assert parse_line(b'{"id": "no type"}') is None


def test_score_codes_of_an_observation() -> None:
    obs = {
        "code": {"coding": [{"system": SCORES_SYSTEM, "code": "ecr-r-anxiety"}]},
        "derivedFrom": [{"reference": "https://ehr/fhir/QuestionnaireResponse/q9/_history/2"}],
    }
    assert score_codes(obs) == ("q9", ["ecr-r-anxiety"])
    assert score_codes({"code": {"coding": [{"system": "http://loinc.org", "code": "1"}]}}) == (
        None,
        [],
    )


def test_an_exported_response_is_scored_skipped_or_invalid() -> None:
    scorer = ResponseScorer()
    tally = ExportTally()
    scored = scorer.score(ecr_r_response(), tally)
    assert scored is not None
    scores = scored[1].scores
    assert scores["ecr-r-anxiety"].value == pytest.approx(114 / 18)
    assert scores["ecr-r-avoidance"].value == pytest.approx(54 / 18)
    other = {**ecr_r_response("qr-2"), "questionnaire": "http://example.org/Questionnaire/phq-9"}
    assert scorer.score(other, tally) is None
    assert scorer.score(ecr_r_response("qr-3", "in-progress"), tally) is None
    broken = ecr_r_response("qr-4")
    broken["item"] = [*broken["item"], {"linkId": "nope", "answer": [{"valueInteger": 1}]}]  # type: ignore[list-item]
    assert scorer.score(broken, tally) is None
    assert (tally.scored, tally.skipped, tally.invalid) == (1, 2, 1)
    assert tally.problems == [
        {
            "response": "QuestionnaireResponse/qr-4",
            "code": "unknown-link-id",
            "path": "QuestionnaireResponse.item[36]",
        }
    ]


def test_a_tally_resumes_from_saved_counts() -> None:
    tally = ExportTally(exported=2, written=1)
    tally.add({"exported": 3, "written": 2, "invalid": 1})
    assert (tally.exported, tally.written, tally.invalid) == (5, 3, 1)
    tally.malformed("QuestionnaireResponse", 7)
    assert tally.invalid == 2
    assert tally.problems == [
        {"file": "QuestionnaireResponse", "line": "7", "code": "malformed-line"}
    ]
