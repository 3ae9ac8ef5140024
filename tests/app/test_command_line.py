"""The web app's and the sandbox's commands as a new user meets them: ``sandbox --open`` without
a display, and ``outbox status`` with no arguments reading the outbox the app or the sandbox
writes (never creating an empty one)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import webbrowser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from attach_fhir.cli import main
from ehr_sandbox.cli import default_data_dir as sandbox_data_dir
from ehr_sandbox.cli import open_browser
from ehr_sandbox.runner import Sandbox
from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.records import delivery

URL = "http://127.0.0.1:8701/ehr"


def test_open_says_so_when_webbrowser_finds_no_browser() -> None:
    out = io.StringIO()
    assert open_browser(URL, out, opener=lambda url: False) is False
    assert out.getvalue() == f"No browser could be opened (no display?). Open {URL} yourself.\n"


def test_open_says_so_when_webbrowser_raises() -> None:
    def raising(url: str) -> bool:
        raise webbrowser.Error("could not locate runnable browser")

    out = io.StringIO()
    assert open_browser(URL, out, opener=raising) is False
    assert "No browser could be opened" in out.getvalue() and URL in out.getvalue()


def test_open_is_quiet_when_a_browser_opened() -> None:
    out = io.StringIO()
    opened: list[str] = []
    assert open_browser(URL, out, opener=lambda url: opened.append(url) or True) is True
    assert (opened, out.getvalue()) == ([URL], "")


def test_the_real_webbrowser_on_a_machine_without_a_display(tmp_path: Path) -> None:
    """Python's own webbrowser, with no display, no $BROWSER and no console browser on PATH."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    env["PATH"] = str(tmp_path)  # an empty directory: no xdg-open, no lynx, no www-browser
    probe = f"from ehr_sandbox.cli import open_browser; open_browser({URL!r})"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"No browser could be opened (no display?). Open {URL} yourself.\n"


# -- outbox status with no arguments ------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with nothing configured: the default data directory under a fresh XDG_DATA_HOME."""
    for name in ("ATTACH_DATA_DIR", "ATTACH_OUTBOX_DSN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "attach-fhir"


def queue_one(app: Flask, submission_id: str) -> None:
    """Put one submission in the app's own outbox, as a submit while the EHR is down does."""
    store = delivery.outbox_services(app).outbox.store
    payload: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    store.enqueue(submission_id, "http://127.0.0.1:9/fhir", payload, time.time() - 90)
    stop_app(app)


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["outbox", "status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_reads_the_outbox_of_the_app_serve_runs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_one(create_app({"TESTING": True}), "sub-serve")
    code, out, _ = status(capsys)
    assert code == 0
    assert out.splitlines()[0] == f"outbox {home / 'outbox.sqlite3'}"
    assert "queued            1" in out.splitlines()


def test_status_reads_the_outbox_of_the_sandboxs_app(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`attach-fhir sandbox` (default data dir) keeps its app's stores under sandbox/app/."""
    sandbox = Sandbox(sandbox_data_dir())
    sandbox.data_dir.mkdir(parents=True)
    app = sandbox._create_app("http://127.0.0.1:8702", "http://127.0.0.1:8700/fhir", "http://x")
    queue_one(app, "sub-sandbox")
    code, out, _ = status(capsys, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["store"] == str(home / "sandbox" / "app" / "outbox.sqlite3")
    assert report["counts"]["queued"] == 1
    assert not (home / "outbox.sqlite3").exists()  # no empty store made where nothing was
    queue_one(create_app({"TESTING": True}), "sub-serve")  # now `serve`'s app has one too
    code, out, err = status(capsys)
    assert out.splitlines()[0] == f"outbox {home / 'outbox.sqlite3'}"
    assert f"another outbox: {report['store']} (--data-dir {home / 'sandbox' / 'app'})" in err


def test_status_never_creates_an_empty_outbox(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = status(capsys)
    assert code == 0
    assert out.startswith(f"no outbox at {home / 'outbox.sqlite3'} yet")
    assert not home.exists()
    elsewhere = tmp_path / "elsewhere"
    code, out, _ = status(capsys, "--data-dir", str(elsewhere), "--json")
    report = json.loads(out)
    assert (code, report["store"], report["exists"]) == (
        0,
        str(elsewhere / "outbox.sqlite3"),
        False,
    )
    assert report["counts"] == {"queued": 0, "delivering": 0, "delivered": 0, "failed-permanent": 0}
    code, out, _ = status(capsys, "--dsn", f"sqlite:///{tmp_path / 'no.sqlite3'}")
    assert out.startswith(f"no outbox at {tmp_path / 'no.sqlite3'} yet")
    assert not elsewhere.exists() and not (tmp_path / "no.sqlite3").exists()
    assert main(["outbox", "drain"]) == 0
    assert "no outbox at" in capsys.readouterr().err and not home.exists()
