"""``attach-fhir audit export --since DATE``: the audit trail as NDJSON AuditEvents on stdout.

Reads the store the app writes (``ATTACH_AUDIT_STORE``, else ``ATTACH_DATABASE_URL``, else
``audit.sqlite3`` in the data directory), for a SIEM or an auditor; see docs/audit.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from attach_fhir.errors import AttachError
from attach_fhir.io.audit_store import configured_dsn, open_audit_store
from attach_fhir.io.outbox_store import default_data_dir

EXIT_ERROR = 2


def since(text: str) -> float:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO instant with its offset, as epoch seconds."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        instant = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be YYYY-MM-DD or an ISO instant") from exc
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError("an instant needs its UTC offset (Z or +hh:mm)")
    return instant.timestamp()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` command."""
    parser = sub.add_parser(
        "audit",
        help="the audit trail (AuditEvents) of FHIR access",
        description="Read the app's audit trail: every FHIR request and launch event it made.",
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    export = commands.add_parser(
        "export",
        help="write the AuditEvents recorded since DATE as NDJSON on stdout",
        description=(
            "Write every AuditEvent recorded at or after DATE (YYYY-MM-DD is midnight UTC), "
            "oldest first, one JSON object a line, from the store the app writes: "
            "ATTACH_AUDIT_STORE, else ATTACH_DATABASE_URL, else audit.sqlite3 in "
            "ATTACH_DATA_DIR."
        ),
    )
    export.add_argument(
        "--since",
        type=since,
        required=True,
        metavar="DATE",
        help="YYYY-MM-DD (midnight UTC) or an ISO instant with its offset",
    )
    export.add_argument("--store", help="a postgresql:// DSN or SQLite path (default: settings)")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Stream the records; the count goes to stderr."""
    dsn = args.store or configured_dsn(os.environ, prefix="ATTACH_")
    try:
        store = open_audit_store(dsn, default_data_dir())
    except AttachError as exc:
        print(f"attach-fhir audit: {exc.description}", file=sys.stderr)
        return EXIT_ERROR
    count = 0
    try:
        out = sys.stdout
        for event in store.since(args.since):
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    finally:
        store.close()
    print(f"attach-fhir audit: {count} AuditEvents", file=sys.stderr)
    return 0
