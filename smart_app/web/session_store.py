"""Server-side session storage: SQLite by default, PostgreSQL by configuration, one interface.

Records are small JSON objects in a namespace (``browser``, ``state``, ``launch``, ...) under an
opaque key, each with an expiry. ``take`` reads and deletes in one statement, which is what makes
an OAuth ``state`` single use even when two requests race. ``lock`` serialises work on one key
(a token refresh per launch): a thread lock for SQLite (one process), an advisory lock for
PostgreSQL (any number of processes).

Every value is sealed with the app's token keys (``smart_app.web.token_keys``) before it is written:
the rows hold no token, patient id or answer in clear. A value no key opens reads as absent.
The SQLite file and its WAL files are 0600 (``attach_fhir.io.private_files``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from attach_fhir.io import migrations
from attach_fhir.io.outbox_store import default_data_dir
from attach_fhir.io.private_files import private_sqlite, secure_data_dir
from attach_fhir.io.sql_store import (
    SqlStore,
    is_shared,
    postgres_statement,
    sqlite_file,
    store_url,
)
from smart_app.web.token_keys import RecordCipher, load_cipher

log = logging.getLogger(__name__)

Record = dict[str, Any]


class SessionStore(Protocol):
    """What the app needs from a session store."""

    def get(self, ns: str, key: str) -> Record | None:
        """The live record, or None when absent or expired."""
        ...

    def put(self, ns: str, key: str, value: Record, ttl: float, *, durable: bool = True) -> None:
        """Create or replace a record that lives ``ttl`` seconds.

        ``durable=False``: the write may be lost if the machine (not the app) crashes soon
        after; only for records the app derives again, idempotently, when they are missing.
        """
        ...

    def take(self, ns: str, key: str) -> Record | None:
        """Atomically read and delete a live record (single use)."""
        ...

    def delete(self, ns: str, key: str) -> None:
        """Remove a record if present."""
        ...

    def purge_expired(self) -> int:
        """Delete expired records; returns how many."""
        ...

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Hold an exclusive lock on ``name`` for the ``with`` block."""
        ...

    def reseal_all(self) -> tuple[int, int]:
        """Seal every live record again with the newest key: (resealed, unreadable)."""
        ...

    def schema_version(self, component: str) -> int:
        """The schema version of ``component`` the store's database holds."""
        ...


class _SealedRecords(SqlStore):
    """What both stores do alike: the statements (``?`` placeholders), and values sealed on
    the way in, opened on the way out."""

    cipher: RecordCipher

    def _dump(self, value: Record) -> str:
        return self.cipher.seal(json.dumps(value))

    def _load(self, rows: Sequence[Sequence[Any]]) -> Record | None:
        if not rows:
            return None
        text = self.cipher.unseal(rows[0][0])
        if text is None:  # sealed with a key no longer configured (or not by us): gone
            log.warning("session.unreadable outcome=ignored")
            return None
        value: Record = json.loads(text)
        return value

    def get(self, ns: str, key: str) -> Record | None:
        """The live record, or None when absent or expired."""
        rows, _ = self._run(
            "SELECT value FROM attach_session WHERE ns = ? AND key = ? AND expires_at > ?",
            (ns, key, time.time()),
        )
        return self._load(rows)

    def put(self, ns: str, key: str, value: Record, ttl: float, *, durable: bool = True) -> None:
        """Create or replace a record that lives ``ttl`` seconds (see ``SessionStore.put``)."""
        self._run(
            "INSERT INTO attach_session (ns, key, value, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at",
            (ns, key, self._dump(value), time.time() + ttl),
            durable=durable,
        )

    def take(self, ns: str, key: str) -> Record | None:
        """Atomically read and delete a live record (single use)."""
        rows, _ = self._run(
            "DELETE FROM attach_session WHERE ns = ? AND key = ? RETURNING value, expires_at",
            (ns, key),
        )
        return self._load([r for r in rows if r[1] > time.time()])

    def delete(self, ns: str, key: str) -> None:
        """Remove a record if present."""
        self._run("DELETE FROM attach_session WHERE ns = ? AND key = ?", (ns, key))

    def purge_expired(self) -> int:
        """Delete expired records; returns how many."""
        rows, _ = self._run(
            "DELETE FROM attach_session WHERE expires_at <= ? RETURNING 1", (time.time(),)
        )
        return len(rows)

    def reseal_all(self) -> tuple[int, int]:
        """Seal every live record again with the newest key: (resealed, unreadable).

        Each row is replaced only if it still holds what was read, so a record the app
        rewrote meanwhile (sealed with the newest key already) is left as the app wrote it.
        """
        rows, _ = self._run(
            "SELECT ns, key, value FROM attach_session WHERE expires_at > ?", (time.time(),)
        )
        resealed = unreadable = 0
        for ns, key, value in rows:
            fresh = self.cipher.reseal(value)
            if fresh is None:
                unreadable += 1
                continue
            self._run(
                "UPDATE attach_session SET value = ? WHERE ns = ? AND key = ? AND value = ?",
                (fresh, ns, key, value),
            )
            resealed += 1
        return resealed, unreadable


class SqliteStore(_SealedRecords):
    """The embedded store: one SQLite file (WAL) in the data directory."""

    _locks: ClassVar[dict[tuple[str, str], threading.Lock]] = {}
    _locks_guard: ClassVar[threading.Lock] = threading.Lock()

    #: Idle connections kept open for reuse (more may be open while requests run at once).
    POOL_SIZE: ClassVar[int] = 8

    def __init__(self, path: str | Path, cipher: RecordCipher) -> None:
        self.path = str(path)
        self.cipher = cipher
        private_sqlite(self.path)  # 0600 before SQLite writes a byte (and its WAL files)
        self._idle: list[sqlite3.Connection] = []
        self._idle_guard = threading.Lock()
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            migrations.upgrade(db, "sqlite", migrations.SESSIONS)  # embedded: upgraded on open

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: a pooled connection serves one thread at a time, but not
        # always the thread that opened it (the dev server runs each request in a new thread).
        db = sqlite3.connect(self.path, timeout=15, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")  # each commit synced (the WAL default is FULL too)
        return db

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        # Connections are reused: opening one per statement, and closing the last one (which
        # checkpoints the WAL), cost milliseconds per request.
        with self._idle_guard:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = self._connect()
        try:
            if durable:
                cursor = db.execute(query, tuple(params))
                rows = cursor.fetchall()
            else:  # WAL: synced with the next durable commit instead of at this one
                db.execute("PRAGMA synchronous=NORMAL")
                try:
                    cursor = db.execute(query, tuple(params))
                    rows = cursor.fetchall()
                finally:
                    db.execute("PRAGMA synchronous=FULL")
        except BaseException:
            db.close()
            raise
        with self._idle_guard:
            if len(self._idle) < self.POOL_SIZE:
                self._idle.append(db)
                return rows, cursor.rowcount
        db.close()
        return rows, cursor.rowcount

    def close(self) -> None:
        """Close the idle connections (the store stays usable: new ones open on demand)."""
        with self._idle_guard:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an in-process lock on ``name`` (the SQLite store serves one process)."""
        with self._locks_guard:
            lock = self._locks.setdefault((self.path, name), threading.Lock())
        with lock:
            yield


class PostgresStore(_SealedRecords):
    """The shared store for several app processes (psycopg 3)."""

    def __init__(self, dsn: str, cipher: RecordCipher) -> None:
        import psycopg  # optional dependency: the "postgres" extra

        self._psycopg = psycopg
        self.dsn = dsn
        self.cipher = cipher
        with self._connect() as db:  # shared: upgraded by `attach-fhir db upgrade` only
            migrations.require(db, "postgres", migrations.SESSIONS)

    def _connect(self) -> Any:
        return self._psycopg.connect(self.dsn, autocommit=True)

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        with self._connect() as db:
            if not durable:  # this connection's commits do not wait for the WAL flush
                db.execute("SET synchronous_commit TO OFF")
            cur = db.execute(postgres_statement(query), tuple(params))
            return (list(cur.fetchall()) if cur.description else []), cur.rowcount

    def close(self) -> None:
        """Nothing to release: each statement opens and closes its own connection."""

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold a session-level advisory lock on ``name`` (works across processes)."""
        with self._connect() as db:
            db.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
            try:
                yield
            finally:
                db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


def open_session_store(url: str | None, data_dir: str | Path, cipher: RecordCipher) -> SessionStore:
    """The store named by ``url`` (``postgresql://...``), else SQLite in ``data_dir``."""
    if url and is_shared(url):
        return PostgresStore(url, cipher)
    return SqliteStore(sqlite_file(url, data_dir, "sessions.sqlite3"), cipher)


def open_configured(config: MutableMapping[str, Any]) -> SessionStore:
    """The store ``config`` names (``SESSION_STORE``, else ``DATABASE_URL``; ``DATA_DIR``,
    ``TOKEN_KEY*``), its keys loaded; the data directory made private first (``DATA_DIR``
    resolved in ``config``)."""
    data_dir = config["DATA_DIR"] = str(config.get("DATA_DIR") or default_data_dir())
    secure_data_dir(data_dir)
    url = store_url(config.get("SESSION_STORE"), config.get("DATABASE_URL"))
    return open_session_store(url, data_dir, load_cipher(config, data_dir, shared=is_shared(url)))
