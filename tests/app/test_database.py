"""One setting, ATTACH_DATABASE_URL, puts every store (the audit trail too) in PostgreSQL;
per-store settings still win; schema versions come from `attach-fhir db upgrade`, and the app
refuses a schema not current."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from attach_fhir.cli import main
from attach_fhir.io.audit_store import PostgresAuditStore, SqliteAuditStore
from attach_fhir.io.migrations import SchemaNotCurrent
from attach_fhir.io.outbox_store import PostgresOutboxStore, SqliteOutboxStore
from smart_app import create_app, stop
from smart_app.records import delivery
from smart_app.web.session_store import PostgresStore, SqliteStore
from smart_app.web.token_keys import new_key
from tests.fixtures.postgres import DSN, Schema, fresh_schema

KEY = new_key()


@pytest.fixture(autouse=True)
def no_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ATTACH_DATABASE_URL",
        "ATTACH_SESSION_STORE",
        "ATTACH_OUTBOX_DSN",
        "ATTACH_OUTBOX_SCHEMA",
        "ATTACH_AUDIT_STORE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def schema() -> Iterator[Schema]:
    with fresh_schema() as made:
        yield made


def rows(schema: Schema, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(DSN) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema.name)))
        return list(conn.execute(query).fetchall())  # type: ignore[arg-type]


def test_one_database_url_puts_every_store_in_postgresql(schema: Schema, tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": schema.dsn, "TOKEN_KEYS": KEY, "DATA_DIR": str(tmp_path)})
    try:
        store = app.extensions["attach_fhir"].store
        outbox = delivery.outbox_services(app).outbox.store
        trail = app.extensions["attach_audit"].store
        assert isinstance(store, PostgresStore) and isinstance(outbox, PostgresOutboxStore)
        assert isinstance(trail, PostgresAuditStore)
        store.put("launch", "L-1", {"n": 1}, 60)
        outbox.enqueue("s-1", "http://a/fhir", {}, 1.0)
        trail.append({"resourceType": "AuditEvent", "id": "a-1"}, 1.0)
        assert rows(schema, "SELECT ns, key FROM attach_session") == [("launch", "L-1")]
        assert rows(schema, "SELECT submission_id FROM outbox") == [("s-1",)]
        assert rows(schema, "SELECT event FROM audit") == [
            ('{"resourceType":"AuditEvent","id":"a-1"}',)
        ]
        for name in ("sessions", "outbox", "audit"):
            assert not (tmp_path / f"{name}.sqlite3").exists()
    finally:
        stop(app)


def test_a_store_of_its_own_overrides_the_database_url(schema: Schema, tmp_path: Path) -> None:
    own = tmp_path / "elsewhere" / "outbox.sqlite3"
    own.parent.mkdir()
    app = create_app(
        {
            "DATABASE_URL": schema.dsn,
            "OUTBOX_DSN": f"sqlite:///{own}",
            "TOKEN_KEYS": KEY,
            "DATA_DIR": str(tmp_path),
        }
    )
    try:
        assert isinstance(app.extensions["attach_fhir"].store, PostgresStore)
        outbox = delivery.outbox_services(app).outbox.store
        assert isinstance(outbox, SqliteOutboxStore) and outbox.path == own
    finally:
        stop(app)


def test_without_a_database_url_every_store_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    app = create_app({"DATA_DIR": str(tmp_path)})
    try:
        store = app.extensions["attach_fhir"].store
        outbox = delivery.outbox_services(app).outbox.store
        trail = app.extensions["attach_audit"].store
        assert isinstance(store, SqliteStore) and Path(store.path) == tmp_path / "sessions.sqlite3"
        assert isinstance(outbox, SqliteOutboxStore) and outbox.path == tmp_path / "outbox.sqlite3"
        assert isinstance(trail, SqliteAuditStore) and trail.path == tmp_path / "audit.sqlite3"
    finally:
        stop(app)


def test_the_app_refuses_a_postgresql_schema_never_upgraded(tmp_path: Path) -> None:
    with fresh_schema(upgraded=False) as bare:
        with pytest.raises(SchemaNotCurrent) as refused:
            create_app({"DATABASE_URL": bare.dsn, "TOKEN_KEYS": KEY, "DATA_DIR": str(tmp_path)})
        assert str(refused.value) == (
            "The sessions schema is at version 0, this code needs 2: "
            "run `attach-fhir db upgrade` (docs/deployment.md)."
        )
        assert rows(bare, "SELECT to_regclass('attach_session') IS NULL") == [(True,)]


def test_only_the_database_url_puts_the_audit_trail_in_postgresql_and_export_reads_it(
    schema: Schema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATTACH_DATABASE_URL", schema.dsn)
    monkeypatch.setenv("ATTACH_DATA_DIR", str(tmp_path / "data"))
    app = create_app({"TOKEN_KEYS": KEY})
    try:
        client = app.test_client()
        for launch in ("a", "b"):  # an iss not registered: refused, and audited
            page = client.get(f"/launch?iss=https://ehr.invalid/fhir&launch={launch}")
            assert page.status_code == 403
    finally:
        stop(app)
    assert rows(schema, "SELECT COUNT(*) FROM audit") == [(2,)]
    assert not (tmp_path / "data" / "audit.sqlite3").exists()

    assert main(["audit", "export", "--since", "2000-01-01"]) == 0
    out, err = capsys.readouterr()
    exported = [json.loads(line) for line in out.splitlines()]
    assert [e["subtype"][0]["code"] for e in exported] == ["iss-refused", "iss-refused"]
    assert err == "attach-fhir audit: 2 AuditEvents\n"


def test_the_app_refuses_an_audit_schema_never_upgraded(schema: Schema, tmp_path: Path) -> None:
    with psycopg.connect(schema.dsn, autocommit=True) as conn:  # as before the audit migration
        conn.execute("DELETE FROM attach_schema WHERE component = 'audit'")
    config = {"DATABASE_URL": schema.dsn, "TOKEN_KEYS": KEY, "DATA_DIR": str(tmp_path)}
    with pytest.raises(SchemaNotCurrent, match="audit schema is at version 0, this code needs 1"):
        create_app(config)
    assert main(["db", "upgrade", "--database-url", schema.dsn]) == 0
    stop(create_app(config))  # starts now


def test_db_upgrade_brings_an_old_schema_up_and_the_app_starts(
    schema: Schema, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(schema.dsn, autocommit=True) as conn:  # as before the claim fence
        conn.execute("DELETE FROM attach_schema WHERE component = 'outbox' AND version = 2")
        conn.execute("ALTER TABLE outbox DROP COLUMN fence")
        # and before the shared discovery cache
        conn.execute("DELETE FROM attach_schema WHERE component = 'sessions' AND version = 2")
        conn.execute("DROP TABLE attach_discovery")
    config = {"DATABASE_URL": schema.dsn, "TOKEN_KEYS": KEY, "DATA_DIR": str(tmp_path)}
    old = "sessions schema is at version 1, this code needs 2"
    with pytest.raises(SchemaNotCurrent, match=old):
        create_app(config)

    assert main(["db", "status", "--database-url", schema.dsn]) == 1
    assert main(["db", "upgrade", "--database-url", schema.dsn]) == 0
    assert main(["db", "status", "--database-url", schema.dsn, "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("version 1 of 2, needs `attach-fhir db upgrade`")  # sessions
    assert out[1].endswith("version 1 of 2, needs `attach-fhir db upgrade`")
    assert out[2].endswith("version 1 of 1, current")  # audit
    assert out[3] == "sessions: postgresql://127.0.0.1:5432/test: at version 2 (applied: 2)"
    assert out[4] == "outbox: postgresql://127.0.0.1:5432/test: at version 2 (applied: 2)"
    assert out[5] == "audit: postgresql://127.0.0.1:5432/test: at version 1 (applied: none needed)"
    status = json.loads("\n".join(out[6:]))
    assert [(s["component"], s["version"], s["current"]) for s in status] == [
        ("sessions", 2, True),
        ("outbox", 2, True),
        ("audit", 1, True),
    ]
    assert rows(
        schema,
        "SELECT column_name FROM information_schema.columns WHERE "
        "table_schema = current_schema() AND column_name = 'fence'",
    ) == [("fence",)]
    assert rows(schema, "SELECT to_regclass('attach_discovery') IS NOT NULL") == [(True,)]
    stop(create_app(config))  # starts now


def test_db_upgrade_makes_the_sqlite_stores_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["db", "status", "--data-dir", str(data)]) == 1
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    assert main(["db", "status", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        f"sessions: {data / 'sessions.sqlite3'}: version 0 of 2, needs `attach-fhir db upgrade`",
        f"outbox: {data / 'outbox.sqlite3'}: version 0 of 2, needs `attach-fhir db upgrade`",
        f"audit: {data / 'audit.sqlite3'}: version 0 of 1, needs `attach-fhir db upgrade`",
    ]
    assert out[3:6] == [
        f"sessions: {data / 'sessions.sqlite3'}: at version 2 (applied: 1, 2)",
        f"outbox: {data / 'outbox.sqlite3'}: at version 2 (applied: 1, 2)",
        f"audit: {data / 'audit.sqlite3'}: at version 1 (applied: 1)",
    ]
    assert out[6:] == [
        f"sessions: {data / 'sessions.sqlite3'}: version 2 of 2, current",
        f"outbox: {data / 'outbox.sqlite3'}: version 2 of 2, current",
        f"audit: {data / 'audit.sqlite3'}: version 1 of 1, current",
    ]
    for name in ("sessions.sqlite3", "outbox.sqlite3", "audit.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600


def test_an_outbox_file_from_before_the_versions_is_upgraded_as_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:  # the table as releases before versions made it
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, submission_id TEXT NOT "
            "NULL UNIQUE, target TEXT NOT NULL, payload TEXT, status TEXT NOT NULL, attempts "
            "INTEGER NOT NULL, next_attempt_at REAL NOT NULL, lease_until REAL, created_at REAL "
            "NOT NULL, updated_at REAL NOT NULL, last_error TEXT, last_error_code TEXT, receipt "
            "TEXT)"
        )
        db.execute(
            "INSERT INTO outbox (submission_id, target, payload, status, attempts, "
            "next_attempt_at, created_at, updated_at) VALUES ('s-old', 'http://a/fhir', '{}', "
            "'queued', 0, 1, 1, 1)"
        )
    store = SqliteOutboxStore(path)
    try:
        old = store.get("s-old")
        assert old is not None and (old.status, old.payload) == ("queued", {})
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT fence FROM outbox").fetchall() == [(0,)]
        assert db.execute("SELECT component, version FROM attach_schema").fetchall() == [
            ("outbox", 1),
            ("outbox", 2),
        ]
