"""``attach-fhir sandbox``: bring up the sandbox EHR with the app and print the URL to open."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` command."""
    p = sub.add_parser("sandbox", help="start the local sandbox EHR with the app registered")
    p.set_defaults(func=_sandbox)


def _sandbox(args: argparse.Namespace) -> int:
    raise SystemExit("attach-fhir sandbox: not built yet (issue 3)")
