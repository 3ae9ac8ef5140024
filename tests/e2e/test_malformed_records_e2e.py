"""Malformed data from the EHR never gives a 500: each page shows what it could read and says,
in a sentence, what it could not.

The record is real: a patient, a scored ECR-R response, a care plan with a Goal, written into
the sandbox FHIR server (Medplum). Medplum refuses malformed writes (a ``name`` list of strings,
an Observation ``code`` that is a string, a Bundle entry that is not an object all answer 422),
so the malformation is added on the way back by a hostile proxy of our own on loopback
(:mod:`tests.fixtures.malforming_proxy`), the EHR the app is launched against.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from attach_fhir.careplan_fhir import CAREPLAN_SYSTEM
from attach_fhir.instruments import library
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.scoring import Scorer
from attach_fhir.writeback import WritebackContext, build_transaction
from smart_app import stop as stop_app
from tests.fixtures.fhir_server import FhirServerProcess
from tests.fixtures.launched_app import LaunchedApp, launched_app
from tests.fixtures.malforming_proxy import MalformingProxy

pytestmark = pytest.mark.e2e

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
AGREEMENT = "http://attach-fhir.org/fhir/CodeSystem/agreement-7"
PRACTITIONER = "Practitioner/sandbox-practitioner-rowan"
CLINICIAN_SCOPE = "launch openid fhirUser user/*.cruds"
PATIENT_SCOPE = "launch/patient openid fhirUser patient/*.cruds"
FAMILY = "Malformedtest"
ACTIVITY = "Weekly attachment-focused session"
#: What every page says when it dropped something (how many depends on the page's reads).
SENTENCE = re.compile(
    r"(One|\d+) (result|part)s? (from|of) the record could not be read and (is|are) not shown\."
)


@dataclass
class Record:
    """What was written for the test's own patient."""

    patient: str
    qr_id: str
    goal_text: str


@pytest.fixture(scope="module")
def record(fhir_server: FhirServerProcess) -> Record:
    base = fhir_server.base_url.rstrip("/")
    with httpx.Client(timeout=30) as http:
        person = {
            "resourceType": "Patient",
            "name": [{"given": ["Ada"], "family": FAMILY}],
            "birthDate": "1990-04-01",
        }
        patient = http.post(f"{base}/Patient", json=person).json()["id"]
        writer = FhirClient(base, http)
        questionnaire = library().questionnaire(f"{ECR_R}|1.0.0")
        # Every item answered 4 (neutral): anxiety and avoidance are 4 whatever the reverse key.
        items = [
            {"linkId": str(n), "answer": [{"valueCoding": {"system": AGREEMENT, "code": "4"}}]}
            for n in range(1, 37)
        ]
        qr = {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": f"{ECR_R}|1.0.0",
            "status": "completed",
            "item": items,
        }
        ctx = WritebackContext(
            submission_id=f"malformed-{patient}",
            patient=f"Patient/{patient}",
            author=PRACTITIONER,
            authored="2024-03-10T09:00:00Z",
        )
        reply = writer.transaction(
            build_transaction(qr, questionnaire, Scorer(questionnaire).score(qr), ctx)
        )
        qr_id = str(reply["entry"][0]["response"]["location"].split("/")[1])
        goal_text = "Feel steadier when apart from a partner"
        goal = {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": goal_text},
            "subject": {"reference": f"Patient/{patient}"},
        }
        goal_id = http.post(f"{base}/Goal", json=goal).json()["id"]
        plan = {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "title": "Attachment-informed care plan",
            "identifier": [{"system": CAREPLAN_SYSTEM, "value": f"plan-{patient}"}],
            "subject": {"reference": f"Patient/{patient}"},
            "goal": [{"reference": f"Goal/{goal_id}"}],
            # No period: a plan the EHR holds need not carry every field this app writes.
            "activity": [{"detail": {"status": "scheduled", "description": ACTIVITY}}],
        }
        assert http.post(f"{base}/CarePlan", json=plan).status_code == 201
    return Record(patient, qr_id, goal_text)


@pytest.fixture(scope="module")
def proxy(fhir_server: FhirServerProcess) -> Iterator[MalformingProxy]:
    served = MalformingProxy(fhir_server.base_url)
    yield served
    served.stop()


def malformed(method: str, path: str, body: Any) -> Any:
    """The hostile EHR's answers: a non-object first in every ``name`` list, an entry that is
    not an object in every searchset, and a score Observation whose ``code`` is a string."""
    body = copy.deepcopy(body)
    if not isinstance(body, dict):
        return body
    if isinstance(body.get("name"), list):
        body["name"] = ["Junk Name", 7, *body["name"]]
    if body.get("resourceType") == "Bundle" and body.get("type") == "searchset":
        entries = body.setdefault("entry", [])
        for entry in entries:
            resource = entry.get("resource") or {}
            if isinstance(resource.get("name"), list):
                resource["name"] = ["Junk Name", *resource["name"]]
        observations = [e for e in entries if e["resource"]["resourceType"] == "Observation"]
        if observations:
            broken = copy.deepcopy(observations[0])
            broken["resource"]["id"] = "broken-score"
            broken["resource"]["code"] = "ecr-r-anxiety"
            entries.append(broken)
        else:
            entries.append("not an entry")
    return body


@pytest.fixture
def app(
    proxy: MalformingProxy, record: Record, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LaunchedApp]:
    kind = getattr(request, "param", "ehr")
    transport = httpx.HTTPTransport()
    launched = launched_app(
        proxy.base,
        tmp_path,
        transport,
        client_id="malformed-records-test",
        kind=kind,
        patient=record.patient,
        user=f"Patient/{record.patient}" if kind == "patient" else PRACTITIONER,
        scope=PATIENT_SCOPE if kind == "patient" else CLINICIAN_SCOPE,
    )
    proxy.mangle = malformed
    yield launched
    proxy.mangle = lambda method, path, body: body
    stop_app(launched.app)
    transport.close()


def page(app: LaunchedApp, path: str) -> str:
    """The page's text (tags dropped, entities unescaped), after checking it answered 200."""
    response = app.client.get(f"/app/{app.ctx}/{path}")
    text = response.get_data(as_text=True)
    assert response.status_code == 200, text[-2000:]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


def test_the_choose_page_shows_the_patient_and_the_earlier_response(
    app: LaunchedApp, record: Record
) -> None:
    text = page(app, "assess/")
    assert f"Ada {FAMILY}" in text  # the HumanName that parses, not the strings before it
    assert "Junk Name" not in text
    assert "2024-03-10" in text  # the completed response the search found
    assert SENTENCE.search(text)


def test_the_form_page_renders_the_instrument(app: LaunchedApp, record: Record) -> None:
    text = page(app, "assess/ecr-r/")
    first_item = library().questionnaire(f"{ECR_R}|1.0.0")["item"][0]
    assert html.unescape(first_item["text"]) in text
    assert SENTENCE.search(text)  # the Questionnaire search's entry that is not an object


def test_the_review_shows_the_scores_that_parse(app: LaunchedApp, record: Record) -> None:
    text = page(app, "review/")
    assert "4.00" in text or "4.0" in text  # anxiety and avoidance of all-neutral answers
    # the Observation whose code is a string, and the two names that are not HumanNames
    assert "3 parts of the record could not be read and are not shown." in text


def test_the_care_plan_page_shows_the_plan_and_its_activity(
    app: LaunchedApp, record: Record
) -> None:
    text = page(app, "careplan/")
    assert "Attachment-informed care plan" in text
    assert ACTIVITY in text
    assert "Active; the record gives no dates." in text
    assert SENTENCE.search(text)


@pytest.mark.parametrize("app", ["patient"], indirect=True)
def test_the_patients_page_shows_their_plan(app: LaunchedApp, record: Record) -> None:
    text = page(app, "patient/")
    assert ACTIVITY in text
    assert SENTENCE.search(text)


def test_a_score_search_reads_what_parses(proxy: MalformingProxy, record: Record) -> None:
    """The proxy does serve the malformation (a test of the test): the raw search holds it."""
    proxy.mangle = malformed
    try:
        with httpx.Client(timeout=30) as http:
            raw = http.get(
                f"{proxy.base}/Observation",
                params={"patient": f"Patient/{record.patient}"},
            ).json()
    finally:
        proxy.mangle = lambda method, path, body: body
    codes = [e["resource"].get("code") for e in raw["entry"] if isinstance(e, dict)]
    assert "ecr-r-anxiety" in codes
