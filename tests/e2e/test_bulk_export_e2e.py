"""``bulk-score --export`` against a Bulk Data server nobody here wrote: the PyPI package
``sekmet-fhir`` (FastAPI), started on loopback with SMART Backend Services auth on its FHIR API,
its status URLs and its files. Seeded with responses whose scores are worked by hand in
tests/lib/scoring_examples.py; exported, scored, written, rerun (nothing written twice),
interrupted and resumed, polled past a 202, cancelled with DELETE."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from joserfc.jwk import ECKey

from attach_fhir.bulk_export import ExportTimedOut
from attach_fhir.io.audit_store import SqliteAuditStore
from attach_fhir.io.backend_services import (
    BackendTokenSource,
    backend_fhir_client,
    load_backend_config,
)
from attach_fhir.io.bulk_export import BulkExportRun, ExportOptions, ExportRequest
from attach_fhir.io.bulk_scoring import submission_id
from attach_fhir.io.export_store import STORE_NAME, ExportStore
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.system_audit import SystemAudit
from attach_fhir.scoring import score_response
from attach_fhir.writeback import WritebackContext, build_transaction, identifier_value
from tests.fixtures import system_audit as trail
from tests.lib.instrument_data import packaged
from tests.lib.scoring_examples import EXAMPLES, Example, assert_scored
from tests.lib.scoring_responses import from_answers

pytestmark = pytest.mark.e2e

AUTHORED = "2024-05-01T10:15:00+02:00"
CLIENT = "attach-bulk"
NDJSON = "application/fhir+ndjson"
ONE_PER_INSTRUMENT = list({e.instrument: e for e in reversed(EXAMPLES)}.values())[::-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sekmet:
    """One sekmet-fhir server process and a backend config that may use it."""

    def __init__(self, folder: Path, delay: float) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        key = ECKey.generate_key("P-384", private=True)
        (folder / "backend.json").write_text(
            json.dumps(
                [
                    {
                        "iss": self.base,
                        "client_id": CLIENT,
                        "private_key": "key.json",
                        "alg": "ES384",
                        "scopes": ["system/*.cruds"],
                    }
                ]
            )
        )
        (folder / "key.json").write_text(json.dumps(key.as_dict(private=True)))
        public = {**key.as_dict(private=False), "alg": "ES384", "use": "sig"}
        settings = {
            "base_url": self.base,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(folder / "data"),
            "log_inbound": False,
            "simulator": {"enabled": False, "delay_seconds": delay},
            "server_auth": {
                "types": ["smart"],
                "smart_clients": [
                    {"client_id": CLIENT, "jwks": {"keys": [public]}, "scopes": "system/*.*"}
                ],
            },
        }
        # sekmet reads YAML; JSON is YAML.
        (folder / "settings.yaml").write_text(json.dumps(settings))
        self.backend = folder / "backend.json"
        self.log = (folder / "sekmet.log").open("w")
        sekmet = Path(sys.executable).with_name("sekmet")
        self.process = subprocess.Popen(
            [str(sekmet), "serve", "--config", str(folder / "settings.yaml")],
            cwd=folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sekmet-fhir did not start: {(folder / 'sekmet.log').read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    server = Sekmet(tmp_path_factory.mktemp("sekmet"), delay=1.0)
    yield server
    server.stop()


def client_for(sekmet: Sekmet, http: httpx.Client) -> tuple[FhirClient, BackendTokenSource]:
    config = load_backend_config(sekmet.backend)[0]
    tokens = BackendTokenSource(config, http)
    return FhirClient(config.iss, http, token_source=tokens), tokens


def response_for(example: Example, patient: str) -> dict[str, Any]:
    questionnaire = packaged(example.instrument)
    response = from_answers(questionnaire, example.answers)
    response.update(subject={"reference": patient}, authored=AUTHORED)
    response["author"] = {"reference": patient}
    return response


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attach_fhir.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)


def observations_of(client: FhirClient, qr_id: str) -> dict[str, dict[str, Any]]:
    found = client.search("Observation", {"derived-from": f"QuestionnaireResponse/{qr_id}"})
    return {o["code"]["coding"][0]["code"]: o for o in found}


def count(client: FhirClient, resource_type: str) -> int:
    return sum(1 for _ in client.search(resource_type, {"_count": "200"}))


@pytest.fixture(scope="module")
def seeded(sekmet: Sekmet) -> dict[str, Any]:
    """Two patients in a Group, one response per instrument, an in-progress one, a broken one,
    one the app already wrote with its Observations; a third patient outside the Group."""
    with httpx.Client(timeout=30) as http:
        client = backend_fhir_client(load_backend_config(sekmet.backend)[0], http)
        patients = [client.create({"resourceType": "Patient", "active": True})["id"] for _ in "ab"]
        outside = client.create({"resourceType": "Patient", "active": True})["id"]
        group = client.create(
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients],
            }
        )["id"]
        scored: dict[str, Example] = {}
        for example in ONE_PER_INSTRUMENT:
            scored[client.create(response_for(example, f"Patient/{patients[0]}"))["id"]] = example
        ecr_r = ONE_PER_INSTRUMENT[0]
        draft = {**response_for(ecr_r, f"Patient/{patients[1]}"), "status": "in-progress"}
        client.create(draft)
        broken = response_for(ecr_r, f"Patient/{patients[1]}")
        broken["item"] = [*broken["item"], {"linkId": "nope", "answer": [{"valueInteger": 1}]}]
        broken_id = client.create(broken)["id"]
        # The app's own submission: its response and score Observations are written already.
        app = response_for(ecr_r, f"Patient/{patients[1]}")
        questionnaire = packaged("ecr-r")
        ctx = WritebackContext(
            submission_id=f"app-{uuid.uuid4()}",
            patient=f"Patient/{patients[1]}",
            author=f"Patient/{patients[1]}",
            authored=AUTHORED,
        )
        bundle = build_transaction(app, questionnaire, score_response(questionnaire, app), ctx)
        # sekmet has no identifier search on QuestionnaireResponse: a plain create for it.
        del bundle["entry"][0]["request"]["ifNoneExist"]
        written = client.transaction(bundle)["entry"][0]["response"]["location"]
        app_id = written.split("/_history/")[0].split("/")[-1]
        # Outside the Group: exported at system level only. Created last: its lastUpdated is
        # a _since that only it meets.
        last = client.create(response_for(ecr_r, f"Patient/{outside}"))
    return {
        "scored": scored,
        "broken": broken_id,
        "app": app_id,
        "group": group,
        "patients": patients,
        "last": (last["id"], last["meta"]["lastUpdated"]),
    }


def test_export_scores_writes_and_a_rerun_writes_nothing(
    sekmet: Sekmet, seeded: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    client, _ = client_for(sekmet, http)
    args = ["bulk-score", "--backend", str(sekmet.backend), "--iss", sekmet.base, "--export"]
    args += ["--data-dir", str(tmp_path), "--write", "--json"]
    run = cli(*args)
    assert run.returncode == 1, run.stderr  # the broken response is a problem
    report = json.loads(run.stdout)
    scored: dict[str, Example] = seeded["scored"]
    # One per instrument (5), a draft, a broken one, the app's, the outsider's ECR-R.
    assert report["exported"] == len(scored) + 4
    assert report["skipped"] == 1  # the draft
    assert report["invalid"] == 1
    assert report["scored"] == len(scored) + 2  # + the app's and the outsider's
    assert report["already_scored"] == 1
    assert report["written"] == len(scored) + 1
    # ECR-R has two scores (anxiety, avoidance): the outsider's adds two.
    assert report["observations_written"] == sum(len(e.expected) for e in scored.values()) + 2
    assert report["problems"] == [
        {
            "response": f"QuestionnaireResponse/{seeded['broken']}",
            "code": "unknown-link-id",
            "path": "QuestionnaireResponse.item[36]",
        }
    ]
    for qr_id, example in scored.items():
        observations = observations_of(client, qr_id)
        assert set(observations) == set(example.expected)
        for code, obs in observations.items():
            assert_scored(obs, example.expected[code])
            assert obs["identifier"][0]["value"] == identifier_value(submission_id(qr_id), code)
    assert len(observations_of(client, seeded["app"])) == 2  # untouched

    before = count(client, "Observation")
    again = json.loads(cli(*args).stdout)
    assert (again["already_scored"], again["written"], again["observations_written"]) == (
        len(scored) + 2,
        0,
        0,
    )
    assert count(client, "Observation") == before


def test_an_interrupted_run_resumes_where_it_stopped(
    sekmet: Sekmet, seeded: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    client, tokens = client_for(sekmet, http)
    # Export responses only, so none counts as already scored by a score Observation.
    request = ExportRequest(sekmet.base, "system", types=("QuestionnaireResponse",))
    seen: list[tuple[str, int]] = []

    def stop_after_first_checkpoint(phase: str, done: int, total: int | None) -> None:
        seen.append((phase, done))
        if phase == "QuestionnaireResponse" and done == 3:
            raise KeyboardInterrupt

    store = ExportStore(tmp_path)
    options = ExportOptions(checkpoint_every=3, progress=stop_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        BulkExportRun(client, http, store, request, options, tokens).run()
    saved = store.job(request.key())
    assert saved is not None and saved.manifest is not None
    assert saved.counts["exported"] == 3

    resumed = BulkExportRun(client, http, store, request, ExportOptions(), tokens)
    tally = resumed.run()
    assert resumed.notes == ["resumed an export started earlier"]
    # Every response (the Group's 8 and the outsider's 1), each counted once.
    assert tally.exported == len(seeded["scored"]) + 4
    assert tally.skipped == 1 and tally.invalid == 1
    assert tally.scored == len(seeded["scored"]) + 2
    assert store.job(request.key()) is None  # finished: the next run starts a new export
    store.close()


def test_polling_honours_retry_after_and_times_out_then_cancel_deletes(
    sekmet: Sekmet, seeded: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    client, tokens = client_for(sekmet, http)
    request = ExportRequest(sekmet.base, "system", types=("QuestionnaireResponse",))
    store = ExportStore(tmp_path)
    sleeps: list[float] = []
    progress: list[str] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds
        time.sleep(seconds)

    options = ExportOptions(
        poll_timeout=0.5,
        monotonic=lambda: clock[0],
        sleep=sleep,
        progress=lambda phase, done, total: progress.append(phase),
    )
    job = BulkExportRun(client, http, store, request, options, tokens)
    with pytest.raises(ExportTimedOut):
        job.run()
    assert sleeps == []  # Retry-After: 1 is past the 0.5 s allowed: no sleep, a timeout
    assert progress and progress[0] in {"queued", "collecting", "writing"}  # sekmet's X-Progress
    saved = store.job(request.key())
    assert saved is not None and saved.manifest is None

    # Resumed with time to wait: polls again after Retry-After (1 s) and completes.
    options.poll_timeout = 30
    tally = BulkExportRun(client, http, store, request, options, tokens).run()
    assert sleeps and all(s == 1.0 for s in sleeps)
    assert tally.exported == len(seeded["scored"]) + 4

    cancelled = BulkExportRun(client, http, store, request, ExportOptions(poll_timeout=0), tokens)
    with pytest.raises(ExportTimedOut):
        cancelled.run()
    status_url = store.job(request.key()).status_url  # type: ignore[union-attr]
    assert cancelled.cancel() is True
    assert store.job(request.key()) is None
    gone = http.get(status_url, headers={"Authorization": f"Bearer {tokens(None)}"})
    assert gone.status_code == 404
    assert cancelled.cancel() is False
    store.close()


def test_a_group_export_holds_its_members_only_and_files_need_the_token(
    sekmet: Sekmet, seeded: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    client, tokens = client_for(sekmet, http)
    request = ExportRequest(sekmet.base, "group", seeded["group"], ("Patient", "Observation"))
    store = ExportStore(tmp_path)
    job = BulkExportRun(client, http, store, request, ExportOptions(), tokens)
    manifest = job.wait(job.kickoff())
    assert manifest["requiresAccessToken"] is True
    files = {f["type"]: f["url"] for f in manifest["output"]}
    assert http.get(files["Patient"]).status_code == 401
    bearer = {"Authorization": f"Bearer {tokens(None)}"}
    patients = http.get(files["Patient"], headers=bearer)
    assert patients.status_code == 200
    ids = {json.loads(line)["id"] for line in patients.content.splitlines()}
    assert ids == set(seeded["patients"])  # not the patient outside the Group
    observations = http.get(files["Observation"], headers=bearer).content.splitlines()
    members = sum(
        len(list(client.search("Observation", {"subject": f"Patient/{p}"})))
        for p in seeded["patients"]
    )
    assert len(observations) == members
    store.close()


def test_the_command_keeps_a_timed_out_job_and_cancel_deletes_it(
    sekmet: Sekmet, seeded: dict[str, Any], tmp_path: Path
) -> None:
    args = ["bulk-score", "--backend", str(sekmet.backend), "--iss", sekmet.base, "--export"]
    args += ["--type", "Patient", "--data-dir", str(tmp_path)]
    waited = cli(*args, "--poll-timeout", "0")
    assert waited.returncode == 2
    assert "bulk_export_timeout" in waited.stderr
    assert (tmp_path / "bulk-exports.sqlite3").stat().st_mode & 0o777 == 0o600
    store = ExportStore(tmp_path)
    saved = store.job(ExportRequest(sekmet.base, "system", types=("Patient",)).key())
    store.close()
    assert saved is not None
    cancelled = cli(*args, "--cancel")
    assert cancelled.returncode == 0 and "export cancelled" in cancelled.stderr
    with httpx.Client(timeout=30) as http:
        _, tokens = client_for(sekmet, http)
        bearer = {"Authorization": f"Bearer {tokens(None)}"}
        assert http.get(saved.status_url, headers=bearer).status_code == 404
    again = cli(*args, "--cancel")
    assert "no export to cancel" in again.stderr


def test_since_exports_what_changed_from_then(
    sekmet: Sekmet, seeded: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    client, tokens = client_for(sekmet, http)
    last_id, last_updated = seeded["last"]
    request = ExportRequest(sekmet.base, types=("QuestionnaireResponse",), since=last_updated)
    store = ExportStore(tmp_path)
    job = BulkExportRun(client, http, store, request, ExportOptions(), tokens)
    manifest = job.wait(job.kickoff())
    assert manifest["request"].endswith(f"_since={last_updated.replace(':', '%3A')}")
    (file,) = manifest["output"]
    lines = http.get(file["url"], headers={"Authorization": f"Bearer {tokens(None)}"}).content
    assert [json.loads(line)["id"] for line in lines.splitlines()] == [last_id]
    store.close()


def test_an_export_is_audited_per_kickoff_status_and_file_not_per_line(
    sekmet: Sekmet, seeded: dict[str, Any], tmp_path: Path
) -> None:
    config = load_backend_config(sekmet.backend)[0]
    recording = trail.Recording()
    audit = SystemAudit(SqliteAuditStore(tmp_path / "audit.sqlite3"))
    request = ExportRequest(sekmet.base, "system", types=("QuestionnaireResponse",))
    store = ExportStore(tmp_path)
    transport = audit.transport(sekmet.base, config.client_id, recording)
    try:
        with httpx.Client(timeout=30, transport=transport) as http:
            tokens = BackendTokenSource(config, http)
            client = FhirClient(config.iss, http, token_source=tokens)
            tally = BulkExportRun(client, http, store, request, ExportOptions(), tokens).run()
    finally:
        store.close()
        audit.close()
    events = trail.records(tmp_path)
    by_id = {trail.request_id(e): e for e in events}
    assert len(by_id) == len(events)  # no patient named: one record per request

    (kickoff,) = [s for s in recording.sent if "$export" in s.url.path]
    polls = [s for s in recording.sent if s.location == "" and str(s.url) == kickoff.location]
    files = [s for s in recording.sent if s.accept == NDJSON]
    assert kickoff.status == 202 and polls and files
    assert polls[-1].status == 200  # polled until the manifest was there
    assert trail.codes(by_id[kickoff.request_id]) == ["operation"]
    sent_query = parse_qsl(kickoff.url.query.decode())
    assert ("_type", "QuestionnaireResponse") in sent_query  # kept as sent: no PHI in it
    assert parse_qsl(str(trail.query(by_id[kickoff.request_id]))) == sent_query
    assert [trail.codes(by_id[s.request_id]) for s in polls] == [
        ["operation", "bulk-status"]
    ] * len(polls)
    for sent in files:
        event = by_id[sent.request_id]
        assert trail.codes(event) == ["operation", "bulk-file"]
        assert event["action"] == "R" and event["outcome"] == "0"
        assert event["entity"][0]["what"] == {"type": "QuestionnaireResponse"}
        assert str(sent.url) not in json.dumps(event)  # a file URL may carry a signature
    # Each response exported is a line of a file; the lines make no records of their own.
    assert tally.exported == len(seeded["scored"]) + 4 > len(files)
    (token,) = [s for s in recording.sent if s.method == "POST" and s.url.path.endswith("/token")]
    assert token.status == 200 and token.request_id not in by_id  # an issued token: no event
    fhir = [s for s in recording.sent if s.request_id and s is not token]
    assert (
        len(events)
        == len(fhir)
        == 1 + len(polls) + len(files) + sum(s.url.path.endswith("/metadata") for s in fhir)
    )
    assert {trail.client_id(e) for e in events} == {CLIENT}


KILLED_RESPONSES = 40


def first_checkpoint(store_file: Path, process: subprocess.Popen[str], timeout: float) -> int:
    """Poll the export store (read-only) until a file is saved part-way; the lines saved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if store_file.exists():
            try:
                with closing(sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)) as db:
                    row = db.execute(
                        "SELECT lines FROM files WHERE lines > 0 AND done = 0"
                    ).fetchone()
            except sqlite3.OperationalError:  # created but not yet its tables, or locked
                row = None
            if row is not None:
                return int(row[0])
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint before the run ended (exit {process.poll()})")


def test_a_killed_command_resumes_and_writes_each_score_once(tmp_path: Path) -> None:
    """SIGKILL after the first checkpoint, the same command again: one run's counts, and each
    score Observation once on the server (by identifier)."""
    server = Sekmet(tmp_path, delay=0.5)
    try:
        with httpx.Client(timeout=30) as http:
            client, _ = client_for(server, http)
            patient = client.create({"resourceType": "Patient", "active": True})["id"]
            seeded: dict[str, Example] = {}
            for n in range(KILLED_RESPONSES):
                example = EXAMPLES[n % len(EXAMPLES)]
                created = client.create(response_for(example, f"Patient/{patient}"))
                seeded[created["id"]] = example
        args = ["bulk-score", "--backend", str(server.backend), "--iss", server.base, "--export"]
        # One response per transaction: a checkpoint after each, so many before the end.
        args += ["--data-dir", str(tmp_path / "data"), "--write", "--json"]
        args += ["--batch-entries", "1"]
        command = [sys.executable, "-m", "attach_fhir.cli", *args]
        first = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
        )
        try:
            saved_lines = first_checkpoint(tmp_path / "data" / STORE_NAME, first, timeout=40)
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.communicate(timeout=20)
        assert first.returncode == -signal.SIGKILL
        store = ExportStore(tmp_path / "data")
        saved = store.job(ExportRequest(server.base).key())  # the command's default request
        store.close()
        assert saved is not None and saved.manifest is not None  # the job is kept
        assert 0 < saved_lines <= saved.counts["exported"] < KILLED_RESPONSES

        again = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "note: resumed an export started earlier" in again.stderr
        report = json.loads(again.stdout)
        scores = sum(len(e.expected) for e in seeded.values())
        counts = ("exported", "scored", "already_scored", "written", "observations_written")
        assert {c: report[c] for c in counts} == {
            "exported": KILLED_RESPONSES,
            "scored": KILLED_RESPONSES,
            "already_scored": 0,  # the export's Observation file predates every write
            "written": KILLED_RESPONSES,
            "observations_written": scores,
        }
        assert (report["invalid"], report["skipped"], report["problems"]) == (0, 0, [])

        with httpx.Client(timeout=30) as http:
            client, _ = client_for(server, http)
            found = list(client.search("Observation", {"_count": "200"}))
        by_identifier: dict[str, list[dict[str, Any]]] = {}
        for obs in found:
            for ident in obs.get("identifier", []):
                by_identifier.setdefault(ident["value"], []).append(obs)
        expected = {
            identifier_value(submission_id(qr_id), code): value
            for qr_id, example in seeded.items()
            for code, value in example.expected.items()
        }
        assert len(expected) == scores
        assert {i: len(o) for i, o in by_identifier.items()} == dict.fromkeys(expected, 1)
        for ident, value in expected.items():
            assert_scored(by_identifier[ident][0], value)
        assert len(found) == scores
    finally:
        server.stop()
