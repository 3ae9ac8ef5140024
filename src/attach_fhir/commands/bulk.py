"""``attach-fhir bulk-score``: score a server's completed responses with a system token.

Authorizes as a SMART Backend Services client (``--backend FILE`` / ``$ATTACH_BACKEND_CONFIG``,
the entry for ``--iss``), searches the completed QuestionnaireResponses of every packaged
instrument, scores them, and reports how many already have their score Observations. With
``--write`` it writes the missing ones, idempotently. The summary goes to stdout (``--json`` for
JSON); progress goes to stderr. Output carries resource ids, counts and problem codes only.
With ``--export`` it uses Bulk Data ``$export`` instead (commands/bulk_export.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import TextIO

from attach_fhir.commands.bulk_export import export_arguments, run_export
from attach_fhir.errors import AttachError
from attach_fhir.io.backend_services import backend_fhir_client, backend_for, load_backend_config
from attach_fhir.io.bulk_scoring import BulkReport, BulkScoring
from attach_fhir.io.system_audit import audited_client

#: Exit code when some responses could not be scored or written.
EXIT_PROBLEMS = 1
#: Exit code when the run could not start or was cut short (config, token, server).
EXIT_ERROR = 2


def _date(text: str) -> str:
    try:
        dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD") from exc
    return text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bulk-score`` command."""
    parser = sub.add_parser(
        "bulk-score",
        help="score a server's completed QuestionnaireResponses with a backend-services token",
        description=(
            "Search every completed QuestionnaireResponse of the packaged instruments on a FHIR "
            "server (as a SMART Backend Services client), score each, and report which lack "
            "their score Observations; with --write, write those (a rerun writes nothing twice)."
        ),
    )
    parser.add_argument(
        "--backend",
        metavar="FILE",
        default=os.environ.get("ATTACH_BACKEND_CONFIG"),
        help="backend-services config (default: $ATTACH_BACKEND_CONFIG)",
    )
    parser.add_argument("--iss", required=True, metavar="URL", help="the FHIR base URL")
    parser.add_argument(
        "--since", type=_date, metavar="DATE", help="only responses authored on or after DATE"
    )
    parser.add_argument("--write", action="store_true", help="write the missing score Observations")
    parser.add_argument("--json", action="store_true", help="JSON summary on stdout")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
    export_arguments(parser)
    parser.set_defaults(func=run_bulk)


def run_bulk(args: argparse.Namespace) -> int:
    """Run one bulk scoring job; the process exit code."""
    if not args.backend:
        print("error: --backend FILE (or $ATTACH_BACKEND_CONFIG) is required", file=sys.stderr)
        return EXIT_ERROR
    if args.export or args.cancel:
        return run_export(args)
    start = time.perf_counter()

    def progress(report: BulkReport) -> None:
        _line(sys.stderr, "progress", report, time.perf_counter() - start)

    try:
        config = backend_for(load_backend_config(args.backend), args.iss)
        with audited_client(config.iss, config.client_id, args.timeout) as http:
            job = BulkScoring(
                backend_fhir_client(config, http),
                write=args.write,
                since=args.since,
                progress=progress,
            )
            report = job.run()
    except AttachError as exc:
        print(f"error: {exc.code}: {exc.description}", file=sys.stderr)
        return EXIT_ERROR
    _line(sys.stderr, "done", report, time.perf_counter() - start)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _text(report, args.write)
    return EXIT_PROBLEMS if report.problems else 0


def _line(err: TextIO, what: str, report: BulkReport, seconds: float) -> None:
    print(
        f"{what}: {report.found} responses ({report.scored} scored, {report.already_scored} "
        f"already scored, {report.written} written, {len(report.problems)} problems) "
        f"in {seconds:.1f} s",
        file=err,
        flush=True,
    )


def _text(report: BulkReport, write: bool) -> None:
    print(f"responses found        {report.found}")
    print(f"scored                 {report.scored}")
    print(f"already scored         {report.already_scored}")
    print(f"missing Observations   {report.missing}")
    if write:
        print(
            f"written                {report.written} ({report.observations_written} Observations)"
        )
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        where = f" at {problem['path']}" if "path" in problem else ""
        print(f"problem {problem['response']}: {problem['code']}{where}")
