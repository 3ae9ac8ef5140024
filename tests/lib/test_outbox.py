"""The outbox on SQLite (the default store); the same cases run on PostgreSQL in
tests/e2e/test_outbox_postgres.py."""

from __future__ import annotations

import random
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from attach_fhir.cli import main
from attach_fhir.io.outbox import Backoff, lease_seconds
from attach_fhir.io.outbox_store import OutboxConfigError, SqliteOutboxStore, open_outbox_store
from tests.lib.outbox_cases import *  # noqa: F403  (the shared cases and their fixtures)
from tests.lib.outbox_cases import FAULT_BASE, T0, StoreSpec


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
        store = open_outbox_store(dsn, data_dir)
        assert isinstance(store, SqliteOutboxStore)
        assert store.path == expected
        store.close()
    monkeypatch.setenv("ATTACH_OUTBOX_DSN", str(tmp_path / "from-env.db"))
    store = open_outbox_store()
    assert isinstance(store, SqliteOutboxStore) and store.path == tmp_path / "from-env.db"
    store.close()


def test_backoff_waits_a_uniform_draw_below_a_doubling_ceiling() -> None:
    draws = iter([0.0, 0.25, 0.5, 0.75, 0.5, 0.5, 0.999, 0.5])
    backoff = Backoff(base=2, cap=100, retry_after_cap=50, draw=lambda: next(draws))
    # Ceilings 2, 4, 8, 16, 32, 64, 100, 100 (2 * 2^(n-1), at most 100), times each draw.
    waits = [backoff.delay(n) for n in range(1, 9)]
    assert waits == pytest.approx([0.0, 1.0, 4.0, 12.0, 16.0, 32.0, 99.9, 50.0])
    assert backoff.delay(3, retry_after=1) == 1  # the server's word wins over our schedule
    assert backoff.delay(1, retry_after=3600) == 50  # ... up to its own cap


def test_backoff_after_weeks_of_failures_is_the_cap() -> None:
    # 2^5000 is no float: the ceiling stops doubling long before.
    assert Backoff(base=5, cap=600, draw=lambda: 0.5).delay(5000) == 300.0


def test_backoff_draws_at_random_by_default() -> None:
    assert Backoff().draw is random.random


def test_a_submission_for_an_idle_server_is_stored_already_claimed(tmp_path: Path) -> None:
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    item, claimed = store.enqueue_claimed("s-1", FAULT_BASE + "/", {"n": 1}, T0, lease=60)
    assert claimed
    assert (item.target, item.status, item.attempts, item.lease_until, item.payload) == (
        FAULT_BASE,
        "delivering",
        1,
        T0 + 60,
        {"n": 1},
    )
    assert store.claim(item, T0 + 1, lease=60) is None  # leased: no second worker gets it
    assert store.due(T0 + 59) == []
    # Stored again (a double click): the stored item as it is, and no second claim.
    again, claimed_again = store.enqueue_claimed("s-1", FAULT_BASE, {"n": 2}, T0 + 2, lease=60)
    assert (claimed_again, again) == (False, item)


def test_a_submission_behind_a_pending_one_waits_its_turn(tmp_path: Path) -> None:
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    store.enqueue("older", FAULT_BASE, {}, T0)
    store.mark_retry("older", T0 + 300, "down", "http_error ConnectError", T0)  # not yet due
    item, claimed = store.enqueue_claimed("newer", FAULT_BASE, {}, T0 + 1, lease=60)
    assert (claimed, item.status, item.attempts, item.lease_until) == (False, "queued", 0, None)
    assert store.due(T0 + 300) == [store.get("older")]  # the older one stays first
    other, claimed_other = store.enqueue_claimed("elsewhere", "http://b/fhir", {}, T0, lease=60)
    assert (claimed_other, other.status) == (True, "delivering")  # other servers don't wait


def test_racing_submissions_for_one_server_claim_exactly_one(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    stores = [SqliteOutboxStore(path) for _ in range(8)]  # one connection each, like processes
    start = threading.Barrier(len(stores))
    claims: list[bool] = []

    def submit(n: int) -> None:
        start.wait()
        claims.append(stores[n].enqueue_claimed(f"s-{n}", FAULT_BASE, {}, T0, lease=60)[1])

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False] * 7 + [True]
    assert stores[0].counts()["delivering"] == 1
    assert stores[0].counts()["queued"] == 7
    for store in stores:
        store.close()


def test_only_the_enqueue_waits_for_the_disk(tmp_path: Path) -> None:
    """The answers are synced when stored; later state changes are synced with the next
    durable commit (a machine crash that loses one just repeats an idempotent delivery)."""
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    traced: list[str] = []
    connect = store.engine._connect

    def traced_connect() -> sqlite3.Connection:
        db = connect()
        db.set_trace_callback(traced.append)
        return db

    store.engine._connect = traced_connect  # type: ignore[method-assign]
    store.close()  # pooled connections from opening go; the next one is traced
    store.enqueue_claimed("s-1", FAULT_BASE, {}, T0, lease=60)
    store.mark_delivered("s-1", {"urn:uuid:x": "QuestionnaireResponse/1"}, T0)
    item = store.enqueue("s-2", FAULT_BASE, {}, T0)
    store.claim(item, T0, lease=60)
    store.enqueue("s-3", FAULT_BASE, {}, T0)
    steps = [s.split(" (")[0].split(" SET")[0].split(" FROM")[0] for s in traced]
    writes = [s for s in steps if not s.startswith("SELECT")]
    assert writes == [
        "INSERT INTO outbox",  # s-1 stored (and claimed): synced (FULL since opening)
        "PRAGMA synchronous=NORMAL",
        "UPDATE outbox",  # delivered: synced with the next durable commit
        "PRAGMA synchronous=FULL",
        "INSERT INTO outbox",  # s-2 stored: synced
        "PRAGMA synchronous=NORMAL",
        "UPDATE outbox",  # claimed
        "PRAGMA synchronous=FULL",
        "INSERT INTO outbox",  # s-3 stored: synced
    ]
    with store.engine.connection() as db:
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)
    store.close()


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 120.0), ("", 120.0), ("30", 30.0), (45, 45.0), (0.5, 0.5)]
)
def test_the_lease_setting_reads_seconds_above_zero(value: object, seconds: float) -> None:
    assert lease_seconds(value) == seconds


@pytest.mark.parametrize("value", ["0", 0, "-5", "soon", "inf", "nan", True, [30]])
def test_the_lease_setting_refuses_what_is_not_seconds_above_zero(value: object) -> None:
    with pytest.raises(OutboxConfigError) as refused:
        lease_seconds(value)
    assert "ATTACH_OUTBOX_LEASE_SECONDS" in refused.value.description


def test_drain_refuses_a_bad_lease_setting_before_opening_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATTACH_OUTBOX_LEASE_SECONDS", "-1")
    path = tmp_path / "outbox.sqlite3"
    assert main(["outbox", "drain", "--dsn", str(path)]) == 2
    assert "ATTACH_OUTBOX_LEASE_SECONDS must be a number" in capsys.readouterr().err
    assert not path.exists()
