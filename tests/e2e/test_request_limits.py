"""Request size limits against the app served over real HTTP (and under waitress, as ``attach-fhir
serve`` runs it): a body over the bounds is answered 413 before it is read, a form with too many
fields is refused, and the largest real form (the ECR-RS, every section, every item answered)
still submits."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from ehr_sandbox.runner import Sandbox
from smart_app.web.request_limits import MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE, MAX_FORM_PARTS
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

PATIENT = "sandbox-adult-29"
#: What an attacker declares: the 20 MB of the probe that took seconds and 400 MB to refuse.
DECLARED = 20_000_000


def first_response_line(
    url: str, path: str, content_type: str, declared: int, cookie: str = ""
) -> tuple[str, float]:
    """Send the headers and 64 kB of a body declared ``declared`` bytes long, never the rest;
    the status line the server answers with, and how long it took. A server that waits for the
    whole body answers nothing (the read times out)."""
    parts = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {declared}\r\n{cookie and f'Cookie: {cookie}' + chr(13) + chr(10)}"
        "Connection: close\r\n\r\n"
    )
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode() + b"a=1&" * 16384)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            return "no answer", time.perf_counter() - started
    return answer.split(b"\r\n", 1)[0].decode(), time.perf_counter() - started


@pytest.fixture
def app(launch_sandbox: Sandbox, tmp_path: Path) -> Iterator[AppServer]:
    """An app registered with the launch sandbox, its CDS service open to loopback callers."""
    assert launch_sandbox.urls is not None
    reg, client = app_registration("public", launch_sandbox.urls.fhir_base, tmp_path, "e2e-size")
    server = start_app(reg, tmp_path, CDS_ALLOW_UNAUTHENTICATED=True)
    register_app(launch_sandbox, server, client)
    yield server
    server.stop()


def test_an_oversized_form_without_a_cookie_is_refused_before_it_is_read(app: AppServer) -> None:
    status, took = first_response_line(
        app.url, "/launch", "application/x-www-form-urlencoded", DECLARED
    )
    assert status == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    assert took < 2


def test_an_oversized_cds_hooks_call_is_refused_before_it_is_read(app: AppServer) -> None:
    browser = Browser()
    try:
        services = browser.request("GET", f"{app.url}/cds-services").json()["services"]
    finally:
        browser.close()
    path = f"/cds-services/{services[0]['id']}"
    status, took = first_response_line(app.url, path, "application/json", MAX_CONTENT_LENGTH + 1)
    assert status == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    assert took < 2


class Launched:
    """A clinician's browser after an EHR launch, on the ECR-RS form."""

    def __init__(self, sandbox: Sandbox, app: AppServer) -> None:
        self.browser = Browser()
        page = self.browser.go(ehr_launch_url(sandbox, app.client_id, PATIENT))
        assert page.status_code == 200, page.text
        ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        self.form_url = f"{app.url}/app/{ctx}/assess/ecr-rs/"
        self.page = self.browser.request("GET", self.form_url).text
        jar = self.browser.cookies[urlsplit(app.url).netloc]
        self.cookie = "; ".join(f"{name}={value}" for name, value in jar.items())

    def hidden(self, name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', self.page)
        assert found, name
        return found.group(1)


@pytest.fixture
def launched(launch_sandbox: Sandbox, app: AppServer) -> Iterator[Launched]:
    found = Launched(launch_sandbox, app)
    yield found
    found.browser.close()


def largest_ecr_rs_post(page: str) -> dict[str, str]:
    """Every field the rendered ECR-RS form has, each with its longest offered value: every
    relationship section shown (``applies`` true) and every item answered."""
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None or value is None or name.group(1) == "action":
            continue
        key, text = name.group(1), value.group(1)
        if key.endswith(".applies"):
            text = "true"
        if len(text) >= len(fields.get(key, "")):
            fields[key] = text
    return fields


def test_the_largest_real_form_still_submits(launched: Launched) -> None:
    fields = largest_ecr_rs_post(launched.page)
    answered = [k for k in fields if re.fullmatch(r"q:(mother|father|partner|friend)\.\d", k)]
    assert len(answered) == 36 and sum(k.endswith(".applies") for k in fields) == 4
    fields["action"] = "submit"
    body = urlencode(fields).encode()
    # The measurement in smart_app.web.request_limits: 43 fields, 765 bytes.
    print(f"ECR-RS largest post: {len(fields)} fields, {len(body)} bytes")
    assert len(fields) * 10 <= MAX_FORM_PARTS and len(body) * 100 <= MAX_FORM_MEMORY_SIZE
    posted = launched.browser.request("POST", launched.form_url, data=fields)
    assert posted.status_code == 303, posted.text


def test_a_form_with_too_many_fields_is_refused_before_the_view(
    launched: Launched, app: AppServer
) -> None:
    csrf = launched.hidden("csrf_token")
    fields = [("csrf_token", csrf), ("action", "draft")]
    fields += [(f"x{n}", "") for n in range(MAX_FORM_PARTS)]
    posted = launched.browser.request("POST", launched.form_url, data=dict(fields))
    assert posted.status_code == 413, posted.text
    assert len(urlencode(fields)) < MAX_FORM_MEMORY_SIZE  # refused for its count, not its size


def test_an_oversized_form_with_a_valid_cookie_is_refused_before_it_is_read(
    launched: Launched, app: AppServer
) -> None:
    path = urlsplit(launched.form_url).path
    form = "application/x-www-form-urlencoded"
    status, took = first_response_line(
        app.url, path, form, MAX_FORM_MEMORY_SIZE + 1, launched.cookie
    )
    assert status == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    assert took < 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_attach_fhir_serve_refuses_an_oversized_body_before_buffering_it(tmp_path: Path) -> None:
    """Waitress reads a whole body before the app runs: it must apply the bound itself."""
    registrations = tmp_path / "registrations.json"
    one = {"name": "local", "iss": ["http://127.0.0.1:9/fhir"], "client_id": "c"}
    one |= {"client_type": "public", "allow_addresses": ["loopback"]}
    registrations.write_text(json.dumps({"registrations": [one]}), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "ATTACH_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "attach_fhir.cli", "serve", "--port", str(port)]
    command += ["--registrations", str(registrations), "--no-outbox-worker"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        assert "serving on" in server.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        for _ in range(50):  # the socket opens just after the banner
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        status, took = first_response_line(
            url, "/launch", "application/x-www-form-urlencoded", MAX_CONTENT_LENGTH + 1
        )
        assert status.split(" ")[:2] == ["HTTP/1.1", "413"]
        assert took < 2
    finally:
        server.terminate()
        server.wait(timeout=10)
        assert server.stderr is not None
        server.stderr.close()
