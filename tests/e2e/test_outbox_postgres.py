"""The outbox cases of tests/lib/outbox_cases.py on the real local PostgreSQL, one fresh schema
per test (dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from attach_fhir.io.outbox_store import PostgresOutboxStore, open_outbox_store
from tests.fixtures.postgres import DSN, fresh_schema
from tests.lib.outbox_cases import *  # noqa: F403  (the shared cases and their fixtures)
from tests.lib.outbox_cases import StoreSpec

pytestmark = pytest.mark.e2e


@pytest.fixture
def store_spec() -> Iterator[StoreSpec]:
    with fresh_schema(prefix="outbox_test") as schema:
        yield StoreSpec(
            open=lambda: PostgresOutboxStore(DSN, schema.name),
            dsn=DSN,
            env={"ATTACH_OUTBOX_SCHEMA": schema.name},
        )


def test_a_postgres_dsn_opens_the_postgres_store(
    store_spec: StoreSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTACH_OUTBOX_SCHEMA", store_spec.env["ATTACH_OUTBOX_SCHEMA"])
    monkeypatch.setenv("ATTACH_OUTBOX_DSN", DSN)
    store = open_outbox_store()
    try:
        assert isinstance(store, PostgresOutboxStore)
        store.enqueue("s-1", "http://a/fhir", {}, 1.0)
    finally:
        store.close()
    with psycopg.connect(DSN) as conn:
        table = sql.Identifier(store_spec.env["ATTACH_OUTBOX_SCHEMA"], "outbox")
        rows = conn.execute(sql.SQL("SELECT submission_id, status FROM {}").format(table))
        assert rows.fetchall() == [("s-1", "queued")]


def test_the_store_reconnects_after_losing_its_connection(store_spec: StoreSpec) -> None:
    store = store_spec.open()
    try:
        store.enqueue("s-1", "http://a/fhir", {}, 1.0)
        pids = {db.info.backend_pid for db in store.engine._idle}
        assert len(pids) == 1  # one statement at a time: one pooled connection
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pids.pop(),))
        assert store.counts()["queued"] == 1  # on a new connection, the dead one dropped
    finally:
        store.close()
