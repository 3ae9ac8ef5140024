"""The ``Host`` header never chooses the app's own URLs: real ``attach-fhir serve`` processes,
launched from the session's sandbox EHR (its FHIR base is the registered ``iss``).

Without ``ATTACH_PUBLIC_URL`` the redirect URI is built from the request, so a loopback-bound
``serve`` answers loopback names only, and ``serve`` refuses to bind anything else.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ehr_sandbox.runner import Sandbox
from tests.fixtures.smart_app_server import Browser

pytestmark = pytest.mark.e2e

FORGED = "attacker.example"
PUBLIC_URL = "https://attach.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_command(tmp_path: Path, iss: str, host: str, port: int) -> list[str]:
    """``attach-fhir serve`` for one registration of ``iss``, without the outbox worker."""
    registrations = tmp_path / "registrations.json"
    registrations.write_text(
        json.dumps(
            {
                "registrations": [
                    {
                        "name": "sandbox",
                        "iss": [iss],
                        "client_id": "host-header-e2e",
                        "client_type": "public",
                        "allow_addresses": ["loopback"],
                    }
                ]
            }
        )
    )
    return [
        *(sys.executable, "-m", "attach_fhir.cli", "serve", "--no-outbox-worker"),
        *("--host", host, "--port", str(port), "--registrations", str(registrations)),
    ]


def serve_env(tmp_path: Path, public_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTACH_")}
    env["ATTACH_DATA_DIR"] = str(tmp_path / "data")
    if public_url is not None:
        env["ATTACH_PUBLIC_URL"] = public_url
    return env


@contextmanager
def serving(tmp_path: Path, iss: str, public_url: str | None = None) -> Iterator[str]:
    """A real ``attach-fhir serve`` on 127.0.0.1; its base URL once it answers."""
    port = free_port()
    command = serve_command(tmp_path, iss, "127.0.0.1", port)
    stderr = tmp_path / "serve.stderr"
    with (
        stderr.open("w") as err,
        subprocess.Popen(
            command, env=serve_env(tmp_path, public_url), stderr=err, stdout=subprocess.DEVNULL
        ) as proc,
    ):
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, stderr.read_text()
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, stderr.read_text()
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def launch(base: str, iss: str, host: str | None) -> tuple[httpx.Response, list[str]]:
    """An EHR launch at the app with ``Host: host`` on every request (cookie check included):
    the last answer and every Location header on the way."""
    browser = Browser()
    headers = {"Host": host} if host else {}
    locations: list[str] = []
    try:
        response = browser.request(
            "GET", f"{base}/launch", params={"iss": iss, "launch": "xyz"}, headers=headers
        )
        while response.status_code == 303 and urlsplit(response.headers["location"]).netloc == "":
            locations.append(response.headers["location"])
            response = browser.request("GET", base + response.headers["location"], headers=headers)
        if "location" in response.headers:
            locations.append(response.headers["location"])
        return response, locations
    finally:
        browser.close()


def redirect_uri(location: str) -> str:
    [value] = parse_qs(urlsplit(location).query)["redirect_uri"]
    return value


def test_a_forged_host_never_reaches_the_redirect_uri(
    authz_server: Sandbox, tmp_path: Path
) -> None:
    assert authz_server.urls is not None
    iss = authz_server.urls.fhir_base
    with serving(tmp_path, iss) as base:
        forged, locations = launch(base, iss, FORGED)
        assert forged.status_code == 400, forged.text
        assert not any(FORGED in location for location in locations), locations
        assert FORGED not in forged.text

        # The loopback name the app is reached by still works, and decides the redirect URI.
        ok, locations = launch(base, iss, None)
        assert ok.status_code == 303, ok.text
        assert locations[-1].startswith(authz_server.urls.issuer)
        assert redirect_uri(locations[-1]) == f"{base}/callback"


def test_with_a_public_url_the_host_decides_nothing(authz_server: Sandbox, tmp_path: Path) -> None:
    assert authz_server.urls is not None
    iss = authz_server.urls.fhir_base
    with serving(tmp_path, iss, public_url=PUBLIC_URL) as base:
        response, locations = launch(base, iss, FORGED)
        assert response.status_code == 303, response.text
        assert redirect_uri(locations[-1]) == f"{PUBLIC_URL}/callback"
        assert not any(FORGED in location for location in locations), locations


def run_serve(
    tmp_path: Path, host: str, public_url: str | None
) -> subprocess.CompletedProcess[str]:
    """``serve`` expected to refuse at once (a server that starts instead is killed at 20 s)."""
    command = serve_command(tmp_path, "https://ehr.example.org/fhir", host, free_port())
    try:
        return subprocess.run(
            command,
            env=serve_env(tmp_path, public_url),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"serve --host {host} started instead of refusing") from exc


def test_serve_on_all_interfaces_without_a_public_url_refuses_to_start(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "0.0.0.0", None)
    assert done.returncode == 2
    assert done.stderr.startswith("attach-fhir serve: --host 0.0.0.0 accepts connections from")
    assert "ATTACH_PUBLIC_URL is not set" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before the app opened its stores


def test_serve_refuses_a_public_url_that_is_no_base_url(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "127.0.0.1", "attach.example.org")
    assert done.returncode == 2
    assert "ATTACH_PUBLIC_URL must be the app's public base URL" in done.stderr
    assert "'attach.example.org'" in done.stderr
