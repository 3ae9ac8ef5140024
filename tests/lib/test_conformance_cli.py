"""``attach-fhir conformance ISS`` against servers that cannot be reached: each failure is named in
words and the command exits non-zero, instead of a report of documents "not found". Each server
is real and on loopback: a closed port, a socket that accepts and never answers, a plain-HTTP
server spoken to over https; the DNS failure is a name under ``.invalid`` (RFC 2606), which never
resolves."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from attach_fhir.cli import main
from attach_fhir.commands.conformance import EXIT_NOTHING, EXIT_UNREACHABLE

MISLEADING = ("no SMART endpoints", "not found at /metadata")


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose kernel completes the TCP handshake but nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A plain-HTTP server on loopback that answers 404 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def conformance(
    capsys: pytest.CaptureFixture[str], iss: str, *options: str
) -> tuple[int, str, str]:
    code = main(["conformance", iss, "--timeout", "2", *options])
    out, err = capsys.readouterr()
    return code, out, err


def test_connection_refused_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code, out, err = conformance(capsys, f"http://127.0.0.1:{port}/fhir")
    assert code == EXIT_UNREACHABLE != 0
    assert f"127.0.0.1:{port} refused the connection" in err
    assert not any(words in out + err for words in MISLEADING)


def test_a_server_that_never_answers_is_a_timeout(
    capsys: pytest.CaptureFixture[str], silent_port: int
) -> None:
    code, out, err = conformance(capsys, f"http://127.0.0.1:{silent_port}/fhir", "--timeout", "0.3")
    assert code == EXIT_UNREACHABLE
    assert f"127.0.0.1:{silent_port} did not answer within 0.3 s" in err
    assert not any(words in out + err for words in MISLEADING)


def test_https_to_a_plain_http_server_is_a_tls_failure(
    capsys: pytest.CaptureFixture[str], plain_http_port: int
) -> None:
    code, out, err = conformance(capsys, f"https://127.0.0.1:{plain_http_port}/fhir")
    assert code == EXIT_UNREACHABLE
    assert f"TLS handshake with 127.0.0.1:{plain_http_port} failed" in err
    assert not any(words in out + err for words in MISLEADING)


def test_a_name_that_does_not_resolve_is_a_dns_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = conformance(capsys, "https://ehr.invalid/fhir", "--json")
    assert code == EXIT_UNREACHABLE
    error = json.loads(out)["error"]
    assert error["code"] == "server_unreachable"
    assert "'ehr.invalid' could not be resolved (DNS)" in error["description"]
    assert not any(words in out + err for words in MISLEADING)


def test_a_server_that_answers_without_the_documents_is_reported_as_before(
    capsys: pytest.CaptureFixture[str], plain_http_port: int
) -> None:
    """Reachable but offering neither document: the report, not an unreachable server."""
    code, out, err = conformance(capsys, f"http://127.0.0.1:{plain_http_port}/fhir")
    assert code == EXIT_NOTHING
    assert all(words in out for words in MISLEADING)
    assert "unreachable" not in out + err and "refused" not in err
