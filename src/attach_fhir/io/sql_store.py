"""What the SQLite and PostgreSQL stores share: the store base class and where a store lives.

The session store (``smart_app.web.session_store``) and the outbox store both build on it; see
docs/architecture.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class SqlStore:
    """One table in SQLite or PostgreSQL; every statement is written once, with ``?``
    placeholders (PostgreSQL's ``_run`` passes them through :func:`postgres_statement`)."""

    def _run(
        self, query: str, params: Sequence[Any] = (), *, durable: bool = True
    ) -> tuple[list[Sequence[Any]], int]:
        """Execute one statement; return its rows and the number of rows changed.

        ``durable=False``: the change may be lost if the machine (not the app) crashes before
        the next durable commit; only for writes a lost write merely repeats.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the store's connections."""
        raise NotImplementedError

    def schema_version(self, component: str) -> int:
        """The schema version of ``component`` this store's database holds."""
        rows, _ = self._run(
            "SELECT MAX(version) FROM attach_schema WHERE component = ?", (component,)
        )
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
