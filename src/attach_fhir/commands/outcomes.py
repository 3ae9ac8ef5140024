"""``attach-fhir outcomes``: a population's outcomes report from NDJSON files or a FHIR server.

Writes ``DIR/report.html``, ``DIR/patients.csv`` and ``DIR/patients.ndjson`` (docs/outcomes.md).
De-identified unless ``--identified``. Progress goes to stderr; the summary to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.careplan_fhir import CAREPLAN_SYSTEM
from attach_fhir.errors import AttachError
from attach_fhir.instruments import library
from attach_fhir.outcomes import (
    Population,
    collect,
    instrument_of,
    pseudonym,
)
from attach_fhir.outcomes_report import Report, report_of, rows, to_csv, to_html

EXIT_ERROR = 2
PROGRESS_EVERY = 10_000


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD") from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``outcomes`` command."""
    parser = sub.add_parser(
        "outcomes",
        help="write a population's outcomes report (HTML) and per-patient rows (CSV, NDJSON)",
        description=(
            "Read QuestionnaireResponses (scoring those without score Observations), score "
            "Observations, CarePlans and Goals from NDJSON files or a FHIR server, and write "
            "DIR/report.html, DIR/patients.csv and DIR/patients.ndjson. De-identified by default: "
            "pseudonymous ids, no names or birth dates, counts under 5 suppressed."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ndjson", nargs="+", type=Path, metavar="FILE", help="NDJSON input")
    source.add_argument("--iss", metavar="URL", help="a FHIR base URL (backend services)")
    parser.add_argument("--group", metavar="ID", help="with --iss: only this Group's members")
    parser.add_argument(
        "--since", type=_date, metavar="DATE", help="with --iss: resources updated since DATE"
    )
    parser.add_argument(
        "--backend",
        metavar="FILE",
        default=os.environ.get("ATTACH_BACKEND_CONFIG"),
        help="with --iss: backend-services config (default: $ATTACH_BACKEND_CONFIG)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument(
        "--identified", action="store_true", help="include patient references, no suppression"
    )
    parser.add_argument(
        "--as-of",
        type=_date,
        metavar="DATE",
        help="the report date for re-assessment due dates (default: today)",
    )
    parser.add_argument(
        "--pseudonym-key-file",
        type=Path,
        metavar="FILE",
        help="a secret key file: the same key gives the same pseudonymous ids across runs "
        "(default: a new random key each run)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
    parser.set_defaults(func=run_outcomes)


def read_ndjson(paths: Iterable[Path], problems: list[str]) -> Iterator[object]:
    """Every JSON line of the files; a line that is not JSON is counted, never fatal."""
    count = 0
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    problems.append(f"{path.name}:{number}")
                count += 1
                if count % PROGRESS_EVERY == 0:
                    print(f"outcomes: {count} lines read", file=sys.stderr, flush=True)


def read_server(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The population's resources from a FHIR server, as a SMART Backend Services client."""
    from attach_fhir.io.backend_services import (
        backend_fhir_client,
        backend_for,
        load_backend_config,
    )
    from attach_fhir.io.system_audit import audited_client

    if not args.backend:
        raise SystemExit("error: --iss needs --backend FILE (or $ATTACH_BACKEND_CONFIG)")
    config = backend_for(load_backend_config(args.backend), args.iss)
    since = [("_lastUpdated", f"ge{args.since.isoformat()}")] if args.since else []
    with audited_client(config.iss, config.client_id, args.timeout) as http:
        client = backend_fhir_client(config, http)
        members: set[str] | None = None
        if args.group:
            group = client.read("Group", args.group)
            members = {
                str((m.get("entity") or {}).get("reference"))
                for m in group.get("member") or []
                if isinstance(m, dict)
            }
        searches: list[tuple[str, list[tuple[str, str]]]] = [
            ("Observation", [("code", f"{SCORES_SYSTEM}|")]),
            ("Goal", [("identifier", f"{CAREPLAN_SYSTEM}|")]),
            ("CarePlan", [("identifier", f"{CAREPLAN_SYSTEM}|")]),
        ]
        searches += [
            ("QuestionnaireResponse", [("questionnaire", i.url)]) for i in library().instruments()
        ]
        for kind, params in searches:
            print(f"outcomes: reading {kind}", file=sys.stderr, flush=True)
            for resource in client.search(kind, [*params, *since]):
                subject = (resource.get("subject") or {}).get("reference")
                if members is None or subject in members:
                    yield resource


def _key(args: argparse.Namespace) -> bytes:
    if args.pseudonym_key_file is not None:
        return bytes(args.pseudonym_key_file.read_bytes().strip())
    return secrets.token_bytes(32)


def build_report(found: Population, as_of: dt.date, identified: bool) -> Report:
    """The report's figures from what was read."""
    return report_of(found, instrument_of(library()), as_of, identified)


def run_outcomes(args: argparse.Namespace) -> int:
    """Read, compute and write the report; the process exit code."""
    bad_lines: list[str] = []
    try:
        key = _key(args)
        source = read_ndjson(args.ndjson, bad_lines) if args.ndjson else read_server(args)
        found = collect(source, library())
    except (AttachError, OSError) as exc:
        text = exc.description if isinstance(exc, AttachError) else f"{exc.strerror}: {exc}"
        print(f"error: {text}", file=sys.stderr)
        return EXIT_ERROR
    if bad_lines:
        found.problems["line that is not JSON"] += len(bad_lines)
    report = build_report(found, args.as_of or dt.date.today(), args.identified)
    name = (lambda p: p) if args.identified else (lambda p: pseudonym(key, p))
    table = rows(report, name)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.html").write_text(to_html(report), encoding="utf-8")
    (args.out / "patients.csv").write_text(to_csv(table), encoding="utf-8")
    with (args.out / "patients.ndjson").open("w", encoding="utf-8") as out:
        for row in table:
            out.write(json.dumps(row) + "\n")
    summary = {
        "read": dict(sorted(found.read.items())),
        "patients": len({r.patient for r in report.rows}),
        "rows": len(table),
        "left_aside": dict(sorted(found.problems.items())),
        "out": str(args.out),
    }
    print(json.dumps(summary))
    return 0
