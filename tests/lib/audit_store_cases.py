"""Cases every audit store passes (SQLite here, PostgreSQL in tests/e2e): append, read back
from a date, and refuse to change or remove a record, whatever the caller does."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from attach_fhir.io.audit_store import SqlAuditStore

OpenStore = Callable[[], SqlAuditStore]


@pytest.fixture
def store(open_store: OpenStore) -> Iterator[SqlAuditStore]:
    """A fresh store."""
    opened = open_store()
    yield opened
    opened.close()


def event(n: int) -> dict[str, object]:
    """A small AuditEvent-shaped record numbered ``n``."""
    return {"resourceType": "AuditEvent", "id": f"e{n}", "outcome": "0"}


def test_records_come_back_from_the_given_instant_in_the_order_written(
    store: SqlAuditStore,
) -> None:
    for n, at in ((1, 100.0), (2, 200.0), (3, 150.0), (4, 300.0)):
        store.append(event(n), at)
    assert [e["id"] for e in store.since(150.0)] == ["e2", "e3", "e4"]
    assert [e["id"] for e in store.since(0.0)] == ["e1", "e2", "e3", "e4"]
    assert list(store.since(301.0)) == []
    assert store.count() == 4


def test_more_records_than_a_page_all_come_back(store: SqlAuditStore) -> None:
    from attach_fhir.io import audit_store

    total = audit_store.PAGE * 2 + 3
    for n in range(total):
        store.append(event(n), float(n))
    assert [e["id"] for e in store.since(0.0)] == [f"e{n}" for n in range(total)]


def test_the_database_refuses_updates_and_deletes(store: SqlAuditStore) -> None:
    store.append(event(1), 1.0)
    for statement in ("UPDATE {t} SET recorded = 0", "DELETE FROM {t}"):
        with pytest.raises(Exception, match="append-only"):
            store._run(statement)
    assert [e["id"] for e in store.since(0.0)] == ["e1"]


def test_the_store_has_no_method_that_changes_or_removes() -> None:
    public = {name for name in dir(SqlAuditStore) if not name.startswith("_")}
    assert public == {"append", "append_many", "since", "count", "close"}


def test_many_records_are_stored_in_one_call_in_their_order(store: SqlAuditStore) -> None:
    from attach_fhir.io import audit_store

    total = audit_store.PAGE + 7  # two statements
    store.append_many([(event(n), float(n % 3)) for n in range(total)])
    assert [e["id"] for e in store.since(0.0)] == [f"e{n}" for n in range(total)]
    assert [e["id"] for e in store.since(2.0)] == [f"e{n}" for n in range(2, total, 3)]


def test_reopening_keeps_the_records_and_the_refusal(open_store: OpenStore) -> None:
    first = open_store()
    first.append(event(1), 1.0)
    first.close()
    again = open_store()
    try:
        assert [e["id"] for e in again.since(0.0)] == ["e1"]
        with pytest.raises(Exception, match="append-only"):
            again._run("DELETE FROM {t}")
    finally:
        again.close()
