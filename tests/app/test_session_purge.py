"""Expired session records are purged now and then, per process, without a purge per request."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from smart_app import create_app
from smart_app.web.session_purge import Purger
from smart_app.web.session_store import SqliteStore
from smart_app.web.token_keys import RecordCipher, new_key

CIPHER = RecordCipher([new_key().encode()])


def rows(path: Path) -> dict[str, int]:
    """Rows in the session table by namespace, read straight from the file."""
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT ns, count(*) FROM attach_session GROUP BY ns").fetchall()
    return {str(ns): int(n) for ns, n in found}


def test_a_purge_deletes_only_expired_records_and_only_when_due(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", CIPHER)
    now = [1000.0]
    purger = Purger(store, 300, clock=lambda: now[0])
    for n in range(3):
        store.put("gone", f"k{n}", {"n": n}, ttl=0)  # expired as written
    store.put("kept", "k", {"n": 9}, ttl=3600)
    assert purger.maybe_purge() == 3  # the first request of a process purges
    assert rows(store.path) == {"kept": 1}
    store.put("gone", "again", {"n": 1}, ttl=0)
    now[0] += 299.0
    assert purger.maybe_purge() is None  # not due: the row stays
    assert rows(store.path) == {"kept": 1, "gone": 1}
    now[0] += 1.0
    assert purger.maybe_purge() == 1
    assert rows(store.path) == {"kept": 1}
    assert store.get("kept", "k") == {"n": 9}


def test_interval_zero_never_purges(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", CIPHER)
    store.put("gone", "k", {"n": 1}, ttl=0)
    assert Purger(store, 0, clock=lambda: 1e9).maybe_purge() is None
    assert rows(store.path) == {"gone": 1}


def test_the_app_purges_after_a_request(tmp_path: Path) -> None:
    app = create_app({"DATA_DIR": str(tmp_path), "SESSION_PURGE_INTERVAL": 300})
    store = app.extensions["attach_fhir"].store
    assert isinstance(store, SqliteStore)
    store.put("launch", "old", {"n": 1}, ttl=0)
    store.put("launch", "live", {"n": 2}, ttl=3600)
    assert rows(store.path) == {"launch": 2}
    assert app.test_client().get("/healthz").status_code == 200
    deadline = time.monotonic() + 5  # teardown runs as the response closes
    while rows(store.path) != {"launch": 1} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(store.path) == {"launch": 1}
    assert store.get("launch", "live") == {"n": 2}
