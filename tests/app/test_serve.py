"""``attach-fhir serve``: the app it builds runs the outbox worker unless told not to."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from attach_fhir.cli import build_parser
from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.cli import build_app
from smart_app.records import delivery

REGISTRATIONS = {
    "registrations": [
        {
            "name": "Example EHR",
            "iss": ["https://ehr.example.org/fhir/R4"],
            "client_id": "attach-fhir",
            "client_type": "public",
        }
    ]
}


@pytest.fixture
def serve_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[Flask], list[str]]]:
    """``(apps, argv)``: build apps from ``argv`` as ``serve`` would; their workers stop after."""
    path = tmp_path / "registrations.json"
    path.write_text(json.dumps(REGISTRATIONS))
    monkeypatch.setenv("ATTACH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ATTACH_OUTBOX_WORKER", raising=False)
    apps: list[Flask] = []
    yield apps, ["serve", "--registrations", str(path)]
    for app in apps:
        stop_app(app)


def built(serve_app: tuple[list[Flask], list[str]], *extra: str) -> Flask:
    apps, argv = serve_app
    app = build_app(build_parser().parse_args([*argv, *extra]))
    apps.append(app)
    return app


def worker_running(app: Flask) -> bool:
    worker = delivery.outbox_services(app).worker
    return worker is not None and worker._thread.is_alive()


def test_serve_runs_the_outbox_worker_by_default(
    serve_app: tuple[list[Flask], list[str]],
) -> None:
    app = built(serve_app)
    assert app.config["OUTBOX_WORKER"] is True
    assert worker_running(app)


def test_serve_without_the_worker_by_flag(serve_app: tuple[list[Flask], list[str]]) -> None:
    app = built(serve_app, "--no-outbox-worker")
    assert delivery.outbox_services(app).worker is None


@pytest.mark.parametrize(("env", "running"), [("false", False), ("true", True)])
def test_serve_follows_attach_outbox_worker(
    serve_app: tuple[list[Flask], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    running: bool,
) -> None:
    monkeypatch.setenv("ATTACH_OUTBOX_WORKER", env)
    assert worker_running(built(serve_app)) is running
    assert worker_running(built(serve_app, "--outbox-worker"))  # the flag wins over the env


def test_the_access_log_names_the_path_but_never_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Launch tokens, codes and state travel in query strings: they must not reach the log."""
    from werkzeug.test import Client

    from smart_app.cli import path_only_access_log

    app = path_only_access_log(create_app({"TESTING": True}))
    with caplog.at_level(logging.INFO, logger="smart_app.access"):
        Client(app).get("/launch?iss=https://ehr.example/fhir&launch=SECRET-LAUNCH-TOKEN")
    lines = [r.getMessage() for r in caplog.records if r.name == "smart_app.access"]
    assert len(lines) == 1
    assert "path=/launch " in lines[0] and "method=GET" in lines[0]
    assert "SECRET-LAUNCH-TOKEN" not in lines[0] and "iss=" not in lines[0]


def test_the_app_and_the_outbox_commands_share_one_default_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ATTACH_DATA_DIR, `serve` and `attach-fhir outbox status|drain` both use
    $XDG_DATA_HOME/attach-fhir: the commands see the app's outbox."""
    from attach_fhir.io.outbox_store import SqliteOutboxStore, open_outbox_store

    monkeypatch.delenv("ATTACH_DATA_DIR", raising=False)
    monkeypatch.delenv("ATTACH_OUTBOX_DSN", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    app = create_app({"TESTING": True})
    expected = tmp_path / "xdg" / "attach-fhir"
    assert app.config["DATA_DIR"] == str(expected)
    app_outbox = delivery.outbox_services(app).outbox.store
    command_outbox = open_outbox_store()  # what `attach-fhir outbox status` opens
    try:
        assert isinstance(app_outbox, SqliteOutboxStore)
        assert isinstance(command_outbox, SqliteOutboxStore)
        assert app_outbox.path == command_outbox.path == expected / "outbox.sqlite3"
        assert (expected / "sessions.sqlite3").exists()
    finally:
        command_outbox.close()
        stop_app(app)
