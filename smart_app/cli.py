"""``attach-fhir serve``: run the app for real EHRs."""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import WSGIRequestHandler


class PathOnlyRequestHandler(WSGIRequestHandler):
    """Access log without query strings: launch tokens, codes and state travel there."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log method, path (no query) and status."""
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser("serve", help="serve the SMART app for real EHRs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--registrations", required=True, help="registrations JSON file")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from attach_fhir.errors import AttachError
    from smart_app import create_app

    try:
        app = create_app({"REGISTRATIONS": args.registrations})
    except AttachError as exc:  # a bad registrations file: say which key, exit non-zero
        print(f"attach-fhir serve: {exc.description}", file=sys.stderr)
        return 2
    run_simple(args.host, args.port, app, threaded=True, request_handler=PathOnlyRequestHandler)
    return 0
