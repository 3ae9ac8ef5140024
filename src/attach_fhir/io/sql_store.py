"""What the SQLite and PostgreSQL stores share: the store base class and where a store lives.

The session store (``smart_app.web.session_store``) and the outbox store both build on it; see
docs/architecture.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def postgres_statement(query: str) -> str:
    """``query`` with psycopg's ``%s`` for each ``?`` (no statement holds a literal ``?``)."""
    return query.replace("?", "%s")


def is_shared(url: str | None) -> bool:
    """True when ``url`` names a store that several processes share (PostgreSQL)."""
    return bool(url and url.startswith(("postgresql://", "postgres://")))


def sqlite_file(url: str | None, data_dir: str | os.PathLike[str], name: str) -> Path:
    """The SQLite file ``url`` names (``sqlite:///path`` or a path), else ``name`` in
    ``data_dir`` (no url, or just ``sqlite``)."""
    if url and url != "sqlite":
        return Path(url.removeprefix("sqlite:///"))
    return Path(data_dir) / name
