"""The session store, SQLite and PostgreSQL (the real local server), through one interface."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from smart_app import create_app
from smart_app.web.security import COOKIE_NAME
from smart_app.web.session_store import PostgresStore, SessionStore, SqliteStore, open_session_store
from smart_app.web.token_keys import RecordCipher, new_key
from tests.fixtures.postgres import fresh_schema
from tests.fixtures.sql_trace import traced_statements

KEY = new_key()
CIPHER = RecordCipher([KEY.encode()])


@pytest.fixture
def postgres() -> Iterator[str]:
    """The DSN of a fresh schema of this test's own, upgraded."""
    with fresh_schema() as schema:
        yield schema.dsn


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "sessions.sqlite3", CIPHER)
    else:
        yield PostgresStore(request.getfixturevalue("postgres"), CIPHER)


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own (the PostgreSQL table is shared by test runs)."""
    return f"test-{uuid.uuid4().hex}"


def test_round_trip_and_absence(store: SessionStore, ns: str) -> None:
    assert store.get(ns, "k") is None
    store.put(ns, "k", {"patient": "p1", "n": [1, 2]}, ttl=60)
    assert store.get(ns, "k") == {"patient": "p1", "n": [1, 2]}
    store.put(ns, "k", {"patient": "p2"}, ttl=60)
    assert store.get(ns, "k") == {"patient": "p2"}
    store.delete(ns, "k")
    assert store.get(ns, "k") is None


def test_records_expire(store: SessionStore, ns: str) -> None:
    store.put(ns, "short", {"v": 1}, ttl=0.3)
    store.put(ns, "long", {"v": 2}, ttl=60)
    time.sleep(0.5)
    assert store.get(ns, "short") is None
    store.put(ns, "also-short", {"v": 3}, ttl=0.01)
    time.sleep(0.05)
    assert store.take(ns, "also-short") is None  # an expired state cannot be used either
    assert store.purge_expired() >= 1  # "short" is still there until purged
    assert store.get(ns, "long") == {"v": 2}


def test_take_is_single_use_under_a_race(store: SessionStore, ns: str) -> None:
    store.put(ns, "state", {"sid": "s"}, ttl=60)
    won: list[object] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        won.append(store.take(ns, "state"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [w for w in won if w is not None] == [{"sid": "s"}]
    assert won.count(None) == 7


def test_lock_serialises_holders(store: SessionStore, ns: str) -> None:
    inside = 0
    most = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with store.lock(f"{ns}:refresh"):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1


def test_postgres_lock_holds_across_store_instances(ns: str, postgres: str) -> None:
    """Two app processes each have their own store object; the advisory lock spans them."""
    first, second = PostgresStore(postgres, CIPHER), PostgresStore(postgres, CIPHER)
    order: list[str] = []
    entered = threading.Event()

    def holder() -> None:
        with first.lock(ns):
            entered.set()
            time.sleep(0.3)
            order.append("first released")

    t = threading.Thread(target=holder)
    t.start()
    entered.wait(5)
    with second.lock(ns):
        order.append("second acquired")
    t.join()
    assert order == ["first released", "second acquired"]


def test_open_store_picks_the_backend(tmp_path: Path, postgres: str) -> None:
    sqlite = open_session_store(None, tmp_path, CIPHER)
    assert isinstance(sqlite, SqliteStore)
    assert Path(sqlite.path) == tmp_path / "sessions.sqlite3" and Path(sqlite.path).exists()
    assert isinstance(open_session_store(postgres, tmp_path, CIPHER), PostgresStore)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_cookie_holds_an_opaque_id_only(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    iss = "http://127.0.0.1:9/fhir"  # never contacted: the cookie is set before discovery
    registration = {
        "name": "local",
        "iss": [iss],
        "client_id": "c",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    app = create_app(
        {
            "DATA_DIR": str(tmp_path),
            "SESSION_STORE": request.getfixturevalue("postgres") if backend == "postgres" else None,
            "TOKEN_KEYS": KEY if backend == "postgres" else None,
            "REGISTRATIONS_DATA": {"registrations": [registration]},
        }
    )
    store = app.extensions["attach_fhir"].store
    assert isinstance(store, PostgresStore if backend == "postgres" else SqliteStore)
    response = app.test_client().get(f"/launch?iss={iss}&launch=abc")
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    sid = cookie.split(";")[0].removeprefix(f"{COOKIE_NAME}=")
    assert len(sid) == 43 and sid.replace("-", "").replace("_", "").isalnum()  # 256 random bits
    assert set(store.get("browser", sid) or {}) == {"created", "csrf"}
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Path=/"):
        assert attribute in cookie.split("; ")


def test_pooled_sqlite_connections_serve_other_threads_and_see_other_writers(
    tmp_path: Path, ns: str
) -> None:
    writer = SqliteStore(tmp_path / "shared.sqlite3", CIPHER)
    reader = SqliteStore(tmp_path / "shared.sqlite3", CIPHER)  # e.g. a second app on the same file
    writer.put(ns, "k", {"n": 1}, 60)
    assert reader.get(ns, "k") == {"n": 1}
    writer.put(ns, "k", {"n": 2}, 60)  # after the reader's connection went back to its pool
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(reader.get(ns, "k")))
    thread.start()
    thread.join()
    assert seen == [{"n": 2}]
    reader.close()
    assert reader.get(ns, "k") == {"n": 2}  # usable after close: a new connection opens


def test_a_record_that_can_be_derived_again_is_stored_without_waiting_for_the_disk(
    store: SessionStore, ns: str
) -> None:
    store.put(ns, "outcome", {"state": "none"}, 60, durable=False)
    assert store.get(ns, "outcome") == {"state": "none"}
    store.put(ns, "outcome", {"state": "updated"}, 60)
    assert store.get(ns, "outcome") == {"state": "updated"}


def test_sqlite_syncs_every_commit_but_the_ones_marked_not_durable(tmp_path: Path, ns: str) -> None:
    store = SqliteStore(tmp_path / "sessions.sqlite3", CIPHER)
    traced = traced_statements(store)
    store.put(ns, "record", {"n": 1}, 60)
    store.put(ns, "outcome", {"n": 2}, 60, durable=False)
    store.put(ns, "record", {"n": 3}, 60)
    writes = [s.split(" (")[0] if s.startswith("INSERT") else s for s in traced]
    assert writes == [
        "INSERT INTO attach_session",  # the connection opened syncing each commit (below)
        "PRAGMA synchronous=NORMAL",
        "INSERT INTO attach_session",
        "PRAGMA synchronous=FULL",
        "INSERT INTO attach_session",
    ]
    with closing(store.engine._connect()) as db:
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL, as every new one
