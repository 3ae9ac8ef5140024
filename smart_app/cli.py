"""``attach-fhir serve``: run the app for real EHRs, with the outbox worker delivering queued
submissions in the background (``--no-outbox-worker`` or ``ATTACH_OUTBOX_WORKER=false`` when
another process, e.g. ``attach-fhir outbox drain`` from cron, does that instead)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

access_log = logging.getLogger("smart_app.access")


def path_only_access_log(app: WSGIApplication) -> WSGIApplication:
    """Wrap ``app`` with an access log of method, path and status: never the query string,
    where launch tokens, codes and state travel."""

    def logged(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Callable[..., Any]:
            request_id = next((v for k, v in headers if k.lower() == "x-request-id"), "-")
            access_log.info(
                "request method=%s path=%s status=%s ms=%.1f request_id=%s",
                environ.get("REQUEST_METHOD", "-"),
                environ.get("PATH_INFO", "-"),
                status.split(" ", 1)[0],
                (time.perf_counter() - started) * 1000,
                request_id,
            )
            return start_response(status, headers, *exc)

        return app(environ, start)

    return logged


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser(
        "serve",
        help="serve the SMART app for real EHRs",
        description=(
            "Serve the SMART on FHIR app (waitress) for the EHRs named in the registrations file: "
            "launch URL /launch, redirect URI /callback, JWKS /jwks.json. Settings come from "
            "ATTACH_* environment variables (docs/ehr-registration.md); serve it behind a "
            "TLS-terminating proxy with ATTACH_PUBLIC_URL set. A background worker delivers "
            "queued submissions unless --no-outbox-worker."
        ),
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--registrations",
        required=True,
        metavar="FILE",
        help="registrations JSON file: each EHR's iss, client id and client type",
    )
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
    from waitress import serve

    from attach_fhir.errors import AttachError
    from smart_app.web.hosts import public_url_needed

    refusal = public_url_needed(args.host, os.environ.get("ATTACH_PUBLIC_URL"))
    if refusal:  # before the app (and its outbox worker) starts
        print(f"attach-fhir serve: {refusal}", file=sys.stderr)
        return 2
    try:
        app = build_app(args)
    except AttachError as exc:  # a bad registrations file: say which key, exit non-zero
        print(f"attach-fhir serve: {exc.description}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(
        f"attach-fhir: serving on http://{args.host}:{args.port} "
        "(launch URL /launch, redirect URI /callback, JWKS /jwks.json)",
        file=sys.stderr,
    )
    serve(
        path_only_access_log(app),
        host=args.host,
        port=args.port,
        threads=8,
        ident="attach-fhir",
        # waitress buffers a whole body before the app runs: refuse a larger one while reading.
        max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"]),
    )
    return 0


def drain_settings(store: str) -> dict[str, Any]:
    """The app settings for following up a drain of ``store`` (a PostgreSQL DSN or a SQLite
    path): that outbox, no worker, and for SQLite the session store kept beside it."""
    settings: dict[str, Any] = {"OUTBOX_DSN": store, "OUTBOX_WORKER": False}
    if not store.startswith(("postgresql://", "postgres://")):
        settings["DATA_DIR"] = str(Path(store).parent)
    return settings


def after_drain(delivered: Sequence[str], store: str) -> None:
    """The ``attach_fhir.after_drain`` hook: ``attach-fhir outbox drain`` delivered these
    submissions; the app (its ``ATTACH_*`` settings) runs their follow-ups with the live launch
    of each one's user, as its worker does."""
    from smart_app import create_app, stop
    from smart_app.records.follow_ups import after_delivery

    if not os.environ.get("ATTACH_REGISTRATIONS"):
        print("follow-ups wait: ATTACH_REGISTRATIONS is not set", file=sys.stderr)
        return
    app = create_app(drain_settings(store))
    try:
        with app.app_context():
            after_delivery(delivered)
    finally:
        stop(app)
    print(f"follow-ups checked for {len(delivered)} delivered", file=sys.stderr)
