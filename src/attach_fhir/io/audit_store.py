"""The append-only audit store: AuditEvents in SQLite (a 0600 file) or PostgreSQL (a DSN).

Records are only ever added: the store has no update or delete, and the database itself refuses
them (triggers on both engines), so a bug or a stolen app credential cannot rewrite the trail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from attach_fhir.errors import AttachError
from attach_fhir.io.private_files import private_sqlite
from attach_fhir.io.sql_store import SqlStore, is_shared, postgres_statement, sqlite_file

FILE_NAME = "audit.sqlite3"
#: How many rows ``since`` fetches at a time (the export streams; memory stays flat).
PAGE = 500
_REFUSED = "audit records are append-only"


class AuditStoreError(AttachError):
    """The audit store location is unusable."""

    code = "audit_store_error"
    description = "The audit store could not be opened."
    status_code = 500


def configured_dsn(settings: Mapping[str, Any]) -> str | None:
    """Where the audit store lives, from the settings (``AUDIT_STORE``, or ``ATTACH_AUDIT_STORE``
    in the environment): a ``postgresql://`` DSN, ``sqlite:///path`` or a path; None for
    ``audit.sqlite3`` in the data directory. The one place to point it elsewhere."""
    value = settings.get("AUDIT_STORE") or settings.get("ATTACH_AUDIT_STORE")
    return str(value) if value else None


class SqlAuditStore(SqlStore):
    """Append and read back, nothing else; ``{t}`` is the table, ``?`` the parameters."""

    def append(self, event: Mapping[str, Any], recorded: float) -> None:
        """Store one AuditEvent recorded at ``recorded`` (seconds since the epoch)."""
        self.append_many([(event, recorded)])

    def append_many(self, records: Sequence[tuple[Mapping[str, Any], float]]) -> None:
        """Store AuditEvents, each with its ``recorded`` time, in one statement (one commit)."""
        for start in range(0, len(records), PAGE):
            chunk = records[start : start + PAGE]
            params: list[Any] = []
            for event, recorded in chunk:
                params += [recorded, json.dumps(event, separators=(",", ":"))]
            values = ", ".join(["(?, ?)"] * len(chunk))
            # Only placeholders are joined in; the data travels as parameters.
            self._run(f"INSERT INTO {{t}} (recorded, event) VALUES {values}", params)  # noqa: S608

    def since(self, start: float) -> Iterator[dict[str, Any]]:
        """The AuditEvents recorded at ``start`` or later, oldest first (streamed by pages)."""
        last = 0
        while True:
            rows, _ = self._run(
                "SELECT seq, event FROM {t} WHERE recorded >= ? AND seq > ? ORDER BY seq LIMIT ?",
                (start, last, PAGE),
            )
            for row in rows:
                last = int(row[0])
                event: dict[str, Any] = json.loads(row[1])
                yield event
            if len(rows) < PAGE:
                return

    def count(self) -> int:
        """How many records the store holds."""
        rows, _ = self._run("SELECT COUNT(*) FROM {t}")
        return int(rows[0][0])


_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "recorded REAL NOT NULL, event TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_recorded ON audit (recorded)",
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END",
)


class SqliteAuditStore(SqlAuditStore):
    """The audit trail in a SQLite file, ``0600``, WAL.

    Commits use ``synchronous=NORMAL``: a record survives the app crashing, and is lost only if
    the machine itself fails before the next checkpoint (one fsync per request would cost more
    than the request's own work).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            private_sqlite(self.path)
            self._conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SQLITE_SCHEMA:
                self._conn.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise AuditStoreError(f"Cannot open the audit file {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        del durable  # always NORMAL (see the class)
        with self._lock:
            cursor = self._conn.execute(query.replace("{t}", "audit"), tuple(params))
            return cursor.fetchall(), cursor.rowcount

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()


class PostgresAuditStore(SqlAuditStore):
    """The audit trail in ``<schema>.audit`` (psycopg 3, autocommit); a trigger refuses
    UPDATE, DELETE and TRUNCATE."""

    def __init__(self, dsn: str, schema: str = "attach_fhir") -> None:
        try:
            import psycopg
            from psycopg import sql
        except ImportError as exc:  # pragma: no cover - the postgres extra is not installed
            raise AuditStoreError("PostgreSQL needs the 'postgres' extra (psycopg).") from exc
        self._sql = sql
        self._table = sql.Identifier(schema, "audit")
        self._dsn = dsn
        self._lost = psycopg.OperationalError
        self._connect = psycopg.connect
        refuse = sql.Identifier(schema, "audit_refuse_change")
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
            with self._conn.transaction():
                self._conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                self._conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {t} (seq BIGINT GENERATED ALWAYS AS IDENTITY "
                        "PRIMARY KEY, recorded DOUBLE PRECISION NOT NULL, event TEXT NOT NULL)"
                    ).format(t=self._table)
                )
                self._conn.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS audit_recorded ON {t} (recorded)").format(
                        t=self._table
                    )
                )
                self._conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION '" + _REFUSED + "'; END $$"
                    ).format(f=refuse)
                )
                for event, level in (("UPDATE OR DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
                    name = "audit_append_only" if level == "ROW" else "audit_no_truncate"
                    self._conn.execute(
                        sql.SQL("DROP TRIGGER IF EXISTS {n} ON {t}").format(
                            n=sql.Identifier(name), t=self._table
                        )
                    )
                    self._conn.execute(
                        sql.SQL(
                            "CREATE TRIGGER {n} BEFORE "
                            + event
                            + " ON {t} FOR EACH "
                            + level
                            + " EXECUTE FUNCTION {f}()"
                        ).format(n=sql.Identifier(name), t=self._table, f=refuse)
                    )
        except psycopg.Error as exc:
            raise AuditStoreError(
                f"Cannot open the PostgreSQL audit store: {type(exc).__name__}"
            ) from exc
        self._lock = threading.Lock()

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        del durable
        statement = self._sql.SQL(postgres_statement(query)).format(t=self._table)
        with self._lock:
            try:
                cursor = self._conn.execute(statement, tuple(params))
            except self._lost:
                # The connection dropped (server restart): reconnect once and send again; a
                # record whose commit was lost with the answer may be kept twice, never none.
                self._conn.close()
                self._conn = self._connect(self._dsn, autocommit=True)
                cursor = self._conn.execute(statement, tuple(params))
            rows: list[Sequence[Any]] = list(cursor.fetchall()) if cursor.description else []
            return rows, cursor.rowcount

    def close(self) -> None:
        """Close the PostgreSQL connection."""
        self._conn.close()


def open_audit_store(
    dsn: str | None, data_dir: str | os.PathLike[str], schema: str = "attach_fhir"
) -> SqlAuditStore:
    """PostgreSQL for a ``postgresql://`` DSN, else the SQLite file it names (or
    ``audit.sqlite3`` in ``data_dir``)."""
    if is_shared(dsn):
        assert dsn is not None
        return PostgresAuditStore(dsn, schema)
    return SqliteAuditStore(sqlite_file(dsn, data_dir, FILE_NAME))
