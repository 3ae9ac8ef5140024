"""The outbox on SQLite (the default store); the same cases run on PostgreSQL in
tests/e2e/test_outbox_postgres.py."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from attach_fhir.outbox import Backoff
from attach_fhir.outbox_store import SqliteOutboxStore, open_store
from tests.lib.outbox_cases import *  # noqa: F403  (the shared cases and their fixtures)
from tests.lib.outbox_cases import StoreSpec


@pytest.fixture
def store_spec(tmp_path: Path) -> StoreSpec:
    path = tmp_path / "data" / "outbox.sqlite3"
    return StoreSpec(open=lambda: SqliteOutboxStore(path), dsn=str(path))


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    store = SqliteOutboxStore(tmp_path / "new" / "outbox.sqlite3")
    store.close()
    assert stat.S_IMODE((tmp_path / "new" / "outbox.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_store_location_from_arguments_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATTACH_OUTBOX_DSN", raising=False)
    monkeypatch.setenv("ATTACH_DATA_DIR", str(tmp_path / "env-dir"))
    cases = {
        (None, None): tmp_path / "env-dir" / "outbox.sqlite3",
        (None, str(tmp_path / "arg-dir")): tmp_path / "arg-dir" / "outbox.sqlite3",
        (f"sqlite:///{tmp_path}/u.db", None): tmp_path / "u.db",
        (str(tmp_path / "plain.db"), None): tmp_path / "plain.db",
    }
    for (dsn, data_dir), expected in cases.items():
        store = open_store(dsn, data_dir)
        assert isinstance(store, SqliteOutboxStore)
        assert store.path == expected
        store.close()
    monkeypatch.setenv("ATTACH_OUTBOX_DSN", str(tmp_path / "from-env.db"))
    store = open_store()
    assert isinstance(store, SqliteOutboxStore) and store.path == tmp_path / "from-env.db"
    store.close()


def test_backoff_schedule() -> None:
    backoff = Backoff(base=2, cap=100, retry_after_cap=50)
    assert [backoff.delay(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 64, 100, 100]
    assert backoff.delay(3, retry_after=1) == 1  # the server's word wins over our schedule
    assert backoff.delay(1, retry_after=3600) == 50  # ... up to its own cap
