"""What sekmet-fhir cannot be made to do, on a mock transport: malformed NDJSON lines and an
export's error file (counted, never fatal), a file needing the token on another host (refused,
the token never sent there), a file gone when a run resumes, a 202 with an HTTP-date
Retry-After, a busy status (503, 429) polled again, a failed one (500) ending the job."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from attach_fhir.bulk_export import BulkExportError
from attach_fhir.io.bulk_export import BulkExportRun, ExportOptions, ExportRequest
from attach_fhir.io.export_store import ExportStore
from attach_fhir.io.fhir_client import FhirClient
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import from_answers

BASE = "https://ehr.example/fhir"
QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
TOKEN = "token-1"


def ecr_r_line(qr_id: str) -> bytes:
    questionnaire = json.loads((QUESTIONNAIRES / "ecr-r.json").read_text())
    response = from_answers(questionnaire, EXAMPLES[0].answers)
    response.update(id=qr_id, subject={"reference": "Patient/p"}, authored="2024-05-01")
    return json.dumps(response).encode()


class Server:
    """A Bulk Data server on a mock transport: its requests are recorded."""

    def __init__(self, files: dict[str, bytes], requires_token: bool = True) -> None:
        self.files = files
        self.requires_token = requires_token
        self.seen: list[httpx.Request] = []
        self.polls = 0
        self.file_host = "ehr.example"
        #: Answers the status URL gives before its usual 202 then manifest.
        self.status_faults: list[httpx.Response] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/fhir/$export":
            return httpx.Response(202, headers={"Content-Location": f"{BASE}/status/9"})
        if path == "/fhir/status/9" and self.status_faults:
            return self.status_faults.pop(0)
        if path == "/fhir/status/9":
            self.polls += 1
            if self.polls == 1:
                date = "Tue, 04 Mar 2025 12:00:03 GMT"  # 3 s after the injected now
                return httpx.Response(202, headers={"Retry-After": date, "X-Progress": "50%"})
            host = f"https://{self.file_host}/fhir/files"
            return httpx.Response(
                200,
                json={
                    "transactionTime": "2025-03-04T12:00:00Z",
                    "requiresAccessToken": self.requires_token,
                    "output": [
                        {"type": "QuestionnaireResponse", "url": f"{host}/qr.ndjson"},
                    ],
                    "error": [{"type": "OperationOutcome", "url": f"{host}/errors.ndjson"}],
                },
            )
        name = path.rsplit("/", 1)[-1]
        if name in self.files:
            return httpx.Response(200, content=self.files[name])
        return httpx.Response(404)


def run_job(
    server: Server, folder: Path, sleeps: list[float] | None = None
) -> Callable[[], BulkExportRun]:
    http = httpx.Client(transport=httpx.MockTransport(server))
    client = FhirClient(BASE, http, token_source=lambda rejected: TOKEN)
    options = ExportOptions(
        now=lambda: dt.datetime(2025, 3, 4, 12, 0, 0, tzinfo=dt.UTC),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )
    store = ExportStore(folder)

    def make() -> BulkExportRun:
        request = ExportRequest(BASE, types=("QuestionnaireResponse",))
        return BulkExportRun(client, http, store, request, options, lambda rejected: TOKEN)

    return make


def test_malformed_lines_and_error_files_are_counted_never_fatal(tmp_path: Path) -> None:
    qr = b"\n".join(
        [
            ecr_r_line("a"),
            b'{"resourceType": "QuestionnaireRes',  # cut short
            b'{"resourceType": "Patient", "id": "p"}',  # not a response: skipped
            ecr_r_line("b"),
        ]
    )
    errors = b'{"resourceType":"OperationOutcome"}\n{"resourceType":"OperationOutcome"}\n'
    server = Server({"qr.ndjson": qr, "errors.ndjson": errors})
    sleeps: list[float] = []
    tally = run_job(server, tmp_path, sleeps)().run()
    assert (tally.exported, tally.scored, tally.skipped, tally.invalid) == (2, 2, 1, 1)
    assert tally.error_lines == 2
    assert tally.problems == [
        {"file": "QuestionnaireResponse", "line": "2", "code": "malformed-line"}
    ]
    assert sleeps == [3.0]  # the HTTP-date Retry-After
    files = [r for r in server.seen if "/files/" in r.url.path]
    assert [r.headers.get("Authorization") for r in files] == [f"Bearer {TOKEN}"] * 2


def test_the_token_never_goes_to_a_file_on_another_host(tmp_path: Path) -> None:
    server = Server({"qr.ndjson": ecr_r_line("a"), "errors.ndjson": b""})
    server.file_host = "files.elsewhere.example"
    with pytest.raises(BulkExportError, match="outside the server"):
        run_job(server, tmp_path)().run()
    assert not [r for r in server.seen if r.url.host == "files.elsewhere.example"]


def test_a_file_on_another_host_without_the_token_is_read(tmp_path: Path) -> None:
    server = Server({"qr.ndjson": ecr_r_line("a"), "errors.ndjson": b""}, requires_token=False)
    server.file_host = "files.elsewhere.example"
    tally = run_job(server, tmp_path)().run()
    assert tally.scored == 1
    files = [r for r in server.seen if r.url.host == "files.elsewhere.example"]
    assert files and all("Authorization" not in r.headers for r in files)


def test_a_file_gone_on_resume_forgets_the_job(tmp_path: Path) -> None:
    server = Server({"errors.ndjson": b""})  # qr.ndjson expired: 404
    make = run_job(server, tmp_path)
    job = make()
    with pytest.raises(BulkExportError, match="gone"):
        job.run()
    assert job.store.job(job.key) is None  # the next run kicks off a new export


def test_a_busy_status_is_polled_again_and_a_failed_one_ends_the_job(tmp_path: Path) -> None:
    server = Server({"qr.ndjson": ecr_r_line("a"), "errors.ndjson": b""})
    server.status_faults = [
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(429),  # no Retry-After: the default 5 s
    ]
    sleeps: list[float] = []
    assert run_job(server, tmp_path / "busy", sleeps)().run().scored == 1
    assert sleeps == [2.0, 5.0, 3.0]  # then the 202's HTTP-date Retry-After

    failed = Server({})
    failed.status_faults = [httpx.Response(500, json={"resourceType": "OperationOutcome"})]
    job = run_job(failed, tmp_path / "failed")()
    with pytest.raises(BulkExportError, match="failed on the server"):
        job.run()
    assert job.store.job(job.key) is None
