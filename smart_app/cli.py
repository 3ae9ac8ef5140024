"""``attach-fhir serve``: run the app for real EHRs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser("serve", help="serve the SMART app for real EHRs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--registrations", required=True, help="registrations JSON file")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from smart_app import create_app

    app = create_app()
    app.run(host=args.host, port=args.port)
    return 0
