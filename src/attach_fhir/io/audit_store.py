"""The append-only audit store: AuditEvents in SQLite (a 0600 file) or PostgreSQL (a DSN).

Records are only ever added: the store has no update or delete, and the database refuses them
(triggers from the "audit" migration), so a bug or a stolen credential cannot rewrite the trail.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from attach_fhir.errors import AttachError
from attach_fhir.io import migrations
from attach_fhir.io.sql_store import (
    SqliteEngine,
    SqlStore,
    is_shared,
    sqlite_file,
    store_url,
)

FILE_NAME = "audit.sqlite3"
#: How many rows ``since`` fetches at a time (the export streams; memory stays flat).
PAGE = 500
#: Compact JSON, built once (``json.dumps`` with options builds an encoder per call); the
#: records are trees the app built, never cyclic.
_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class AuditStoreError(AttachError):
    """The audit store location is unusable."""

    code = "audit_store_error"
    description = "The audit store could not be opened."
    status_code = 500


def configured_dsn(settings: Mapping[str, Any], prefix: str = "") -> str | None:
    """Where the audit store lives: ``AUDIT_STORE`` when set, else ``DATABASE_URL`` (each read
    as ``prefix`` + name: the app's settings have none, the environment ``ATTACH_``); a
    ``postgresql://`` DSN, ``sqlite:///path`` or a path; None for ``audit.sqlite3`` in the data
    directory. The one place that decides, for the app and ``attach-fhir audit export``."""
    value = store_url(settings.get(prefix + "AUDIT_STORE"), settings.get(prefix + "DATABASE_URL"))
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
                params += [recorded, _COMPACT.encode(event)]
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


class SqliteAuditStore(SqlAuditStore):
    """The audit trail in a SQLite file, ``0600``, WAL, upgraded as it opens.

    Commits use ``synchronous=NORMAL``: a record survives the app crashing, and is lost only if
    the machine itself fails before the next checkpoint (one fsync per request would cost more
    than the request's own work).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.engine = SqliteEngine(self.path, durable=False)  # see the class
            with self.engine.connection() as db:
                migrations.upgrade(db, "sqlite", migrations.AUDIT)
        except (OSError, sqlite3.Error) as exc:
            raise AuditStoreError(f"Cannot open the audit file {self.path}: {exc}") from exc

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        del durable  # always NORMAL (see the class)
        return self.engine.run(query.replace("{t}", "audit"), params, False)


class PostgresAuditStore(SqlAuditStore):
    """The audit trail in the table ``audit``, in ``schema`` when one is named, else where the
    DSN's search path puts it; ``attach-fhir db upgrade`` makes it, with triggers refusing
    UPDATE, DELETE and TRUNCATE. Every record is synced at its commit."""

    def __init__(self, dsn: str, schema: str | None = None) -> None:
        self.engine = migrations.postgres_engine(
            dsn, schema, migrations.AUDIT, AuditStoreError, "audit store"
        )

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        # A dropped connection (a server restart) is reopened and the statement sent again by
        # the engine: a record whose commit was lost with the answer may be kept twice, never
        # none.
        del durable
        return self.engine.run(query.replace("{t}", "audit"), params, True)


def open_audit_store(
    dsn: str | None, data_dir: str | os.PathLike[str], schema: str | None = None
) -> SqlAuditStore:
    """PostgreSQL for a ``postgresql://`` DSN, else the SQLite file it names (or
    ``audit.sqlite3`` in ``data_dir``)."""
    if is_shared(dsn):
        assert dsn is not None
        return PostgresAuditStore(dsn, schema)
    return SqliteAuditStore(sqlite_file(dsn, data_dir, FILE_NAME))
