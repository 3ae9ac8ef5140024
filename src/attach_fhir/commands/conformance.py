"""``attach-fhir conformance ISS``: what an EHR supports and how the app will adapt to it.

Reads ``{iss}/.well-known/smart-configuration`` (else the CapabilityStatement's oauth-uris) and
``{iss}/metadata`` without credentials (both are public by the SMART and FHIR specifications),
then prints the report of :mod:`attach_fhir.conformance` (``--json`` for JSON). A server that
cannot be reached (connection refused, DNS, timeout, TLS) is named as such, without a report:
discovery reads a transport failure as an absent document, which would send the integrator
looking for documents rather than at the network.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from attach_fhir.conformance import conformance_report
from attach_fhir.errors import AttachError
from attach_fhir.io.smart_discovery import capability_statement, smart_configuration

#: Exit code when the server offers neither SMART endpoints nor a CapabilityStatement.
EXIT_NOTHING = 1
#: Exit code when the server could not be reached at all (sysexits EX_UNAVAILABLE).
EXIT_UNREACHABLE = 69


class ServerUnreachable(AttachError):
    """The FHIR server could not be reached: no answer was read, so nothing can be judged."""

    code = "server_unreachable"
    description = "The server could not be reached."
    status_code = 502


class TransportErrors(httpx.BaseTransport):
    """The real transport, keeping each transport error it raises: discovery turns those into
    "absent", and the command must tell an unreachable server from a missing document."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.errors: list[httpx.TransportError] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the real transport; remember a transport error, then raise it."""
        try:
            return self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.errors.append(exc)
            raise

    def close(self) -> None:
        """Close the real transport."""
        self.inner.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def unreachable(exc: httpx.TransportError, timeout: float) -> ServerUnreachable:
    """Why ``exc`` kept the request from any answer, in words an integrator can act on."""
    url = exc.request.url
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    causes = list(_causes(exc))
    if isinstance(exc, httpx.TimeoutException):
        text = f"{where} did not answer within {timeout:g} s (timeout)."
    elif any(isinstance(c, socket.gaierror) for c in causes):
        text = f"the host name {url.host!r} could not be resolved (DNS). Check the ISS."
    elif ssl_error := next((c for c in causes if isinstance(c, ssl.SSLError)), None):
        reason = getattr(ssl_error, "reason", None) or type(ssl_error).__name__
        text = (
            f"the TLS handshake with {where} failed ({reason}). Does it speak https on that "
            "port, with a certificate this machine trusts?"
        )
    elif any(isinstance(c, ConnectionRefusedError) for c in causes):
        text = f"{where} refused the connection. Is the server running, on that port?"
    else:
        text = f"could not connect to {where} ({type(exc).__name__}: {exc})."
    return ServerUnreachable(f"Cannot reach the server: {text}", url=str(url))


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
    transport = TransportErrors(httpx.HTTPTransport())
    with httpx.Client(timeout=args.timeout, follow_redirects=False, transport=transport) as http:
        smart = smart_configuration(args.iss, http)
        capability = capability_statement(args.iss, http)
    if transport.errors:
        error = unreachable(transport.errors[0], args.timeout)
        if args.json:
            print(json.dumps({"error": error.to_dict()}, indent=2))
        print(f"error: {error.description}", file=sys.stderr)
        return EXIT_UNREACHABLE
    report = conformance_report(args.iss, smart, capability)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return EXIT_NOTHING if smart is None and capability is None else 0
