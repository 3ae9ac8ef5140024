"""``attach-fhir outbox status|drain|prune``: look at, deliver and prune the durable outbox.

The store comes from ``--dsn`` / ``$ATTACH_OUTBOX_DSN`` (a PostgreSQL DSN, ``sqlite:///path`` or
a path), else ``outbox.sqlite3`` in ``--data-dir``; with neither, the outbox of the app ``serve``
runs (the default data directory), else that of the app ``sandbox`` runs. Both commands print
the store they read, and neither creates a SQLite store that is not there: asking for status
must not hide the real one behind a new, empty file. Output never carries answers, names or
server diagnostics: only submission ids, hosts, states and error codes.
``drain --backend FILE`` / ``$ATTACH_BACKEND_CONFIG`` authorizes each delivery with a SMART
Backend Services system token (docs/backend-services.md). After a drain, the hooks of the entry
point group ``attach_fhir.after_drain`` follow up what it delivered (the app's goals and Tasks).
``prune --older-than DAYS`` deletes delivered and failed items not updated for DAYS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from attach_fhir.errors import AttachError
from attach_fhir.io.outbox import LEASE_SETTING, ClientFactory, Outbox, lease_seconds
from attach_fhir.io.outbox_store import (
    FINAL,
    STATUSES,
    OutboxItem,
    SqliteOutboxStore,
    SqlOutboxStore,
    default_data_dir,
    open_outbox_store,
)

#: ``drain`` exit code when items remain queued for a later attempt (sysexits EX_TEMPFAIL).
EXIT_RETRYING = 75
#: Where ``attach-fhir sandbox`` keeps its app's outbox, under the default data directory: the
#: sandbox's own directory is ``sandbox/`` there (``ehr_sandbox.cli.default_data_dir``), its app's
#: stores are in ``app/`` (``ehr_sandbox.runner``), which this library does not import.
SANDBOX_OUTBOX = Path("sandbox", "app", "outbox.sqlite3")
#: Entry-point group of what follows up a drain's deliveries: each hook is called with the
#: delivered submission ids and the store drained (its PostgreSQL DSN or SQLite path).
AFTER_DRAIN = "attach_fhir.after_drain"
AfterDrain = Callable[[Sequence[str], str], None]
#: The clock ``prune`` measures ages by (tests replace it).
clock: Callable[[], float] = time.time


class Store(NamedTuple):
    """An outbox store to open: what to print for it, and its SQLite file (None: PostgreSQL)."""

    label: str
    path: Path | None
    dsn: str | None = None

    def open(self) -> SqlOutboxStore:
        """Open the store (a SQLite file is created if missing: check ``exists`` first)."""
        return (
            SqliteOutboxStore(self.path) if self.path is not None else open_outbox_store(self.dsn)
        )

    def exists(self) -> bool:
        """Whether there is a store to read (a PostgreSQL one is taken to exist)."""
        return self.path is None or self.path.exists()


def _sqlite(path: Path) -> Store:
    return Store(str(path), path)


def _without_password(dsn: str) -> str:
    """The DSN as printed: no user, password or query (which may carry a password)."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def candidate_stores(dsn: str | None, data_dir: str | None) -> list[Store]:
    """The stores ``status`` and ``drain`` may read, the first that exists wins."""
    dsn = dsn or os.environ.get("ATTACH_OUTBOX_DSN") or os.environ.get("ATTACH_DATABASE_URL")
    if dsn and dsn.startswith(("postgres://", "postgresql://")):
        return [Store(_without_password(dsn), None, dsn)]
    if dsn:
        return [_sqlite(Path(dsn.removeprefix("sqlite:///")))]
    if data_dir:
        return [_sqlite(Path(data_dir) / "outbox.sqlite3")]
    base = default_data_dir()
    return [_sqlite(base / "outbox.sqlite3"), _sqlite(base / SANDBOX_OUTBOX)]


def chosen_store(args: argparse.Namespace) -> tuple[Store | None, list[Store]]:
    """The store to read (None: none exists yet) and every candidate, the app's first."""
    candidates = candidate_stores(args.dsn, args.data_dir)
    return next((s for s in candidates if s.exists()), None), candidates


def _nothing_there(candidates: list[Store]) -> str:
    text = f"no outbox at {candidates[0].label} yet"
    if len(candidates) > 1:
        text += f" (nor the sandbox's, at {candidates[1].label})"
    return text


def _other_stores(store: Store, candidates: list[Store]) -> None:
    for other in candidates:
        if other is not store and other.path is not None and other.exists():
            print(
                f"another outbox: {other.label} (--data-dir {other.path.parent})",
                file=sys.stderr,
            )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox status``, ``outbox drain`` and ``outbox prune``."""
    parser = sub.add_parser(
        "outbox",
        help="the durable outbox of submissions to FHIR servers",
        description=(
            "Look at ('status'), deliver ('drain') and prune ('prune') the durable outbox of "
            "submissions the app queued for FHIR servers. Output carries submission ids, hosts, "
            "states and error codes only."
        ),
    )
    commands = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    where = (
        " The store: --dsn, else --data-dir, else the outbox of the app 'serve' runs, else that "
        "of the app 'sandbox' runs; it is named first, and never created by asking."
    )
    for name, func, help_text in (
        ("status", _status, "counts by state, oldest waiting item, recent errors"),
        ("drain", _drain, "deliver every item that is due now (progress on stderr)"),
        ("prune", _prune, "delete delivered and failed items not updated for DAYS days"),
    ):
        action = commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "." + where
        )
        action.add_argument(
            "--dsn",
            help="PostgreSQL DSN, sqlite:///path or a path (default: $ATTACH_OUTBOX_DSN, "
            "else $ATTACH_DATABASE_URL)",
        )
        action.add_argument(
            "--data-dir",
            help="directory of outbox.sqlite3 (default: $ATTACH_DATA_DIR, else "
            "$XDG_DATA_HOME/attach-fhir; then its sandbox/app/ for the sandbox's)",
        )
        action.set_defaults(func=func)
    commands.choices["status"].add_argument("--json", action="store_true", help="JSON output")
    prune = commands.choices["prune"]
    prune.add_argument(
        "--older-than",
        metavar="DAYS",
        type=_days,
        required=True,
        help="delete items whose last update is more than DAYS days old (a positive number)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
    )
    commands.choices["drain"].add_argument(
        "--clients",
        default=os.environ.get("ATTACH_OUTBOX_CLIENTS"),
        help="module:callable returning a (base_url) -> FhirClient factory "
        "(default: $ATTACH_OUTBOX_CLIENTS; else the --backend system token; else "
        "no token, for open servers such as the sandbox; those two audit each request)",
    )
    commands.choices["drain"].add_argument(
        "--backend",
        metavar="FILE",
        default=os.environ.get("ATTACH_BACKEND_CONFIG"),
        help="backend-services config: authorize with a SMART Backend Services system token "
        "for each server it names (default: $ATTACH_BACKEND_CONFIG), see docs/backend-services.md",
    )


def _days(text: str) -> float:
    """``--older-than``: a positive number of days."""
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not days > 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of days, not {text!r}")
    return days


def age_text(seconds: float) -> str:
    """A duration as its two largest units: ``2d03h``, ``5h12m``, ``7m30s``, ``12s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _error_row(item: OutboxItem) -> dict[str, Any]:
    return {
        "submission_id": item.submission_id,
        "target": urlsplit(item.target).netloc,
        "status": item.status,
        "attempts": item.attempts,
        "error": item.last_error_code,
        "updated_at": item.updated_at,
    }


def _status(args: argparse.Namespace) -> int:
    chosen, candidates = chosen_store(args)
    if chosen is None:
        if args.json:
            empty = {
                "store": candidates[0].label,
                "exists": False,
                "counts": dict.fromkeys(STATUSES, 0),
                "oldest_pending_age_seconds": None,
                "recent_errors": [],
            }
            print(json.dumps(empty, indent=2))
        else:
            print(_nothing_there(candidates))
        return 0
    _other_stores(chosen, candidates)
    store = chosen.open()
    try:
        counts = store.counts()
        oldest = store.oldest_pending()
        errors = [_error_row(item) for item in store.recent_errors(10)]
    finally:
        store.close()
    now = time.time()
    if args.json:
        report = {
            "store": chosen.label,
            "exists": True,
            "counts": counts,
            "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 1),
            "recent_errors": errors,
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"outbox {chosen.label}")
    for status, count in counts.items():
        print(f"{status:17} {count}")
    print(f"oldest waiting    {'-' if oldest is None else age_text(now - oldest)}")
    for row in errors:
        print(
            f"error {row['submission_id']} {row['target']} {row['status']} "
            f"attempts={row['attempts']} {row['error']}"
        )
    return 0


def _prune(args: argparse.Namespace) -> int:
    chosen, candidates = chosen_store(args)
    if chosen is None:
        print(f"{_nothing_there(candidates)}: nothing to prune")
        return 0
    _other_stores(chosen, candidates)
    before = clock() - args.older_than * 86400
    store = chosen.open()
    try:
        counts = store.prunable(before) if args.dry_run else store.prune(before)
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    print(f"outbox {chosen.label}")
    print(f"{verb} {sum(counts.values())} items not updated for {args.older_than:g} days")
    for status in FINAL:
        print(f"{status:17} {counts[status]}")
    return 0


def _load_clients(spec: str) -> ClientFactory:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--clients must be module:callable, got {spec!r}")
    factory: ClientFactory = getattr(importlib.import_module(module_name), attr)()
    return factory


def _drain_clients(args: argparse.Namespace) -> Callable[[], ClientFactory]:
    """What makes the client factory (its settings read and checked now): --clients when given,
    else the backend-services token when configured, else open; the last two audited."""
    if args.clients:
        custom = _load_clients(args.clients)
        return lambda: custom
    from attach_fhir.io.system_audit import AuditedOpenClients, open_system_audit

    if getattr(args, "backend", None):
        from attach_fhir.io.backend_services import BackendClients, load_backend_config

        configs = load_backend_config(args.backend)
        # Every delivery a system token makes is audited, as the app audits a user's.
        return lambda: BackendClients(configs, audit=open_system_audit())
    # No token: each delivery audited all the same.
    return lambda: AuditedOpenClients(open_system_audit())


def _drain(args: argparse.Namespace) -> int:
    try:
        lease = lease_seconds(os.environ.get(LEASE_SETTING))
        make_clients = _drain_clients(args)
    except AttachError as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 2
    chosen, candidates = chosen_store(args)
    if chosen is None:
        print(f"{_nothing_there(candidates)}: nothing to deliver", file=sys.stderr)
        return 0
    try:
        clients = make_clients()  # the audit store opens only when there is a store to drain
    except AttachError as exc:
        print(f"error: {exc.code}: {exc.description}", file=sys.stderr)
        return 2
    _other_stores(chosen, candidates)
    print(f"outbox {chosen.label}", file=sys.stderr)
    store = chosen.open()

    def progress(item: OutboxItem, outcome: str, detail: str) -> None:
        host = urlsplit(item.target).netloc
        print(
            f"{outcome} {item.submission_id} {host} attempt={item.attempts} {detail}",
            file=sys.stderr,
        )

    try:
        report = Outbox(store, clients, lease=lease).drain(progress=progress)
    finally:
        close = getattr(clients, "close", None)
        if callable(close):
            close()
        store.close()
    print(
        f"delivered {len(report.delivered)}, retrying {len(report.retrying)}, "
        f"failed {len(report.failed)}",
        file=sys.stderr,
    )
    if report.delivered:
        after_drain(report.delivered, chosen.dsn or str(chosen.path))
    if report.failed:
        return 1
    return EXIT_RETRYING if report.retrying else 0


def after_drain(delivered: Sequence[str], store: str) -> None:
    """Run every ``attach_fhir.after_drain`` hook; a failing hook is named on stderr by its
    error type (the deliveries stand; the app's follow-ups then wait for its button)."""
    for hook in entry_points(group=AFTER_DRAIN):
        try:
            follow_up: AfterDrain = hook.load()
            follow_up(delivered, store)
        except Exception as exc:  # one hook's failure must not hide the drain's report
            print(f"after-drain {hook.name}: failed ({type(exc).__name__})", file=sys.stderr)
