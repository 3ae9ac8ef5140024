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
import time
from collections.abc import MutableMapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from attach_fhir.io import migrations
from attach_fhir.io.outbox_store import default_data_dir
from attach_fhir.io.private_files import secure_data_dir
from attach_fhir.io.sql_store import (
    PostgresEngine,
    SqliteEngine,
    SqlStore,
    is_shared,
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
    """The embedded store: one SQLite file (WAL) in the data directory, upgraded as it opens."""

    def __init__(self, path: str | Path, cipher: RecordCipher) -> None:
        self.engine = SqliteEngine(path)
        self.path = self.engine.path
        self.cipher = cipher
        with self.engine.connection() as db:
            migrations.upgrade(db, "sqlite", migrations.SESSIONS)

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Hold an in-process lock on ``name`` (the SQLite store serves one process)."""
        return self.engine.lock(name)


class PostgresStore(_SealedRecords):
    """The shared store for several app processes; its schema comes from `attach-fhir db
    upgrade` only (a schema not current is refused)."""

    def __init__(self, dsn: str, cipher: RecordCipher) -> None:
        self.engine = PostgresEngine(dsn)
        self.dsn = dsn
        self.cipher = cipher
        with self.engine.connection() as db:
            migrations.require(db, "postgres", migrations.SESSIONS)

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Hold an advisory lock on ``name`` (works across processes)."""
        return self.engine.lock(name)


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
