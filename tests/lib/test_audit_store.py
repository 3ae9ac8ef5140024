"""The SQLite audit store: the shared cases, its file private to the app's user, and where the
settings put it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from attach_fhir.io.audit_store import SqliteAuditStore, configured_dsn, open_audit_store
from tests.lib.audit_store_cases import *  # noqa: F403  (the shared cases and their fixture)
from tests.lib.audit_store_cases import OpenStore


@pytest.fixture
def open_store(tmp_path: Path) -> OpenStore:
    return lambda: SqliteAuditStore(tmp_path / "audit.sqlite3")


def test_the_file_is_readable_by_the_apps_user_only(tmp_path: Path) -> None:
    store = open_audit_store(None, tmp_path)
    store.append({"resourceType": "AuditEvent"}, 1.0)
    store.close()
    assert stat.S_IMODE((tmp_path / "audit.sqlite3").stat().st_mode) == 0o600


def test_the_setting_names_the_store(tmp_path: Path) -> None:
    assert configured_dsn({}) is None
    assert configured_dsn({"AUDIT_STORE": "postgresql://db/x"}) == "postgresql://db/x"
    assert configured_dsn({"ATTACH_AUDIT_STORE": "/a/b.sqlite3"}) == "/a/b.sqlite3"
    elsewhere = tmp_path / "elsewhere.sqlite3"
    store = open_audit_store(f"sqlite:///{elsewhere}", tmp_path / "unused")
    store.close()
    assert elsewhere.is_file()
