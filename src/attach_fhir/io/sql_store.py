"""What the SQLite and PostgreSQL stores share: the two engines (a pool of connections, locks),
the store base class every store builds on, and where a store lives.

The session store (``smart_app.web.session_store``), the outbox store and the audit store build
on it; see docs/architecture.md.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from attach_fhir.errors import AttachError
from attach_fhir.io.private_files import private_sqlite


class StoreUnavailable(AttachError):
    """The database did not answer (restarting, unreachable): the statement did not run, so
    nothing was stored; the same request may be sent again."""

    code = "store_unavailable"
    description = (
        "The app's database is not answering just now (it may be restarting), so nothing was "
        "saved. Please try again in a minute."
    )
    status_code = 503
    #: Seconds a client is asked to wait (the Retry-After header of the 503).
    retry_after = 15


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class _ConnectionPool(Generic[C]):
    """Idle connections kept for reuse, up to ``POOL_SIZE`` (more may be open at once)."""

    POOL_SIZE: ClassVar[int] = 8

    def __init__(self) -> None:
        self._idle: list[C] = []
        self._guard = threading.Lock()

    def _connect(self) -> C:
        raise NotImplementedError

    def _reusable(self, db: C) -> bool:
        return True

    @contextmanager
    def connection(self) -> Iterator[C]:
        """A connection of the pool (autocommit), back in the pool afterwards."""
        # Reused: opening one per statement, and closing the last one (which checkpoints the
        # WAL), cost milliseconds per request.
        db = self._checkout()
        try:
            yield db
        except BaseException:
            db.close()
            raise
        self._release(db)

    def _checkout(self) -> C:
        """An idle connection of the pool, else a new one."""
        with self._guard:
            db = self._idle.pop() if self._idle else None
        return db if db is not None else self._connect()

    def _release(self, db: C) -> None:
        """Back into the pool (or closed, when the pool is full or the connection unusable)."""
        with self._guard:
            if len(self._idle) < self.POOL_SIZE and self._reusable(db):
                self._idle.append(db)
                return
        db.close()

    def close(self) -> None:
        """Close the idle connections (the engine stays usable: new ones open on demand)."""
        with self._guard:
            idle = list(self._idle)
            self._idle.clear()  # the same list: a finalizer holding it sees what is left
        for db in idle:
            db.close()


class SqliteEngine(_ConnectionPool[sqlite3.Connection]):
    """A SQLite file (WAL) and a pool of its connections; an in-process lock per name (the file
    serves one machine's processes, and a lock is needed only within one)."""

    dialect = "sqlite"
    _locks: ClassVar[dict[tuple[str, str], threading.Lock]] = {}
    _locks_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str | os.PathLike[str], durable: bool = True) -> None:
        super().__init__()
        self.path = str(path)
        #: Each connection's standing ``synchronous`` mode: FULL (each commit synced) when
        #: ``durable``, else NORMAL (a store whose every write is non-durable, the audit's).
        self.durable = durable
        private_sqlite(self.path)  # 0600 before SQLite writes a byte (and its WAL files)
        with self.connection() as db:
            db.execute("PRAGMA journal_mode=WAL")

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: a pooled connection serves one thread at a time, but not
        # always the thread that opened it (the dev server runs each request in a new thread).
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # The standing mode: FULL syncs each commit (the WAL default is FULL too), NORMAL not.
        db.execute(f"PRAGMA synchronous={_mode(self.durable)}")
        return db

    def run(
        self, query: str, params: Sequence[Any], durable: bool
    ) -> tuple[list[Sequence[Any]], int]:
        """Execute one statement (see ``SqlStore._run``)."""
        with self.connection() as db:
            if durable == self.durable:  # the connection's standing mode: no PRAGMA round trip
                cursor = db.execute(query, tuple(params))
                return cursor.fetchall(), cursor.rowcount
            # NORMAL in WAL: synced with the next durable commit
            db.execute(f"PRAGMA synchronous={_mode(durable)}")
            try:
                cursor = db.execute(query, tuple(params))
                return cursor.fetchall(), cursor.rowcount
            finally:
                db.execute(f"PRAGMA synchronous={_mode(self.durable)}")

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an in-process lock on ``name``."""
        with self._locks_guard:
            lock = self._locks.setdefault((self.path, name), threading.Lock())
        with lock:
            yield


def _mode(durable: bool) -> str:
    """SQLite's ``synchronous`` setting for durable (FULL) or non-durable (NORMAL) commits."""
    return "FULL" if durable else "NORMAL"


class PostgresEngine(_ConnectionPool[Any]):
    """A PostgreSQL database (psycopg 3, autocommit) and a pool of connections; locks are
    advisory locks, so they hold across every process of every instance."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        import psycopg  # optional dependency: the "postgres" extra

        super().__init__()
        self._psycopg = psycopg
        self.dsn = dsn
        # An engine dropped without close() (an app never stopped) still closes its connections.
        weakref.finalize(self, _close_each, self._idle)

    def _connect(self) -> Any:
        return self._psycopg.connect(self.dsn, autocommit=True)

    def _reusable(self, db: Any) -> bool:
        return not db.closed

    def run(
        self, query: str, params: Sequence[Any], durable: bool
    ) -> tuple[list[Sequence[Any]], int]:
        """Execute one statement (see ``SqlStore._run``); a pooled connection found dead (the
        server restarted, an idle timeout) is replaced once; StoreUnavailable if that fails too."""
        statement = postgres_statement(query)
        for attempt in (1, 2):
            try:
                with self.connection() as db:
                    if durable:
                        cursor = db.execute(statement, tuple(params))
                        rows = list(cursor.fetchall()) if cursor.description else []
                        return rows, cursor.rowcount
                    with db.transaction():  # this commit does not wait for the WAL flush
                        db.execute("SET LOCAL synchronous_commit TO OFF")
                        cursor = db.execute(statement, tuple(params))
                        rows = list(cursor.fetchall()) if cursor.description else []
                    return rows, cursor.rowcount
            except self._psycopg.OperationalError as exc:
                if attempt == 2:
                    # Down (restarting, unreachable): the next call opens a new connection.
                    raise StoreUnavailable() from exc
                self.close()  # the other idle connections are likely dead too
        raise AssertionError("unreachable")  # pragma: no cover

    def _hold(self, name: str) -> Any:
        """A connection out of the pool that holds the advisory lock on ``name``; a dead pooled
        connection is replaced once, as in :meth:`run`."""
        for attempt in (1, 2):
            db = None
            try:
                db = self._checkout()
                db.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
                return db
            except self._psycopg.OperationalError as exc:
                if db is not None:
                    db.close()
                if attempt == 2:
                    raise StoreUnavailable() from exc
                self.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold a session-level advisory lock on ``name`` (works across processes)."""
        db = self._hold(name)
        try:
            yield
        except BaseException:
            db.close()  # ends the session, and the lock with it
            raise
        try:
            db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
        except self._psycopg.OperationalError:
            db.close()  # the server went away: the session, and the lock, are gone already
            return
        self._release(db)


Engine = SqliteEngine | PostgresEngine


def _close_each(connections: list[Any]) -> None:
    for db in connections:
        db.close()


class SqlStore:
    """A store on either engine; every statement is written once, with ``?`` placeholders
    (the PostgreSQL engine passes them through :func:`postgres_statement`)."""

    engine: Engine

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        """Execute one statement; return its rows and the number of rows changed.

        ``durable=False``: the change may be lost if the machine (not the app) crashes before
        the next durable commit; only for writes a lost write merely repeats.
        """
        return self.engine.run(query, params, durable)

    def close(self) -> None:
        """Release the store's idle connections (it stays usable)."""
        self.engine.close()


def schema_version(store: SqlStore, component: str) -> int:
    """The schema version of ``component`` that ``store``'s database holds (a function, not a
    method: a store's methods are its whole interface, and the audit store's is append-only)."""
    rows, _ = store._run("SELECT MAX(version) FROM attach_schema WHERE component = ?", (component,))
    return int(rows[0][0] or 0) if rows else 0


def postgres_statement(query: str) -> str:
    """``query`` with psycopg's ``%s`` for each ``?`` (no statement holds a literal ``?``)."""
    return query.replace("?", "%s")


def in_schema(dsn: str, schema: str | None) -> str:
    """The ``postgresql://`` ``dsn`` with ``schema`` alone on its search path (no schema: ``dsn``
    as it is)."""
    if not schema:
        return dsn
    if not schema.replace("_", "").isalnum():
        raise ValueError("A PostgreSQL schema name is letters, digits and underscores.")
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_shared(url: str | None) -> bool:
    """True when ``url`` names a store that several processes share (PostgreSQL)."""
    return bool(url and url.startswith(("postgresql://", "postgres://")))


def store_url(override: str | None, database_url: str | None) -> str | None:
    """Where one store lives: its own setting (``ATTACH_SESSION_STORE``, ``ATTACH_OUTBOX_DSN``)
    when set, else the one ``ATTACH_DATABASE_URL``; None: SQLite in the data directory."""
    return override or database_url or None


def sqlite_file(url: str | None, data_dir: str | os.PathLike[str], name: str) -> Path:
    """The SQLite file ``url`` names (``sqlite:///path`` or a path), else ``name`` in
    ``data_dir`` (no url, or just ``sqlite``)."""
    if url and url != "sqlite":
        return Path(url.removeprefix("sqlite:///"))
    return Path(data_dir) / name
