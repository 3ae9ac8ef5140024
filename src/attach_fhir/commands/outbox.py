"""``attach-fhir outbox status|drain``: look at and deliver the durable outbox.

The store comes from ``--dsn`` / ``$ATTACH_OUTBOX_DSN`` (a PostgreSQL DSN, ``sqlite:///path`` or
a path), else ``outbox.sqlite3`` in ``--data-dir`` / ``$ATTACH_DATA_DIR``. Output never carries
answers, names or server diagnostics: only submission ids, hosts, states and error codes.
``drain --backend FILE`` / ``$ATTACH_BACKEND_CONFIG`` authorizes each delivery with a SMART
Backend Services system token (docs/backend-services.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from attach_fhir.errors import AttachError
from attach_fhir.outbox import ClientFactory, Outbox
from attach_fhir.outbox_store import OutboxItem, open_store

#: ``drain`` exit code when items remain queued for a later attempt (sysexits EX_TEMPFAIL).
EXIT_RETRYING = 75
DEFAULT_CLIENTS = "attach_fhir.outbox:OpenClients"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox status`` and ``outbox drain``."""
    parser = sub.add_parser(
        "outbox",
        help="the durable outbox of submissions to FHIR servers",
        description=(
            "Look at ('status') and deliver ('drain') the durable outbox of submissions the app "
            "queued for FHIR servers. Output carries submission ids, hosts, states and error "
            "codes only."
        ),
    )
    commands = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("status", _status, "counts by state, oldest waiting item, recent errors"),
        ("drain", _drain, "deliver every item that is due now (progress on stderr)"),
    ):
        action = commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        action.add_argument(
            "--dsn", help="PostgreSQL DSN, sqlite:///path or a path (default: $ATTACH_OUTBOX_DSN)"
        )
        action.add_argument(
            "--data-dir", help="directory of outbox.sqlite3 (default: $ATTACH_DATA_DIR)"
        )
        action.set_defaults(func=func)
    commands.choices["status"].add_argument("--json", action="store_true", help="JSON output")
    commands.choices["drain"].add_argument(
        "--clients",
        default=os.environ.get("ATTACH_OUTBOX_CLIENTS"),
        help="module:callable returning a (base_url) -> FhirClient factory "
        "(default: $ATTACH_OUTBOX_CLIENTS; else the --backend system token; else "
        f"{DEFAULT_CLIENTS}, no token)",
    )
    commands.choices["drain"].add_argument(
        "--backend",
        metavar="FILE",
        default=os.environ.get("ATTACH_BACKEND_CONFIG"),
        help="backend-services config: authorize with a SMART Backend Services system token "
        "for each server it names (default: $ATTACH_BACKEND_CONFIG), see docs/backend-services.md",
    )


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
    store = open_store(args.dsn, args.data_dir)
    try:
        counts = store.counts()
        oldest = store.oldest_pending()
        errors = [_error_row(item) for item in store.recent_errors(10)]
    finally:
        store.close()
    now = time.time()
    if args.json:
        report = {
            "counts": counts,
            "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 1),
            "recent_errors": errors,
        }
        print(json.dumps(report, indent=2))
        return 0
    for status, count in counts.items():
        print(f"{status:17} {count}")
    print(f"oldest waiting    {'-' if oldest is None else age_text(now - oldest)}")
    for row in errors:
        print(
            f"error {row['submission_id']} {row['target']} {row['status']} "
            f"attempts={row['attempts']} {row['error']}"
        )
    return 0


def _load_clients(spec: str) -> ClientFactory:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--clients must be module:callable, got {spec!r}")
    factory: ClientFactory = getattr(importlib.import_module(module_name), attr)()
    return factory


def _drain_clients(args: argparse.Namespace) -> ClientFactory:
    """--clients when given, else the backend-services token when configured, else open."""
    if args.clients:
        return _load_clients(args.clients)
    if getattr(args, "backend", None):
        from attach_fhir.backend_services import BackendClients, load_backend_config

        return BackendClients(load_backend_config(args.backend))
    return _load_clients(DEFAULT_CLIENTS)


def _drain(args: argparse.Namespace) -> int:
    try:
        clients = _drain_clients(args)
    except AttachError as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 2
    store = open_store(args.dsn, args.data_dir)

    def progress(item: OutboxItem, outcome: str, detail: str) -> None:
        host = urlsplit(item.target).netloc
        print(
            f"{outcome} {item.submission_id} {host} attempt={item.attempts} {detail}",
            file=sys.stderr,
        )

    try:
        report = Outbox(store, clients).drain(progress=progress)
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
    if report.failed:
        return 1
    return EXIT_RETRYING if report.retrying else 0
