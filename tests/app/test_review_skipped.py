"""The scores page of an ECR-RS response that skipped every relationship: it says so, instead of
"no score Observations yet" (the real sandbox FHIR server holds the responses)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from smart_app import stop as stop_app
from tests.fixtures.fhir_server import FhirServerProcess
from tests.fixtures.launched_app import launched_app

pytestmark = pytest.mark.e2e  # starts the sandbox FHIR server process

SCOPE = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs user/QuestionnaireResponse.rs "
    "user/Observation.rs"
)
ECR_RS = json.loads(
    (Path(__file__).resolve().parents[2] / "questionnaires" / "ecr-rs.json").read_text("utf-8")
)


def response(patient: str, gates: dict[str, bool | None]) -> dict[str, object]:
    """An ECR-RS response with only its relationship gates (None: the gate left unanswered)."""
    items = [
        {
            "linkId": target,
            "item": [
                {"linkId": f"{target}.applies"}
                | ({"answer": [{"valueBoolean": answer}]} if answer is not None else {})
            ],
        }
        for target, answer in gates.items()
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{ECR_RS['url']}|{ECR_RS['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-11-01T10:00:00Z",
        "item": items,
    }


@pytest.mark.parametrize(
    ("gates", "notice"),
    [
        ({"mother": False, "father": None, "partner": False, "friend": None}, "all-skipped"),
        # mother answered "yes" but nothing was scored (no Observations): not "all skipped"
        ({"mother": True, "father": False, "partner": False, "friend": False}, "no-scores"),
    ],
)
def test_a_response_that_skipped_every_relationship_says_so(
    gates: dict[str, bool | None],
    notice: str,
    fhir_server: FhirServerProcess,
    tmp_path: Path,
) -> None:
    base = fhir_server.base_url.rstrip("/")
    with httpx.Client(timeout=30) as http:
        # A patient of this test's own: no earlier scores of anybody's on the shared server.
        person = {"resourceType": "Patient", "birthDate": "1990-01-01"}
        patient = http.post(f"{base}/Patient", json=person).json()["id"]
        created = http.post(f"{base}/QuestionnaireResponse", json=response(patient, gates))
        assert created.status_code == 201, created.text
        qr_id = created.json()["id"]
        transport = httpx.HTTPTransport()
        launched = launched_app(
            base,
            tmp_path,
            transport,
            client_id="review-skipped-test",
            kind="ehr",
            patient=patient,
            user="Practitioner/sandbox-practitioner-rowan",
            scope=SCOPE,
        )
        try:
            page = launched.client.get(f"/app/{launched.ctx}/review/responses/{qr_id}")
        finally:
            stop_app(launched.app)
            transport.close()
    assert page.status_code == 200, page.text
    shown = {n for n in ("all-skipped", "no-scores") if f'id="{n}"' in page.text}
    assert shown == {notice}
