"""``attach-fhir serve``: run the app for real EHRs, with the outbox worker delivering queued
submissions in the background (``--no-outbox-worker`` or ``ATTACH_OUTBOX_WORKER=false`` when
another process, e.g. ``attach-fhir outbox drain`` from cron, does that instead)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from werkzeug.serving import WSGIRequestHandler

if TYPE_CHECKING:
    from flask import Flask


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
    p.add_argument(
        "--outbox-worker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deliver queued submissions in a background thread (default: on, unless "
        "ATTACH_OUTBOX_WORKER says otherwise)",
    )
    p.set_defaults(func=_serve)


def serve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The app configuration ``serve`` passes on: the flag wins, then the environment, then on."""
    config: dict[str, Any] = {"REGISTRATIONS": args.registrations}
    if args.outbox_worker is not None:
        config["OUTBOX_WORKER"] = args.outbox_worker
    elif "ATTACH_OUTBOX_WORKER" not in os.environ:
        config["OUTBOX_WORKER"] = True
    return config


def build_app(args: argparse.Namespace) -> Flask:
    """The app ``serve`` runs (AttachError for a bad registrations file)."""
    from smart_app import create_app

    return create_app(serve_config(args))


def _serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from attach_fhir.errors import AttachError

    try:
        app = build_app(args)
    except AttachError as exc:  # a bad registrations file: say which key, exit non-zero
        print(f"attach-fhir serve: {exc.description}", file=sys.stderr)
        return 2
    run_simple(args.host, args.port, app, threaded=True, request_handler=PathOnlyRequestHandler)
    return 0
