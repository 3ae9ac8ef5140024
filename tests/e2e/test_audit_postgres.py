"""The audit store's shared cases on the real local PostgreSQL, one fresh schema per test
(made by `attach-fhir db upgrade`'s code), a refusal that holds for any client of the database,
TRUNCATE included, and a schema never upgraded refused."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from attach_fhir.io.audit_store import PostgresAuditStore, open_audit_store
from attach_fhir.io.migrations import SchemaNotCurrent
from tests.fixtures.postgres import Schema, fresh_schema
from tests.lib.audit_store_cases import *  # noqa: F403  (the shared cases and their fixture)
from tests.lib.audit_store_cases import OpenStore

pytestmark = pytest.mark.e2e


@pytest.fixture
def schema() -> Iterator[Schema]:
    with fresh_schema(prefix="audit") as made:
        yield made


@pytest.fixture
def open_store(schema: Schema) -> OpenStore:
    return lambda: PostgresAuditStore(schema.dsn)


def test_a_postgres_dsn_opens_the_store_where_its_search_path_points(
    schema: Schema,
) -> None:
    store = open_audit_store(schema.dsn, "/nonexistent")
    try:
        assert isinstance(store, PostgresAuditStore)
        store.append({"resourceType": "AuditEvent", "id": "a"}, 5.0)
    finally:
        store.close()
    with psycopg.connect(schema.dsn) as conn:
        rows = conn.execute("SELECT recorded, event FROM audit").fetchall()
        where = conn.execute(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'audit'::regclass"
        ).fetchone()
    assert rows == [(5.0, '{"resourceType":"AuditEvent","id":"a"}')]
    assert where == (schema.name,)


def test_another_client_cannot_truncate_update_or_delete(
    open_store: OpenStore, schema: Schema
) -> None:
    store = open_store()
    store.append({"resourceType": "AuditEvent"}, 1.0)
    store.close()
    for statement in ("TRUNCATE audit", "DELETE FROM audit", "UPDATE audit SET recorded = 0"):
        with psycopg.connect(schema.dsn, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)  # type: ignore[arg-type]
    with psycopg.connect(schema.dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone() == (1,)


def test_a_schema_never_upgraded_is_refused_and_left_empty() -> None:
    with fresh_schema(upgraded=False, prefix="audit") as bare:
        with pytest.raises(SchemaNotCurrent) as refused:
            PostgresAuditStore(bare.dsn)
        assert str(refused.value) == (
            "The audit schema is at version 0, this code needs 1: "
            "run `attach-fhir db upgrade` (docs/deployment.md)."
        )
        with psycopg.connect(bare.dsn) as conn:
            assert conn.execute("SELECT to_regclass('audit') IS NULL").fetchone() == (True,)
