"""The SQLite audit store: the shared cases, its file private to the app's user, and where the
settings put it."""

from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from attach_fhir.io.audit_store import SqliteAuditStore, configured_dsn, open_audit_store
from tests.fixtures.sql_trace import traced_statements
from tests.lib.audit_store_cases import *  # noqa: F403  (the shared cases and their fixture)
from tests.lib.audit_store_cases import OpenStore


@pytest.fixture
def open_store(tmp_path: Path) -> OpenStore:
    return lambda: SqliteAuditStore(tmp_path / "audit.sqlite3")


def test_the_file_carries_the_audit_schema_version(tmp_path: Path) -> None:
    open_audit_store(None, tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "audit.sqlite3")) as db:
        versions = db.execute("SELECT component, version FROM attach_schema").fetchall()
    assert versions == [("audit", 1)]


def test_a_file_from_before_the_versions_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:  # as the store made it before the migration
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, recorded REAL NOT NULL, "
            "event TEXT NOT NULL)"
        )
        db.execute('INSERT INTO audit (recorded, event) VALUES (3.0, \'{"id":"old"}\')')
    store = SqliteAuditStore(path)
    try:
        store.append({"id": "new"}, 4.0)
        assert list(store.since(0.0)) == [{"id": "old"}, {"id": "new"}]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._run("DELETE FROM {t}")
    finally:
        store.close()


def test_a_page_s_records_are_one_insert_on_a_connection_already_not_syncing(
    tmp_path: Path,
) -> None:
    """One statement a page: the connection opens with synchronous=NORMAL, so appending sends
    no PRAGMA before and after the INSERT (it used to send two)."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    traced = traced_statements(store)
    store.append_many([({"id": "a"}, 1.0), ({"id": "b"}, 2.0)])
    store.append({"id": "c"}, 3.0)
    assert [s.split(" (")[0] for s in traced] == ["INSERT INTO audit", "INSERT INTO audit"]
    with closing(store.engine._connect()) as db:
        assert db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL, as every new one
    assert list(store.since(0.0)) == [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    store.close()


def test_the_file_is_readable_by_the_apps_user_only(tmp_path: Path) -> None:
    store = open_audit_store(None, tmp_path)
    store.append({"resourceType": "AuditEvent"}, 1.0)
    store.close()
    assert stat.S_IMODE((tmp_path / "audit.sqlite3").stat().st_mode) == 0o600


def test_the_setting_names_the_store(tmp_path: Path) -> None:
    assert configured_dsn({}) is None
    assert configured_dsn({"AUDIT_STORE": "postgresql://db/x"}) == "postgresql://db/x"
    assert configured_dsn({"AUDIT_STORE": None, "DATABASE_URL": "postgresql://db/y"}) == (
        "postgresql://db/y"
    )
    both = {"AUDIT_STORE": "/a/b.sqlite3", "DATABASE_URL": "postgresql://db/y"}
    assert configured_dsn(both) == "/a/b.sqlite3"
    environ = {"ATTACH_DATABASE_URL": "postgresql://db/z", "DATABASE_URL": "postgresql://other"}
    assert configured_dsn(environ, prefix="ATTACH_") == "postgresql://db/z"
    assert configured_dsn({"ATTACH_AUDIT_STORE": "/a/b.sqlite3"}, prefix="ATTACH_") == (
        "/a/b.sqlite3"
    )
    elsewhere = tmp_path / "elsewhere.sqlite3"
    store = open_audit_store(f"sqlite:///{elsewhere}", tmp_path / "unused")
    store.close()
    assert elsewhere.is_file()
