"""The outbox's lease comes from ATTACH_OUTBOX_LEASE_SECONDS, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from attach_fhir.io.outbox import DEFAULT_LEASE
from smart_app import create_app, stop
from smart_app.records import delivery
from smart_app.web.errors import ConfigurationError


@pytest.fixture(autouse=True)
def no_outbox_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATTACH_DATABASE_URL", "ATTACH_OUTBOX_DSN", "ATTACH_OUTBOX_LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("value", "lease"), [(None, DEFAULT_LEASE), ("30", 30.0), ("2.5", 2.5)])
def test_the_lease_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, lease: float
) -> None:
    if value is not None:
        monkeypatch.setenv("ATTACH_OUTBOX_LEASE_SECONDS", value)
    app = create_app({"DATA_DIR": str(tmp_path)})
    try:
        assert delivery.outbox_services(app).outbox.lease == lease
    finally:
        stop(app)


@pytest.mark.parametrize("value", ["0", "-30", "soon", "true"])
def test_a_bad_lease_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ATTACH_OUTBOX_LEASE_SECONDS", value)
    with pytest.raises(ConfigurationError) as refused:
        create_app({"DATA_DIR": str(tmp_path)})
    assert "ATTACH_OUTBOX_LEASE_SECONDS" in refused.value.description
