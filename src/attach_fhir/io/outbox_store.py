"""Durable storage of the outbox: SQLite (a file, the default) or PostgreSQL (a DSN), one interface.

Each row is one submission bound for one FHIR server. Order per target is the insertion order
(``seq``): only the oldest undelivered item of a target may be claimed. A claim is one atomic
UPDATE guarded by the item's state, so two workers never deliver the same item at once; a claim
holds a lease, and an item whose worker died while ``delivering`` becomes claimable again when the
lease runs out (delivery is idempotent, so a second attempt writes nothing twice).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
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

QUEUED = "queued"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed-permanent"
STATUSES = (QUEUED, DELIVERING, DELIVERED, FAILED)
#: The final states: only these rows may be pruned (``prune``); nothing changes them again.
FINAL = (DELIVERED, FAILED)

# Plain SQL, no string building from data: {t} is the table, ? the parameters. Statuses are
# literals here and must match the constants above.
_SELECT = (
    "SELECT seq, submission_id, target, payload, status, attempts, next_attempt_at, lease_until, "
    "created_at, updated_at, last_error, last_error_code, receipt, fence FROM {t} "
)
_CLAIMABLE = (
    "((status = 'queued' AND next_attempt_at <= ?) OR (status = 'delivering' AND lease_until <= ?))"
)
_HEAD = (
    "status IN ('queued', 'delivering') AND seq = (SELECT MIN(seq) FROM {t} i "
    "WHERE i.target = o.target AND i.status IN ('queued', 'delivering'))"
)
_GET = _SELECT + "WHERE submission_id = ?"
_DUE = _SELECT.replace("{t}", "{t} o") + "WHERE " + _HEAD + " AND " + _CLAIMABLE
_CLAIM = (
    "UPDATE {t} SET status = 'delivering', attempts = attempts + 1, lease_until = ?, "
    "updated_at = ?, fence = fence + 1 WHERE seq = ? AND ((status = 'queued' AND "
    "next_attempt_at <= ?) OR (status = 'delivering' AND lease_until <= ?))"
)
#: The claim on PostgreSQL: a row another worker is claiming is skipped, not waited for.
_CLAIM_SKIP_LOCKED = (
    "UPDATE {t} SET status = 'delivering', attempts = attempts + 1, lease_until = ?, "
    "updated_at = ?, fence = fence + 1 WHERE seq = (SELECT seq FROM {t} WHERE seq = ? AND "
    "((status = 'queued' AND next_attempt_at <= ?) OR (status = 'delivering' AND "
    "lease_until <= ?)) FOR UPDATE SKIP LOCKED) RETURNING seq, submission_id, target, payload, "
    "status, attempts, next_attempt_at, lease_until, created_at, updated_at, last_error, "
    "last_error_code, receipt, fence"
)
_OLDEST = "SELECT MIN(created_at) FROM {t} WHERE status IN ('queued', 'delivering')"
#: The final items last updated before a time, by status (what a prune would delete).
_PRUNABLE = (
    "SELECT status, COUNT(*) FROM {t} WHERE status IN ('delivered', 'failed-permanent') "
    "AND updated_at < ? GROUP BY status"
)
#: One batch of a prune: one statement, so one transaction on either engine.
_PRUNE = (
    "DELETE FROM {t} WHERE seq IN (SELECT seq FROM {t} WHERE status IN ('delivered', "
    "'failed-permanent') AND updated_at < ? LIMIT ?) RETURNING status"
)
_ERRORS = (
    _SELECT + "WHERE last_error_code IS NOT NULL AND status <> 'delivered' "
    "ORDER BY updated_at DESC, seq DESC LIMIT ?"
)


class OutboxConfigError(AttachError):
    """The outbox store location is unusable."""

    code = "outbox_config_error"
    description = "The outbox store could not be opened."
    status_code = 500


@dataclass(frozen=True)
class OutboxItem:
    """One submission in the outbox."""

    seq: int
    submission_id: str
    target: str
    payload: dict[str, Any] | None
    status: str
    attempts: int
    next_attempt_at: float
    lease_until: float | None
    created_at: float
    updated_at: float
    #: What the user is shown (the server's OperationOutcome; may quote data, never logged).
    last_error: str | None
    #: Error code, HTTP status and issue codes only: safe for logs and ``outbox status``.
    last_error_code: str | None
    #: What was written: bundle fullUrl -> ``Type/id`` on the server.
    receipt: dict[str, str] | None
    #: Claims so far: a worker records its result only while its claim's fence is the item's.
    fence: int = 0


def _item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(
        seq=int(row[0]),
        submission_id=row[1],
        target=row[2],
        payload=json.loads(row[3]) if row[3] is not None else None,
        status=row[4],
        attempts=int(row[5]),
        next_attempt_at=float(row[6]),
        lease_until=float(row[7]) if row[7] is not None else None,
        created_at=float(row[8]),
        updated_at=float(row[9]),
        last_error=row[10],
        last_error_code=row[11],
        receipt=json.loads(row[12]) if row[12] is not None else None,
        fence=int(row[13]),
    )


class SqlOutboxStore(SqlStore):
    """The queries, written once with ``?`` placeholders and ``{t}`` for the table.

    Fencing: each claim adds one to the item's ``fence``. ``mark_*`` given the ``fence`` of the
    claim that delivered change the item only while that claim still holds it, so a worker that
    stalled past its lease (another worker has claimed the item since) cannot overwrite the
    newer claim's result; they return whether they did.

    ``durable=False`` only for changes after the enqueue (a claim, delivered, retry, failed):
    delivery is idempotent, so an item that reverts is delivered or refused again, writing
    nothing twice. The enqueue, which holds the answers, is always durable.
    """

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        return super()._run(query.replace("{t}", "outbox"), params, durable=durable)

    def enqueue(
        self, submission_id: str, target: str, payload: dict[str, Any], now: float
    ) -> OutboxItem:
        """Store a submission (once: the same submission id returns the stored item)."""
        self._run(
            "INSERT INTO {t} (submission_id, target, payload, status, attempts, next_attempt_at, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?) "
            "ON CONFLICT (submission_id) DO NOTHING",
            (submission_id, target.rstrip("/"), json.dumps(payload), QUEUED, now, now, now),
        )
        item = self.get(submission_id)
        assert item is not None
        return item

    def enqueue_claimed(
        self, submission_id: str, target: str, payload: dict[str, Any], now: float, lease: float
    ) -> tuple[OutboxItem, bool]:
        """Store a submission and, where nothing older is pending for its target, claim it for
        delivery at once. ``(item, True)`` when this call stored and claimed it.

        This portable version stores it queued and claims nothing (the caller drains); a store
        that can do both in one atomic statement overrides it (one commit instead of two).
        """
        del lease
        return self.enqueue(submission_id, target, payload, now), False

    def get(self, submission_id: str) -> OutboxItem | None:
        """One item by submission id."""
        rows, _ = self._run(_GET, (submission_id,))
        return _item(rows[0]) if rows else None

    def due(self, now: float, target: str | None = None) -> list[OutboxItem]:
        """The head item of each target (or of one target) if it can be claimed now."""
        query = _DUE
        params: list[Any] = [now, now]
        if target is not None:
            query += " AND target = ?"
            params.append(target.rstrip("/"))
        rows, _ = self._run(query + " ORDER BY next_attempt_at, seq", params)
        return [_item(row) for row in rows]

    def claim(self, item: OutboxItem, now: float, lease: float) -> OutboxItem | None:
        """Mark one due item ``delivering`` (atomically; None if another worker won)."""
        _, changed = self._run(_CLAIM, (now + lease, now, item.seq, now, now), durable=False)
        return self.get(item.submission_id) if changed == 1 else None

    def mark_delivered(
        self, submission_id: str, receipt: dict[str, str], now: float, fence: int | None = None
    ) -> bool:
        """Delivered: keep the receipt, drop the payload (answers are not kept once written)."""
        _, changed = self._run(
            "UPDATE {t} SET status = ?, payload = NULL, receipt = ?, lease_until = NULL, "
            "last_error = NULL, last_error_code = NULL, updated_at = ? WHERE submission_id = ? "
            "AND (CAST(? AS INTEGER) IS NULL OR (fence = ? AND status = 'delivering'))",
            (DELIVERED, json.dumps(receipt), now, submission_id, fence, fence),
            durable=False,
        )
        return changed == 1

    def mark_retry(
        self,
        submission_id: str,
        next_attempt_at: float,
        error: str,
        error_code: str,
        now: float,
        fence: int | None = None,
    ) -> bool:
        """Back to ``queued``, not before ``next_attempt_at``."""
        _, changed = self._run(
            "UPDATE {t} SET status = ?, next_attempt_at = ?, lease_until = NULL, last_error = ?, "
            "last_error_code = ?, updated_at = ? WHERE submission_id = ? "
            "AND (CAST(? AS INTEGER) IS NULL OR (fence = ? AND status = 'delivering'))",
            (QUEUED, next_attempt_at, error, error_code, now, submission_id, fence, fence),
            durable=False,
        )
        return changed == 1

    def mark_failed(
        self, submission_id: str, error: str, error_code: str, now: float, fence: int | None = None
    ) -> bool:
        """``failed-permanent``: the server refused the data; the user is shown why."""
        _, changed = self._run(
            "UPDATE {t} SET status = ?, lease_until = NULL, last_error = ?, last_error_code = ?, "
            "updated_at = ? WHERE submission_id = ? "
            "AND (CAST(? AS INTEGER) IS NULL OR (fence = ? AND status = 'delivering'))",
            (FAILED, error, error_code, now, submission_id, fence, fence),
            durable=False,
        )
        return changed == 1

    def wake(self, base: str, now: float) -> int:
        """Make every queued item for the FHIR base ``base`` (any ``base#...`` target) due at
        ``now``, its back-off forgotten; returns how many were waiting."""
        base = base.rstrip("/")
        prefix = base + "#"
        _, changed = self._run(
            "UPDATE {t} SET next_attempt_at = ? WHERE status = 'queued' AND next_attempt_at > ? "
            "AND (target = ? OR substr(target, 1, CAST(? AS INTEGER)) = ?)",
            (now, now, base, len(prefix), prefix),
            durable=False,
        )
        return changed

    def counts(self) -> dict[str, int]:
        """Number of items per status (every status present, zero if none)."""
        rows, _ = self._run("SELECT status, COUNT(*) FROM {t} GROUP BY status")
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({row[0]: int(row[1]) for row in rows})
        return counts

    def oldest_pending(self) -> float | None:
        """``created_at`` of the oldest queued or delivering item, if any."""
        rows, _ = self._run(_OLDEST)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def pending_since(self, created_before: float, limit: int = 100) -> list[OutboxItem]:
        """Queued or delivering items stored before ``created_before``, oldest first."""
        rows, _ = self._run(
            "SELECT seq, submission_id, target, payload, status, attempts, next_attempt_at, "
            "lease_until, created_at, updated_at, last_error, last_error_code, receipt, fence "
            "FROM {t} WHERE status IN ('queued', 'delivering') AND created_at < ? "
            "ORDER BY seq LIMIT ?",
            (created_before, limit),
        )
        return [_item(row) for row in rows]

    def prunable(self, updated_before: float) -> dict[str, int]:
        """How many final-state items (by status, each final status present) ``prune`` with
        ``updated_before`` would delete now."""
        rows, _ = self._run(_PRUNABLE, (updated_before,))
        counts = dict.fromkeys(FINAL, 0)
        counts.update({row[0]: int(row[1]) for row in rows})
        return counts

    def prune(self, updated_before: float, batch: int = 1000) -> dict[str, int]:
        """Delete ``delivered`` and ``failed-permanent`` items last updated before
        ``updated_before``, ``batch`` rows per statement; returns how many, by status."""
        if batch < 1:
            raise ValueError("batch must be positive")
        deleted = dict.fromkeys(FINAL, 0)
        while True:
            rows, _ = self._run(_PRUNE, (updated_before, batch))
            for row in rows:
                deleted[row[0]] += 1
            if len(rows) < batch:
                return deleted

    def recent_errors(self, limit: int = 10) -> list[OutboxItem]:
        """Undelivered items that carry an error, most recently updated first."""
        rows, _ = self._run(_ERRORS, (limit,))
        return [_item(row) for row in rows]


class SqliteOutboxStore(SqlOutboxStore):
    """The outbox in a SQLite file (created 0600: it holds answers until they are delivered),
    upgraded as it opens."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.engine = SqliteEngine(self.path)
            with self.engine.connection() as db:
                migrations.upgrade(db, "sqlite", migrations.OUTBOX)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxConfigError(f"Cannot open the outbox file {self.path}: {exc}") from exc

    def enqueue_claimed(
        self, submission_id: str, target: str, payload: dict[str, Any], now: float, lease: float
    ) -> tuple[OutboxItem, bool]:
        """One INSERT: ``delivering`` (attempt 1, leased) when no older item of the target is
        queued or delivering, else ``queued``. SQLite runs a statement alone (one writer at a
        time), so the check and the insert cannot interleave with another claim."""
        rows, _ = self._run(
            "INSERT INTO {t} (submission_id, target, payload, status, attempts, next_attempt_at, "
            "lease_until, created_at, updated_at, fence) "
            "SELECT ?, ?, ?, CASE WHEN busy THEN 'queued' ELSE 'delivering' END, "
            "CASE WHEN busy THEN 0 ELSE 1 END, ?, CASE WHEN busy THEN NULL ELSE ? END, ?, ?, "
            "CASE WHEN busy THEN 0 ELSE 1 END "
            "FROM (SELECT EXISTS (SELECT 1 FROM {t} WHERE target = ? "
            "AND status IN ('queued', 'delivering')) AS busy) WHERE true "
            "ON CONFLICT (submission_id) DO NOTHING RETURNING seq, submission_id, target, payload, "
            "status, attempts, next_attempt_at, lease_until, created_at, updated_at, last_error, "
            "last_error_code, receipt, fence",
            (
                submission_id,
                target.rstrip("/"),
                json.dumps(payload),
                now,
                now + lease,
                now,
                now,
                target.rstrip("/"),
            ),
        )
        if rows:
            item = _item(rows[0])
            return item, item.status == DELIVERING
        stored = self.get(submission_id)  # stored before: as it is, claimed by no one here
        assert stored is not None
        return stored, False


class PostgresOutboxStore(SqlOutboxStore):
    """The outbox in the PostgreSQL table ``outbox``, in ``schema`` when one is named, else where
    the DSN's search path puts it; ``attach-fhir db upgrade`` makes it. Every change is synced
    at its commit, the ``durable=False`` ones too."""

    def __init__(self, dsn: str, schema: str | None = None) -> None:
        self.engine = migrations.postgres_engine(
            dsn, schema, migrations.OUTBOX, OutboxConfigError, "outbox"
        )

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        return super()._run(query, params, durable=True)

    def claim(self, item: OutboxItem, now: float, lease: float) -> OutboxItem | None:
        """Mark one due item ``delivering`` in one statement; a row another worker holds locked
        is skipped (``FOR UPDATE SKIP LOCKED``): None, as when another worker won."""
        rows, _ = self._run(
            _CLAIM_SKIP_LOCKED, (now + lease, now, item.seq, now, now), durable=False
        )
        return _item(rows[0]) if rows else None


def default_data_dir() -> Path:
    """``$ATTACH_DATA_DIR``, else ``$XDG_DATA_HOME/attach-fhir`` (``~/.local/share/...``)."""
    explicit = os.environ.get("ATTACH_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "attach-fhir"


def open_outbox_store(
    dsn: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> SqlOutboxStore:
    """The configured store: a PostgreSQL DSN, ``sqlite:///path`` or a path, else the data dir.

    With no argument, ``$ATTACH_OUTBOX_DSN`` decides, else ``$ATTACH_DATABASE_URL``; without
    either the SQLite file ``outbox.sqlite3`` in the data directory. ``$ATTACH_OUTBOX_SCHEMA``
    names a PostgreSQL schema (default: the DSN's search path).
    """
    dsn = dsn or store_url(
        os.environ.get("ATTACH_OUTBOX_DSN"), os.environ.get("ATTACH_DATABASE_URL")
    )
    if is_shared(dsn):
        assert dsn is not None
        return PostgresOutboxStore(dsn, os.environ.get("ATTACH_OUTBOX_SCHEMA") or None)
    base = data_dir if data_dir is not None else default_data_dir()
    return SqliteOutboxStore(sqlite_file(dsn, base, "outbox.sqlite3"))
