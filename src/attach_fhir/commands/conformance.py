"""``attach-fhir conformance ISS``: what an EHR supports and how the app will adapt to it.

Reads ``{iss}/.well-known/smart-configuration`` (else the CapabilityStatement's oauth-uris) and
``{iss}/metadata`` without credentials (both are public by the SMART and FHIR specifications),
then prints the report of :mod:`attach_fhir.conformance` (``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlsplit

import httpx

from attach_fhir.conformance import conformance_report
from attach_fhir.smart_discovery import capability_statement, smart_configuration

#: Exit code when the server offers neither SMART endpoints nor a CapabilityStatement.
EXIT_NOTHING = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``conformance`` command."""
    parser = sub.add_parser(
        "conformance",
        help="check an EHR: what it supports and how the app will adapt",
        description=(
            "Read an EHR's SMART configuration and CapabilityStatement and report, in plain "
            "words, what it supports (launch, client authentication, scopes, refresh, "
            "write interactions) and how the app will adapt."
        ),
    )
    parser.add_argument("iss", metavar="ISS", help="the FHIR base URL")
    parser.add_argument("--json", action="store_true", help="JSON output")
    parser.add_argument("--timeout", type=float, default=15.0, help="HTTP timeout, seconds")
    parser.set_defaults(func=run_conformance)


def run_conformance(args: argparse.Namespace) -> int:
    """Fetch the two documents and print the report; the process exit code."""
    parts = urlsplit(args.iss)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print("error: ISS must be an absolute http(s) URL", file=sys.stderr)
        return 2
    with httpx.Client(timeout=args.timeout, follow_redirects=False) as http:
        smart = smart_configuration(args.iss, http)
        capability = capability_statement(args.iss, http)
    report = conformance_report(args.iss, smart, capability)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return EXIT_NOTHING if smart is None and capability is None else 0
