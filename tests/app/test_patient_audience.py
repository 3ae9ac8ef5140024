"""A patient's launch with the Flask test client against a real sandbox FHIR server: the
landing page sends them home, a clinic can turn their results page off, and a setting that is
neither true nor false stops the app at start-up naming the key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.web.context import LAUNCH_NS
from smart_app.web.errors import ConfigurationError
from tests.app.test_assess import ALL, ROWAN
from tests.app.test_task_updates import ADULT, PATIENT_SCOPES
from tests.fixtures.fhir_server import FhirServerFactory
from tests.fixtures.launched_app import LaunchedApp, launched_app
from tests.fixtures.seed import seed_bundle


@pytest.fixture(scope="module")
def server(
    fhir_server_factory: FhirServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> FhirServerProcess:
    seed = tmp_path_factory.mktemp("audience-seed") / "seed.json"
    seed.write_text(json.dumps(seed_bundle()), encoding="utf-8")
    return fhir_server_factory(seed=seed)


@pytest.fixture
def patient_app(server: FhirServerProcess, tmp_path: Path) -> Iterator[LaunchedApp]:
    transport = httpx.HTTPTransport()
    launched = launched_app(
        server.base_url,
        tmp_path,
        transport,
        client_id="audience-test",
        kind="patient",
        patient=ADULT,
        user=f"Patient/{ADULT}",
        scope=PATIENT_SCOPES,
    )
    yield launched
    stop_app(launched.app)
    transport.close()


def test_a_patients_landing_is_their_home(patient_app: LaunchedApp) -> None:
    landing = patient_app.client.get(f"/app/{patient_app.ctx}/")
    assert landing.status_code == 303
    assert landing.headers["Location"] == f"/app/{patient_app.ctx}/patient/"


def test_a_clinic_can_keep_results_for_the_appointment(patient_app: LaunchedApp) -> None:
    home = patient_app.client.get(f"/app/{patient_app.ctx}/patient/")
    assert home.status_code == 200 and 'id="results-link"' in home.text
    assert patient_app.client.get(f"/app/{patient_app.ctx}/patient/results").status_code == 200
    patient_app.app.config["PATIENT_RESULTS"] = False
    home = patient_app.client.get(f"/app/{patient_app.ctx}/patient/")
    assert home.status_code == 200 and "/patient/results" not in home.text
    assert patient_app.client.get(f"/app/{patient_app.ctx}/patient/results").status_code == 404


def test_a_results_setting_that_is_not_true_or_false_stops_the_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ATTACH_PATIENT_RESULTS"):
        create_app({"DATA_DIR": str(tmp_path), "PATIENT_RESULTS": "sometimes"})


def test_a_clinicians_page_reads_its_launch_once(server: FhirServerProcess, tmp_path: Path) -> None:
    """The audience check and the view share one load of the launch record per request."""
    transport = httpx.HTTPTransport()
    launched = launched_app(
        server.base_url,
        tmp_path,
        transport,
        client_id="audience-test",
        kind="ehr",
        patient=ADULT,
        user=ROWAN,
        scope=ALL,
    )
    try:
        store = launched.app.extensions["attach_fhir"].store
        reads: list[tuple[str, str]] = []
        get = store.get

        def counted(ns: str, key: str) -> Any:
            reads.append((ns, key))
            return get(ns, key)

        store.get = counted  # type: ignore[method-assign]
        for page in ("review/", "careplan/"):
            reads.clear()
            answer = launched.client.get(f"/app/{launched.ctx}/{page}")
            assert answer.status_code == 200, page
            assert reads.count((LAUNCH_NS, launched.ctx)) == 1, page
    finally:
        stop_app(launched.app)
        transport.close()
