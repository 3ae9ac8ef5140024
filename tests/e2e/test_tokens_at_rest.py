"""Tokens at rest: the data directory is private whatever the umask, and a real launch leaves no
token text in the session store's bytes (SQLite file and WAL, PostgreSQL rows); key rotation
reseals the records so that the old key can go."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from smart_app.records import delivery
from smart_app.web.session_store import PostgresStore, SessionStore, SqliteStore
from smart_app.web.token_keys import RecordCipher, new_key
from tests.fixtures.postgres import fresh_schema
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

DSN = os.environ.get("ATTACH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PATIENT = "sandbox-adult-29"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema (upgraded), dropped afterwards."""
    with fresh_schema(prefix="session_test") as schema:
        yield schema.name


def in_schema(schema: str) -> str:
    """The DSN with ``schema`` first on the search path (the store's table lands there)."""
    return f"{DSN}?options=-csearch_path%3D{schema}"


def raw_values(schema: str) -> list[str]:
    with psycopg.connect(DSN) as conn:
        table = sql.Identifier(schema, "attach_session")
        rows = conn.execute(sql.SQL("SELECT value FROM {}").format(table)).fetchall()
    return [row[0] for row in rows]


def modes(data_dir: Path) -> dict[str, str]:
    """The permission bits of the data directory (as ".") and of every file in it."""
    found = {".": oct(stat.S_IMODE(data_dir.stat().st_mode))}
    found.update({p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in data_dir.iterdir()})
    return found


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for the test (the app runs in this process), then put it back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def launch_capturing_tokens(sandbox: Sandbox, server: AppServer) -> list[str]:
    """An EHR launch through the real sandbox; the token strings the EHR issued to the app."""
    issued: list[str] = []

    def capture(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/token"):
            body = json.loads(response.content)
            keys = ("access_token", "refresh_token", "id_token")
            issued.extend(body[k] for k in keys if isinstance(body.get(k), str))
        return response

    server.transport.tamper = capture
    browser = Browser()
    try:
        page = browser.go(ehr_launch_url(sandbox, server.client_id, PATIENT))
        assert page.status_code == 200, page.text
        assert 'id="patient-name">' in page.text  # the app read the patient with the token
    finally:
        browser.close()
    return issued


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_data_dir_and_its_files_are_private_whatever_the_umask(
    mask: int, umask: Any, launch_sandbox: Sandbox, launch_knobs: Knobs, tmp_path: Path
) -> None:
    assert launch_sandbox.urls is not None
    reg, client = app_registration("symmetric", launch_sandbox.urls.fhir_base, tmp_path, "e2e-m")
    umask(mask)
    server = start_app(reg, tmp_path)
    register_app(launch_sandbox, server, client)
    try:
        launch_capturing_tokens(launch_sandbox, server)
        assert delivery.outbox_services(server.app).outbox.store  # opens the outbox file
        data_dir = tmp_path / "app-data"
        found = modes(data_dir)
        expected = {"sessions.sqlite3", "sessions.sqlite3-wal", "sessions.sqlite3-shm"}
        expected |= {"outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm", "token-keys"}
        assert expected <= found.keys()
        assert found == {".": "0o700"} | dict.fromkeys(found.keys() - {"."}, "0o600")
    finally:
        server.stop()


def test_modes_left_wide_by_an_older_version_are_corrected_at_start(
    umask: Any, tmp_path: Path
) -> None:
    umask(0o000)
    data_dir = tmp_path / "app-data"
    data_dir.mkdir(mode=0o755)
    for name in ("sessions.sqlite3", "sessions.sqlite3-wal", "outbox.sqlite3", "notes.txt"):
        (data_dir / name).write_bytes(b"")
        os.chmod(data_dir / name, 0o644)
    reg = {
        "name": "local",
        "iss": ["http://127.0.0.1:9/fhir"],
        "client_id": "c",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    server = start_app(reg, tmp_path)
    try:
        found = modes(data_dir)
        assert found == {".": "0o700"} | dict.fromkeys(found.keys() - {"."}, "0o600")
        assert "notes.txt" in found and "token-keys" in found
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_real_launch_leaves_no_token_text_at_rest(
    backend: str, request: pytest.FixtureRequest, launch_sandbox: Sandbox, tmp_path: Path
) -> None:
    assert launch_sandbox.urls is not None
    config: dict[str, Any] = {}
    if backend == "postgres":
        schema = request.getfixturevalue("pg_schema")
        config = {"SESSION_STORE": in_schema(schema), "TOKEN_KEYS": new_key()}
    reg, client = app_registration("public", launch_sandbox.urls.fhir_base, tmp_path, "e2e-rest")
    server = start_app(reg, tmp_path, **config)
    register_app(launch_sandbox, server, client)
    try:
        issued = launch_capturing_tokens(launch_sandbox, server)
        assert issued and all(len(t) >= 16 for t in issued)
        if backend == "postgres":
            values = raw_values(schema)
            assert len(values) >= 2  # the browser session and the launch at least
            at_rest = "\n".join(values).encode()
        else:
            data_dir = tmp_path / "app-data"
            at_rest = b"".join(p.read_bytes() for p in data_dir.glob("sessions.sqlite3*"))
            assert b"attach_session" in at_rest  # the bytes are the store's, not an empty file
        assert [t for t in issued if t.encode() in at_rest] == []
        assert PATIENT.encode() not in at_rest  # whole records are sealed, ids included
        store = server.app.extensions["attach_fhir"].store
        launches = all_keys(store, "launch")
        assert len(launches) == 1
        record = store.get("launch", launches[0])
        assert record is not None and record["token"]["access_token"] in issued
    finally:
        server.stop()


def all_keys(store: SessionStore, ns: str) -> list[str]:
    """The keys of ``ns`` (only the key column is read; values stay sealed)."""
    assert isinstance(store, PostgresStore | SqliteStore)
    rows, _ = store._run("SELECT key FROM attach_session WHERE ns = ?", (ns,))
    return [r[0] for r in rows]


def open_test_store(backend: str, where: str, cipher: RecordCipher) -> SessionStore:
    if backend == "postgres":
        return PostgresStore(in_schema(where), cipher)
    return SqliteStore(Path(where) / "sessions.sqlite3", cipher)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rotation_reads_with_the_old_key_writes_with_the_new_and_lets_it_go(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    where = request.getfixturevalue("pg_schema") if backend == "postgres" else str(tmp_path)
    old, new = new_key(), new_key()
    before = open_test_store(backend, where, RecordCipher([old.encode()]))
    for n in range(3):
        before.put("launch", f"k{n}", {"token": {"access_token": f"secret-{n}"}}, 600)
    # The new key first, the old one kept: records sealed before still open.
    both = open_test_store(backend, where, RecordCipher([new.encode(), old.encode()]))
    assert both.get("launch", "k1") == {"token": {"access_token": "secret-1"}}
    both.put("launch", "k9", {"token": {"access_token": "secret-9"}}, 600)
    assert before.get("launch", "k9") is None  # written with the new key: the old cannot open
    # The command an operator runs, in its own process, reading the environment as the app does.
    env = {**os.environ, "ATTACH_TOKEN_KEYS": f"{new},{old}", "ATTACH_DATA_DIR": str(tmp_path)}
    env["ATTACH_SESSION_STORE"] = in_schema(where) if backend == "postgres" else ""
    done = subprocess.run(
        [sys.executable, "-m", "attach_fhir.cli", "token-keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "resealed 4 session records with the newest key"
    after = open_test_store(backend, where, RecordCipher([new.encode()]))  # the old key gone
    assert [after.get("launch", f"k{n}") for n in (0, 1, 2, 9)] == [
        {"token": {"access_token": f"secret-{n}"}} for n in (0, 1, 2, 9)
    ]
    assert before.get("launch", "k0") is None
