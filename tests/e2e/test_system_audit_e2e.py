"""The backend-services commands audit every FHIR request they send, against the real sandbox
EHR: ``bulk-score`` (in process, each record checked against the requests a real transport saw;
and as a command, read back with ``audit export``) and ``outbox drain --backend``. Who is the
system client (its client_id, the requesting agent); no user, no token, no answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from attach_fhir.io.audit_store import PostgresAuditStore, SqliteAuditStore
from attach_fhir.io.backend_services import (
    BackendTokenError,
    BackendTokenSource,
    backend_fhir_client,
    load_backend_config,
)
from attach_fhir.io.bulk_scoring import BulkScoring
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import payload
from attach_fhir.io.outbox_store import SqliteOutboxStore
from attach_fhir.io.system_audit import SystemAudit
from ehr_sandbox.runner import Sandbox
from smart_app.records.delivery import CRED_MARK
from tests.e2e.test_backend_services_e2e import (
    AUTHORED,
    CLIENTS,
    ONE_PER_INSTRUMENT,
    PATIENT,
    WRITE_SCOPES,
    app_submission,
    backend_clients,
    config,
    config_file,
    with_scopes,
    write_key_files,
)
from tests.fixtures import system_audit as trail
from tests.fixtures.postgres import fresh_schema
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.seed import seeded_patient

pytestmark = pytest.mark.e2e

OTHER_PATIENT = "Patient/sandbox-parent-41"
SINCE = "2024-01-01"


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox of its own: the records name only this module's requests."""
    return sandbox_factory(clients=backend_clients())


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key_files(tmp_path_factory.mktemp("audit-keys"))


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox, keys_dir: Path) -> list[str]:
    """One completed response per instrument for two patients, unscored: the ids."""
    rs384 = config(keys_dir, sandbox, "RS384", ["system/*.cruds"])
    made = []
    with httpx.Client(timeout=30) as http:
        seeder = backend_fhir_client(with_scopes(rs384, CLIENTS["seed"], ("system/*.cruds",)), http)
        for who in (PATIENT, OTHER_PATIENT):
            for example in ONE_PER_INSTRUMENT[:2]:
                response, _ = app_submission(example, f"seed-{uuid.uuid4()}")
                response.update(subject={"reference": who}, authored=AUTHORED)
                made.append(seeder.create(response)["id"])
    return made


@pytest.fixture
def recording() -> Iterator[trail.Recording]:
    made = trail.Recording()
    yield made
    made.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attach_fhir.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


def expected_event(sent: trail.Sent, base: str) -> str:
    """The RESTful interaction of a request to the FHIR server, worked out from its URL."""
    path = str(sent.url.copy_with(query=None))[len(base) :].strip("/")
    parts = path.split("/") if path else []
    if sent.method == "POST" and not parts:
        return "transaction"
    if parts == ["metadata"]:
        return "capabilities"
    if len(parts) == 1:
        return {"GET": "search-type", "POST": "create", "PUT": "update"}[sent.method]
    return {"GET": "read", "PUT": "update"}[sent.method]


def test_bulk_score_records_each_fhir_request_it_sends(
    sandbox: Sandbox,
    keys_dir: Path,
    seeded: list[str],
    tmp_path: Path,
    recording: trail.Recording,
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    backend = config(keys_dir, sandbox, "RS384", ["system/*.cruds"])
    audit = SystemAudit(SqliteAuditStore(tmp_path / "audit.sqlite3"))
    transport = audit.transport(base, backend.client_id, recording)
    with httpx.Client(timeout=30, transport=transport) as http:
        tokens = BackendTokenSource(backend, http)
        client = FhirClient(base, http, token_source=tokens)
        report = BulkScoring(client, write=True, since=SINCE).run()
        token = tokens.access_token()
    audit.close()
    assert report.written == len(seeded)
    events = trail.records(tmp_path)

    to_fhir = [
        s
        for s in recording.sent
        if str(s.url).split("?")[0].rstrip("/") == base or str(s.url).startswith(base + "/")
    ]
    fhir = [s for s in to_fhir if "/.well-known/" not in s.url.path]
    others = [s for s in recording.sent if s not in fhir]
    assert others, "discovery and the token request went through the same transport"
    # Discovery is no FHIR interaction; an issued token is no event (a refused one is).
    assert [s.url for s in others if s.request_id and s.method == "GET"] == []
    assert all(s.request_id for s in fhir)
    assert len({s.request_id for s in fhir}) == len(fhir)  # one id per request
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_id.setdefault(str(trail.request_id(event)), []).append(event)
    assert set(by_id) == {s.request_id for s in fhir}

    writes = 0
    for sent in fhir:
        made = by_id[str(sent.request_id)]
        want = expected_event(sent, base)
        patients = trail.body_patients(sent.body)
        assert sorted(str(trail.patient(e)) for e in made) == sorted(patients or {"None"})
        for event in made:
            assert trail.codes(event) == [want]
            assert event["outcome"] == ("0" if sent.status < 400 else "4")
            assert trail.client_id(event) == backend.client_id
            assert all(a["type"]["coding"][0]["code"] != "UserOauthAgent" for a in event["agent"])
            destination = [a for a in event["agent"] if "network" in a]
            assert destination[0]["network"]["address"] == base
            if want == "search-type":
                # References, codes and paging as sent; a date (authored) is not kept.
                sent_query = dict(parse_qsl(sent.url.query.decode()))
                if "authored" in sent_query:
                    sent_query["authored"] = "*"
                assert dict(parse_qsl(str(trail.query(event)))) == sent_query
        writes += want in ("transaction", "create") and sent.status < 400
    assert writes >= 1
    written_for = {trail.patient(e) for e in events if trail.codes(e)[0] == "transaction"}
    assert written_for == {PATIENT, OTHER_PATIENT}

    kept = (tmp_path / "audit.sqlite3").read_bytes()
    assert token.encode() not in kept
    assert b"Bearer" not in kept and b"linkId" not in kept and b"valueCoding" not in kept
    for who in (PATIENT, OTHER_PATIENT):
        name = seeded_patient(who.split("/")[1])["name"][0]["family"]
        assert name.encode() not in kept


def test_the_bulk_score_command_writes_where_audit_export_reads(
    sandbox: Sandbox, keys_dir: Path, seeded: list[str], tmp_path: Path
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    env = {**os.environ, "ATTACH_DATA_DIR": str(tmp_path / "data")}
    env.pop("ATTACH_DATABASE_URL", None)
    env.pop("ATTACH_AUDIT_STORE", None)
    backend = config_file(keys_dir, base, CLIENTS["ES384"], "ES384", "ES384", ["system/*.rs"])
    run = cli(env, "bulk-score", "--backend", str(backend), "--iss", base, "--since", SINCE)
    assert run.returncode == 0, run.stderr
    exported = cli(env, "audit", "export", "--since", "2000-01-01")
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    searches = [e for e in events if trail.codes(e) == ["search-type"]]
    # Each instrument's responses are searched, then their Observations (the ids found).
    responses = [e for e in searches if "QuestionnaireResponse" in json.dumps(e["entity"])]
    assert responses and len(searches) > len(responses)
    assert {trail.client_id(e) for e in events} == {CLIENTS["ES384"]}
    assert {e["outcome"] for e in events} == {"0"}
    assert exported.stderr == f"attach-fhir audit: {len(events)} AuditEvents\n"


def test_outbox_drain_with_the_backend_token_records_each_delivery(
    sandbox: Sandbox, keys_dir: Path, tmp_path: Path
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    sid = f"drain-{uuid.uuid4()}"
    _, bundle = app_submission(ONE_PER_INSTRUMENT[0], sid, authored="2020-01-01T09:00:00Z")
    for folder in ("open", "backend"):  # the refused item waits: a second queue for the token
        store = SqliteOutboxStore(tmp_path / folder / "outbox.sqlite3")
        target = f"{base}{CRED_MARK}{'0' * 40}"
        store.enqueue(sid, target, payload(bundle, "transaction"), time.time())
        store.close()
    env = {**os.environ, "ATTACH_DATA_DIR": str(tmp_path / "data")}
    env.pop("ATTACH_DATABASE_URL", None)
    env.pop("ATTACH_AUDIT_STORE", None)
    # Without a token first: the secured server refuses, and the refusal is recorded too.
    refused = cli(env, "outbox", "drain", "--data-dir", str(tmp_path / "open"))
    assert refused.returncode == 75, refused.stderr
    (unauthorized,) = trail.records(tmp_path / "data")
    assert trail.codes(unauthorized) == ["transaction"]
    assert (trail.patient(unauthorized), unauthorized["outcome"]) == (PATIENT, "4")
    assert trail.agent_client(unauthorized) is None  # no client id: no token was sent
    assert trail.requestor(unauthorized)["who"] == {"display": "attach-fhir"}

    backend = config_file(keys_dir, base, CLIENTS["ES384"], "ES384", "ES384", WRITE_SCOPES)
    drained = cli(
        env, "outbox", "drain", "--data-dir", str(tmp_path / "backend"), "--backend", str(backend)
    )
    assert drained.returncode == 0, drained.stderr
    events = trail.records(tmp_path / "data")[1:]
    sent = [e for e in events if trail.codes(e) == ["transaction"]]
    assert [(trail.patient(e), e["outcome"]) for e in sent] == [(PATIENT, "0")]
    assert {trail.client_id(e) for e in events} == {CLIENTS["ES384"]}
    assert (tmp_path / "data" / "audit.sqlite3").stat().st_mode & 0o777 == 0o600


def test_a_refused_system_token_is_a_failed_authorization(
    sandbox: Sandbox, keys_dir: Path, tmp_path: Path, recording: trail.Recording
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    path = config_file(keys_dir, base, CLIENTS["RS384"], "wrong", "RS384", ["system/Patient.rs"])
    backend = load_backend_config(path)[0]
    audit = SystemAudit(SqliteAuditStore(tmp_path / "audit.sqlite3"))
    transport = audit.transport(base, backend.client_id, recording)
    with httpx.Client(timeout=30, transport=transport) as http:
        client = FhirClient(base, http, token_source=BackendTokenSource(backend, http))
        with pytest.raises(BackendTokenError):
            client.read("Patient", "sandbox-adult-29")
    audit.close()
    (token_request,) = [s for s in recording.sent if s.method == "POST"]
    assert token_request.status >= 400
    (event,) = trail.records(tmp_path)  # nothing reached the FHIR server
    assert trail.codes(event) == ["ITI-71", "authorize-failed"]
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "backend_token_failed")
    assert trail.client_id(event) == CLIENTS["RS384"]
    assert trail.request_id(event) == token_request.request_id
    kept = (tmp_path / "audit.sqlite3").read_bytes()
    assert b"client_assertion" not in kept and b"eyJ" not in kept


def test_with_a_database_url_the_records_go_to_postgresql(
    sandbox: Sandbox, keys_dir: Path, seeded: list[str], tmp_path: Path
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    backend = config_file(keys_dir, base, CLIENTS["ES384"], "ES384", "ES384", ["system/*.rs"])
    with fresh_schema() as schema:
        env = {**os.environ, "ATTACH_DATABASE_URL": schema.dsn}
        env["ATTACH_DATA_DIR"] = str(tmp_path / "data")
        env.pop("ATTACH_AUDIT_STORE", None)
        run = cli(env, "bulk-score", "--backend", str(backend), "--iss", base, "--since", SINCE)
        assert run.returncode == 0, run.stderr
        store = PostgresAuditStore(schema.dsn)
        try:
            events = list(store.since(0))
        finally:
            store.close()
    assert events and {trail.client_id(e) for e in events} == {CLIENTS["ES384"]}
    assert {trail.codes(e)[0] for e in events} == {"search-type"}  # a dry run only searches
    assert not (tmp_path / "data" / "audit.sqlite3").exists()


def test_a_command_whose_audit_store_is_not_current_sends_nothing(
    sandbox: Sandbox, keys_dir: Path, tmp_path: Path
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    backend = config_file(keys_dir, base, CLIENTS["ES384"], "ES384", "ES384", ["system/*.rs"])
    with fresh_schema(upgraded=False) as schema:
        env = {**os.environ, "ATTACH_DATABASE_URL": schema.dsn}
        env.pop("ATTACH_AUDIT_STORE", None)
        run = cli(env, "bulk-score", "--backend", str(backend), "--iss", base)
    assert run.returncode == 2
    assert run.stderr.startswith("error: schema_not_current: ")
    # One line, the error: no search ran (each page prints a progress line), nothing on stdout.
    assert run.stderr.count("\n") == 1 and run.stdout == ""
