"""Which Host headers the app answers, and which binds ``serve`` allows without a public URL
(tests/e2e/test_host_header_e2e.py runs the same rules in real ``serve`` processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.web.errors import ConfigurationError
from smart_app.web.hosts import check_public_url, is_loopback, public_url_needed


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # every interface: the bind to refuse
        ("::", False),
        ("192.168.1.20", False),
        ("attach.internal", False),
    ],
)
def test_loopback_binds(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert (public_url_needed(host, None) is None) is loopback
    assert public_url_needed(host, "https://attach.example.org") is None


def test_a_public_url_is_checked_at_start_up() -> None:
    assert check_public_url("https://attach.example.org/app/") == "https://attach.example.org/app"
    assert check_public_url(None) is None
    for bad in ("attach.example.org", "ftp://attach.example.org", "https://u:p@a.example.org"):
        with pytest.raises(ConfigurationError, match="ATTACH_PUBLIC_URL must be"):
            check_public_url(bad)


def status(tmp_path: Path, host: str, **config: object) -> int:
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), **config})
    try:
        return app.test_client().get("/", headers={"Host": host}).status_code
    finally:
        stop_app(app)


def test_without_a_public_url_only_loopback_names_are_answered(tmp_path: Path) -> None:
    assert status(tmp_path, "localhost:8000") == 200
    assert status(tmp_path, "127.0.0.1:8000") == 200
    assert status(tmp_path, "attacker.example") == 400
    assert status(tmp_path, "localhost.attacker.example") == 400


def test_the_trusted_hosts_setting_names_the_hosts_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTACH_TRUSTED_HOSTS", "attach.example.org, .attach.example.net")
    assert status(tmp_path, "attach.example.org") == 200
    assert status(tmp_path, "eu.attach.example.net") == 200
    assert status(tmp_path, "localhost") == 400
    assert status(tmp_path, "attacker.example") == 400


def test_an_untrusted_host_gets_a_plain_answer_without_the_host(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    try:
        response = app.test_client().get("/launch", headers={"Host": "attacker.example"})
    finally:
        stop_app(app)
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert "attacker.example" not in response.get_data(as_text=True)
    assert "Location" not in response.headers
