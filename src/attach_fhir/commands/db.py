"""``attach-fhir db upgrade`` and ``db status``: the schema versions of the app's stores.

The stores are those the app opens: ``ATTACH_SESSION_STORE``, ``ATTACH_OUTBOX_DSN`` and
``ATTACH_AUDIT_STORE`` when set, else ``ATTACH_DATABASE_URL`` (or ``--database-url``), else the
SQLite files in the data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attach_fhir.commands.outbox import _without_password
from attach_fhir.io import migrations
from attach_fhir.io.outbox_store import default_data_dir
from attach_fhir.io.private_files import private_sqlite, secure_data_dir
from attach_fhir.io.sql_store import in_schema, is_shared, sqlite_file, store_url


@dataclass(frozen=True)
class Target:
    """One component's store: a SQLite file or a PostgreSQL DSN (and schema)."""

    component: str
    path: Path | None
    dsn: str | None = None
    schema: str | None = None

    @property
    def label(self) -> str:
        """Where it is, as printed (no password)."""
        if self.path is not None:
            return str(self.path)
        assert self.dsn is not None
        where = _without_password(self.dsn)
        return f"{where} schema {self.schema}" if self.schema else where

    @contextmanager
    def connect(self, *, create: bool) -> Iterator[Any]:
        """An autocommit connection (``create``: make the schema or the file if missing)."""
        if self.path is None:
            import psycopg

            assert self.dsn is not None
            dsn = in_schema(self.dsn, self.schema)  # checks the name: letters, digits, _
            if create and self.schema:
                with psycopg.connect(self.dsn, autocommit=True) as admin:
                    admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            with psycopg.connect(dsn, autocommit=True) as conn:
                yield conn
            return
        if create:
            secure_data_dir(self.path.parent)
            private_sqlite(self.path)
        with closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            yield db

    @property
    def dialect(self) -> migrations.Dialect:
        """The SQL dialect of the store."""
        return "postgres" if self.path is None else "sqlite"


def targets(database_url: str | None, data_dir: str | None) -> list[Target]:
    """The stores of the app's configuration (environment), sessions first."""
    url = database_url or os.environ.get("ATTACH_DATABASE_URL") or None
    base = Path(data_dir or os.environ.get("ATTACH_DATA_DIR") or default_data_dir())
    found = []
    for component, override, schema, name in (
        (migrations.SESSIONS, "ATTACH_SESSION_STORE", None, "sessions.sqlite3"),
        (migrations.OUTBOX, "ATTACH_OUTBOX_DSN", "ATTACH_OUTBOX_SCHEMA", "outbox.sqlite3"),
        (migrations.AUDIT, "ATTACH_AUDIT_STORE", None, "audit.sqlite3"),
    ):
        where = store_url(os.environ.get(override), url)
        if is_shared(where):
            found.append(Target(component, None, where, os.environ.get(schema) if schema else None))
        else:
            found.append(Target(component, sqlite_file(where, base, name)))
    return found


def _upgrade(args: argparse.Namespace) -> int:
    for target in targets(args.database_url, args.data_dir):
        with target.connect(create=True) as conn:
            steps = migrations.upgrade(conn, target.dialect, target.component)
            now = migrations.current(conn, target.dialect, target.component)
        done = ", ".join(str(step.version) for step in steps) or "none needed"
        print(f"{target.component}: {target.label}: at version {now} (applied: {done})")
    return 0


def _status(args: argparse.Namespace) -> int:
    report = []
    for target in targets(args.database_url, args.data_dir):
        if target.path is not None and not target.path.exists():
            have = 0
        else:
            with target.connect(create=False) as conn:
                have = migrations.current(conn, target.dialect, target.component)
        need = migrations.latest(target.component)
        report.append(
            {
                "component": target.component,
                "store": target.label,
                "version": have,
                "needed": need,
                "current": have >= need,
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in report:
            state = "current" if row["current"] else "needs `attach-fhir db upgrade`"
            print(
                f"{row['component']}: {row['store']}: version {row['version']} of "
                f"{row['needed']}, {state}"
            )
    return 0 if all(row["current"] for row in report) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade`` and ``db status``."""
    parser = sub.add_parser(
        "db",
        help="schema versions of the app's stores",
        description=(
            "Apply ('upgrade') or show ('status') the schema versions of the stores the app "
            "uses: ATTACH_SESSION_STORE, ATTACH_OUTBOX_DSN and ATTACH_AUDIT_STORE when set, else "
            "ATTACH_DATABASE_URL, else the SQLite files in the data directory. The app refuses "
            "to start on a PostgreSQL store whose schema is not current."
        ),
    )
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("upgrade", _upgrade, "apply the schema versions each store lacks"),
        ("status", _status, "each store's schema version (exit 1 unless all are current)"),
    ):
        action = commands.add_parser(name, help=help_text, description=help_text + ".")
        action.add_argument(
            "--database-url",
            help="postgresql://... for every store (default: $ATTACH_DATABASE_URL)",
        )
        action.add_argument(
            "--data-dir",
            help="directory of the SQLite stores (default: $ATTACH_DATA_DIR, else "
            "$XDG_DATA_HOME/attach-fhir)",
        )
        action.set_defaults(func=func)
    commands.choices["status"].add_argument("--json", action="store_true", help="JSON output")
