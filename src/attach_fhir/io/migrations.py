"""Schema versions of the stores, per component: applied in order by ``attach-fhir db upgrade``,
checked when a PostgreSQL store opens (an embedded SQLite file is upgraded as it opens)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from attach_fhir.errors import AttachError
from attach_fhir.io.sql_store import PostgresEngine, in_schema, postgres_statement

Dialect = Literal["sqlite", "postgres"]

SESSIONS = "sessions"
OUTBOX = "outbox"
AUDIT = "audit"


@dataclass(frozen=True)
class Step:
    """One schema version of a component: the statements that bring the version before to it."""

    version: int
    summary: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_SESSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS attach_session ("
    " ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at DOUBLE PRECISION"
    " NOT NULL, PRIMARY KEY (ns, key))"
)
#: SMART discovery documents and JWKS shared by every instance (``attach_fhir.io.discovery_store``).
_DISCOVERY_TABLE = (
    "CREATE TABLE IF NOT EXISTS attach_discovery ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at DOUBLE PRECISION"
    " NOT NULL, PRIMARY KEY (kind, key))"
)
_OUTBOX_INDEX = "CREATE INDEX IF NOT EXISTS outbox_target ON outbox (target, status, seq)"
_OUTBOX_COLUMNS = (
    "submission_id TEXT NOT NULL UNIQUE, target TEXT NOT NULL, payload TEXT, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, next_attempt_at DOUBLE PRECISION NOT NULL, lease_until DOUBLE "
    "PRECISION, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
    "last_error TEXT, last_error_code TEXT, receipt TEXT)"
)

#: Why the audit table refuses a change (the triggers' message, on both engines).
AUDIT_REFUSED = "audit records are append-only"
_AUDIT_INDEX = "CREATE INDEX IF NOT EXISTS audit_recorded ON audit (recorded)"
_AUDIT_SQLITE = (
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "recorded REAL NOT NULL, event TEXT NOT NULL)",
    _AUDIT_INDEX,
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    f"BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSED}'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    f"BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSED}'); END",
)
# Unqualified names: the table, its function and triggers go where the DSN's search path points.
_AUDIT_POSTGRES = (
    "CREATE TABLE IF NOT EXISTS audit (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "recorded DOUBLE PRECISION NOT NULL, event TEXT NOT NULL)",
    _AUDIT_INDEX,
    "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{AUDIT_REFUSED}'; END $$",
    "DROP TRIGGER IF EXISTS audit_append_only ON audit",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW "
    "EXECUTE FUNCTION audit_refuse_change()",
    "DROP TRIGGER IF EXISTS audit_no_truncate ON audit",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT "
    "EXECUTE FUNCTION audit_refuse_change()",
)

#: Every component's versions, oldest first. Append a step; never edit one that shipped.
STEPS: dict[str, tuple[Step, ...]] = {
    SESSIONS: (
        Step(1, "session records", (_SESSION_TABLE,), (_SESSION_TABLE,)),
        Step(2, "shared discovery cache", (_DISCOVERY_TABLE,), (_DISCOVERY_TABLE,)),
    ),
    OUTBOX: (
        Step(
            1,
            "outbox items",
            (
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                + _OUTBOX_COLUMNS,
                _OUTBOX_INDEX,
            ),
            (
                "CREATE TABLE IF NOT EXISTS outbox (seq BIGINT GENERATED ALWAYS AS IDENTITY "
                "PRIMARY KEY, " + _OUTBOX_COLUMNS,
                _OUTBOX_INDEX,
            ),
        ),
        Step(
            2,
            "claim fence (a worker whose lease ran out cannot record its result)",
            ("ALTER TABLE outbox ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",),
            ("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS fence BIGINT NOT NULL DEFAULT 0",),
        ),
    ),
    AUDIT: (
        Step(
            1,
            "append-only audit records (UPDATE, DELETE, TRUNCATE refused)",
            _AUDIT_SQLITE,
            _AUDIT_POSTGRES,
        ),
    ),
}

_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS attach_schema (component TEXT NOT NULL, version INTEGER NOT "
    "NULL, summary TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (component, version))"
)


class SchemaNotCurrent(AttachError):
    """The store's schema is older than this code (or missing): ``attach-fhir db upgrade``."""

    code = "schema_not_current"
    description = "The database schema is not current: run `attach-fhir db upgrade`."
    status_code = 503


def latest(component: str) -> int:
    """The version this code needs for ``component``."""
    return STEPS[component][-1].version


def _query(conn: Any, dialect: Dialect, query: str, params: Sequence[Any] = ()) -> list[Any]:
    text = postgres_statement(query) if dialect == "postgres" else query
    cursor = conn.execute(text, tuple(params))
    return list(cursor.fetchall()) if cursor.description else []


def current(conn: Any, dialect: Dialect, component: str) -> int:
    """The version applied to ``component`` on ``conn`` (0: none, not even the version table)."""
    if dialect == "postgres":
        found = _query(conn, dialect, "SELECT to_regclass('attach_schema') IS NOT NULL")[0][0]
    else:
        found = bool(
            _query(conn, dialect, "SELECT 1 FROM sqlite_master WHERE name = 'attach_schema'")
        )
    if not found:
        return 0
    rows = _query(
        conn, dialect, "SELECT MAX(version) FROM attach_schema WHERE component = ?", (component,)
    )
    return int(rows[0][0] or 0)


def upgrade(conn: Any, dialect: Dialect, component: str) -> list[Step]:
    """Apply the steps ``component`` lacks, each in its own transaction; returns those applied.

    ``conn`` is in autocommit mode (sqlite3 ``isolation_level=None``, psycopg ``autocommit``).
    Two processes upgrading at once serialise on a lock and the second finds nothing to do.
    """
    applied: list[Step] = []
    for step in STEPS[component]:
        statements = step.postgres if dialect == "postgres" else step.sqlite
        if dialect == "postgres":
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('attach_schema', 0))")
                conn.execute(_VERSIONS)
                if current(conn, dialect, component) >= step.version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                _record(conn, dialect, component, step)
        else:
            conn.execute("BEGIN IMMEDIATE")  # one writer: a second upgrader waits here
            try:
                conn.execute(_VERSIONS)
                if current(conn, dialect, component) >= step.version:
                    conn.execute("COMMIT")
                    continue
                for statement in statements:
                    conn.execute(statement)
                _record(conn, dialect, component, step)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        applied.append(step)
    return applied


def _record(conn: Any, dialect: Dialect, component: str, step: Step) -> None:
    _query(
        conn,
        dialect,
        "INSERT INTO attach_schema (component, version, summary, applied_at) VALUES (?, ?, ?, ?)",
        (component, step.version, step.summary, time.time()),
    )


def require(conn: Any, dialect: Dialect, component: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless ``component`` is at the version this code needs."""
    have, need = current(conn, dialect, component), latest(component)
    if have < need:
        raise SchemaNotCurrent(
            f"The {component} schema is at version {have}, this code needs {need}: "
            "run `attach-fhir db upgrade` (docs/deployment.md)."
        )


def postgres_engine(
    dsn: str, schema: str | None, component: str, error: type[AttachError], what: str
) -> PostgresEngine:
    """An engine on ``dsn`` (in ``schema`` when named) whose ``component`` schema is current;
    ``error`` names ``what`` could not be opened, :class:`SchemaNotCurrent` an old schema."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the postgres extra is not installed
        raise error("PostgreSQL needs the 'postgres' extra (psycopg).") from exc
    engine = PostgresEngine(in_schema(dsn, schema))
    try:
        with engine.connection() as db:
            require(db, "postgres", component)
    except psycopg.Error as exc:
        raise error(f"Cannot open the PostgreSQL {what}: {type(exc).__name__}") from exc
    return engine
