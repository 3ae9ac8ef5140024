"""The audit store's shared cases on the real local PostgreSQL, one fresh schema per test, and
a refusal that holds for any client of the database, TRUNCATE included."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from attach_fhir.io.audit_store import PostgresAuditStore, open_audit_store
from tests.lib.audit_store_cases import *  # noqa: F403  (the shared cases and their fixture)
from tests.lib.audit_store_cases import OpenStore

pytestmark = pytest.mark.e2e

DSN = os.environ.get("ATTACH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def open_store(schema: str) -> OpenStore:
    return lambda: PostgresAuditStore(DSN, schema)


def test_a_postgres_dsn_opens_the_postgres_store(schema: str, tmp_path: object) -> None:
    store = open_audit_store(DSN, "/nonexistent", schema)
    try:
        assert isinstance(store, PostgresAuditStore)
        store.append({"resourceType": "AuditEvent", "id": "a"}, 5.0)
    finally:
        store.close()
    with psycopg.connect(DSN) as conn:
        table = sql.Identifier(schema, "audit")
        rows = conn.execute(sql.SQL("SELECT recorded, event FROM {}").format(table)).fetchall()
    assert rows == [(5.0, '{"resourceType":"AuditEvent","id":"a"}')]


def test_another_client_cannot_truncate_update_or_delete(
    open_store: OpenStore, schema: str
) -> None:
    store = open_store()
    store.append({"resourceType": "AuditEvent"}, 1.0)
    store.close()
    table = sql.Identifier(schema, "audit")
    for statement in ("TRUNCATE {}", "DELETE FROM {}", "UPDATE {} SET recorded = 0"):
        with psycopg.connect(DSN, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql.SQL(statement).format(table))
    with psycopg.connect(DSN) as conn:
        assert conn.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(table)).fetchone() == (1,)
