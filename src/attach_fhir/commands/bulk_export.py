"""``attach-fhir bulk-score --export``: score a server's responses through Bulk Data ``$export``,
resumable, with ``--cancel``; a progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from attach_fhir.bulk_export import DEFAULT_TYPES, ExportTally, Level, since_instant
from attach_fhir.errors import AttachError
from attach_fhir.io.backend_services import BackendTokenSource, backend_for, load_backend_config
from attach_fhir.io.bulk_export import BulkExportRun, ExportOptions, ExportRequest
from attach_fhir.io.export_store import ExportStore
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox_store import default_data_dir
from attach_fhir.io.system_audit import audited_client

log = logging.getLogger(__name__)
EXIT_PROBLEMS = 1
EXIT_ERROR = 2
#: Exit code of a run stopped by Ctrl-C (its progress is kept: the next run resumes).
EXIT_INTERRUPTED = 130


def export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--export`` options to ``bulk-score``."""
    group = parser.add_argument_group("Bulk Data $export")
    group.add_argument("--export", action="store_true", help="use $export instead of searches")
    group.add_argument(
        "--level",
        choices=["system", "patient", "group"],
        default=None,
        help="system ($export, default), patient (Patient/$export) or group (with --group)",
    )
    group.add_argument("--group", metavar="ID", help="export Group/ID/$export")
    group.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help=f"a _type to export, repeatable (default: {','.join(DEFAULT_TYPES)})",
    )
    group.add_argument("--cancel", action="store_true", help="DELETE the saved export job")
    group.add_argument(
        "--data-dir", metavar="DIR", help="where bulk-exports.sqlite3 keeps the job (resume)"
    )
    group.add_argument(
        "--poll-timeout", type=float, default=3600.0, help="give up waiting after SECONDS"
    )
    group.add_argument(
        "--batch-entries", type=int, default=100, help="entries per transaction bundle"
    )


def _request(args: argparse.Namespace) -> ExportRequest:
    level: Level = args.level or ("group" if args.group else "system")
    types = tuple(t for value in args.types or DEFAULT_TYPES for t in value.split(",") if t)
    since = since_instant(args.since) if args.since else None
    return ExportRequest(args.iss, level, args.group, types, since)


def _progress(stream: object) -> tuple[Callable[[str, int, int | None], None], Callable[[], None]]:
    """A tqdm bar when stderr is a terminal, else a plain line per checkpoint."""
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        bars: dict[str, tqdm[None]] = {}

        def bar(phase: str, done: int, total: int | None) -> None:
            if phase not in bars:
                bars[phase] = tqdm(total=total, desc=phase, unit=" lines", file=sys.stderr)
            bars[phase].update(done - bars[phase].n)

        def close() -> None:
            for each in bars.values():
                each.close()

        return bar, close

    def line(phase: str, done: int, total: int | None) -> None:
        of = f"/{total}" if total is not None else ""
        print(f"progress: {phase} {done}{of}", file=sys.stderr, flush=True)

    return line, lambda: None


def run_export(args: argparse.Namespace) -> int:
    """Run, resume or cancel one export; the exit code."""
    start = time.perf_counter()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    progress, close = _progress(sys.stderr)
    store = ExportStore(data_dir)
    try:
        config = backend_for(load_backend_config(args.backend), args.iss)
        with audited_client(config.iss, config.client_id, args.timeout) as http:
            tokens = BackendTokenSource(config, http)
            client = FhirClient(config.iss, http, token_source=tokens)
            options = ExportOptions(
                write=args.write,
                batch_entries=max(1, args.batch_entries),
                poll_timeout=args.poll_timeout,
                progress=progress,
            )
            job = BulkExportRun(client, http, store, _request(args), options, tokens)
            if args.cancel:
                cancelled = job.cancel()
                print("export cancelled" if cancelled else "no export to cancel", file=sys.stderr)
                return 0
            tally = job.run()
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AttachError as exc:
        print(f"error: {exc.code}: {exc.description}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        close()
        store.close()
    seconds = time.perf_counter() - start
    print(f"done: {tally.exported} responses exported in {seconds:.1f} s", file=sys.stderr)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({**tally.to_json(), "notes": job.notes}, indent=2))
    else:
        _text(tally)
    return EXIT_PROBLEMS if tally.problems or tally.invalid else 0


def _text(tally: ExportTally) -> None:
    for name, value in tally.counts().items():
        print(f"{name.replace('_', ' '):<22} {value}")
    for problem in tally.problems:
        print("problem " + " ".join(f"{k}={v}" for k, v in problem.items()))
