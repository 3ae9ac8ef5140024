"""The production command: gunicorn with deploy/gunicorn.conf.py serving `smart_app.wsgi:create()`
in several worker processes, logging paths but never query strings, and stopping cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.load_world import GUNICORN

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gunicorn_serves_the_app_in_two_workers_without_query_strings_in_logs(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATTACH_BIND": f"127.0.0.1:{port}",
        "ATTACH_WORKERS": "2",
        "ATTACH_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ("ATTACH_DATABASE_URL", "ATTACH_SESSION_STORE", "ATTACH_OUTBOX_DSN"):
        env.pop(name, None)
    server = subprocess.Popen(
        GUNICORN,
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None
                    time.sleep(0.2)
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            launch = http.get(
                "/launch",
                params={"iss": "http://127.0.0.1:9/fhir", "launch": "L-SECRET-7"},
                headers={"X-Request-Id": "gw-1"},
            )
            assert launch.status_code == 403  # no registration names that iss
            assert launch.headers["X-Request-Id"] == "gw-1"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert len(re.findall(r"Booting worker with pid", err)) == 2
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [
        line for line in logged if line["event"].startswith("request method=GET path=/launch")
    ]
    assert len(access) == 1 and access[0]["event"].startswith(
        "request method=GET path=/launch status=403 "
    )
    assert access[0]["event"].endswith(" request_id=gw-1")
    assert all(line["ts"].endswith("+00:00") for line in logged)
    assert "L-SECRET-7" not in err and "iss=" not in err
