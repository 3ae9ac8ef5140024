"""The patient's side in headless Chromium: a standalone patient launch against the sandbox EHR
completes the re-assessment their plan assigns, and writes a journal entry.

The plan is written first with a clinician's token (the way the care-plan flow writes it). The
ECR-R answers give hand-computed scores: anxiety items keyed 3 (items 9 and 11 answered 5,
reversed 8 - 5 = 3): mean 3; avoidance items keyed 2 (reversed items answered 6): mean 2. A
patient's own scores are written ``preliminary``, authored by the patient.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from attach_fhir.careplan_fhir import build_resources
from attach_fhir.careplan_proposal import ProposalInputs, propose
from attach_fhir.careplan_writeback import PlanContext, approval_transaction
from attach_fhir.goal_target import packaged_scales
from attach_fhir.journal import CAREPLAN_ACTIVITY_EXT, JOURNAL_URL
from ehr_sandbox.runner import Sandbox
from tests.e2e.test_form_browser import AXE, axe_violations
from tests.fixtures.sandbox import SANDBOX_CLIENTS, SandboxFactory, clinician_fhir
from tests.fixtures.shared_pool import pooled_app
from tests.fixtures.smart_app_server import AppServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADULT = "sandbox-adult-29"
ROWAN = "Practitioner/sandbox-practitioner-rowan"
#: What a patient portal grants: the patient's own compartment. No Provenance: the sandbox's
#: compartment check cannot place one (see test_assess_e2e), so the app writes without it.
PATIENT_SCOPES = (
    "launch/patient openid fhirUser patient/Patient.r patient/Questionnaire.rs "
    "patient/QuestionnaireResponse.crus patient/Observation.crs patient/CarePlan.rs "
    "patient/Goal.rs patient/Task.rs offline_access"
)
CLINICIAN_SCOPES = (
    "launch user/CarePlan.cruds user/Goal.cruds user/Observation.rs "
    "user/QuestionnaireResponse.rs user/Provenance.cruds"
)
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
ANXIETY_REVERSED = {9, 11}
AVOIDANCE_REVERSED = {20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}


@pytest.fixture(scope="module")
def world(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer, httpx.Client]]:
    """The sandbox, the app registered for patient launches, and a clinician's FHIR client."""
    public = SANDBOX_CLIENTS["public"]
    sandbox = sandbox_factory(clients=[public.registration()], with_app=False)
    assert sandbox.urls is not None
    data_dir: Path = tmp_path_factory.mktemp("patient-app")
    with pooled_app(sandbox, data_dir, "patient-browser", PATIENT_SCOPES) as server:
        fhir = clinician_fhir(sandbox, public, ADULT, ROWAN.split("/")[1], CLINICIAN_SCOPES)
        yield sandbox, server, fhir
        fhir.close()


def write_plan(fhir: httpx.Client, base: str) -> str:
    """An approved plan for the adult (re-assessment with the ECR-R, journaling); its id."""
    plan_id = str(uuid.uuid4())
    proposal = propose(
        ProposalInputs(
            scores={"ecr-r-anxiety": 6.0, "ecr-r-avoidance": 4.0},
            scales=packaged_scales(),
            start_date=dt.date.today(),
            birth_date="1990-01-01",
            clinician=ROWAN,
        )
    )
    built = build_resources(proposal, plan_id=plan_id, subject=f"Patient/{ADULT}", author=ROWAN)
    ctx = PlanContext(plan_id, f"Patient/{ADULT}", ROWAN, "2025-01-06T10:00:00Z", base)
    response = fhir.post(
        "",
        json=approval_transaction(built, ctx),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text
    careplan = next(e for e in response.json()["entry"] if "CarePlan/" in e["response"]["location"])
    return str(careplan["response"]["location"]).split("/_history")[0].rsplit("/", 2)[-1]


def search(fhir: httpx.Client, kind: str, **params: str) -> list[dict[str, Any]]:
    response = fhir.get(kind, params=params)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry") or []]


def sign_in_as_patient(page: Page, server: AppServer) -> None:
    """From the app's start page through the sandbox portal's sign-in and approval."""
    page.goto(f"{server.url}/")
    page.locator("a[href*='role=patient']").first.click()
    page.locator(f"button[data-ref='Patient/{ADULT}']").click()
    page.wait_for_load_state()
    approve = page.get_by_role("button", name="Approve")
    if approve.count():  # the sandbox asks only when its knobs say so
        approve.click()
    page.wait_for_url(f"{server.url}/app/*/patient/")  # a patient's launch lands on their home


def test_a_patient_completes_the_assigned_assessment_and_a_journal_entry(
    world: tuple[Sandbox, AppServer, httpx.Client], chromium: Browser
) -> None:
    sandbox, server, fhir = world
    assert sandbox.urls is not None
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    careplan_id = write_plan(fhir, sandbox.urls.fhir_base)
    # axe is injected as an inline script, which the app's CSP (rightly) refuses.
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        sign_in_as_patient(page, server)
        home = page.url
        refused = page.request.get(home.replace("/patient/", "/careplan/"))
        assert refused.status == 403  # the clinician's pages are not the patient's
        activities = page.locator("#activities li")
        assert "Attachment journaling" in activities.all_inner_texts()[-1]
        assigned = page.locator("#todo li")
        assert assigned.count() == 1
        assert assigned.first.get_attribute("data-source") == f"CarePlan/{careplan_id}"

        # The assigned re-assessment, in the assess flow's form.
        assigned.first.locator("a").click()
        page.wait_for_selector("input[name='q:1']")
        for n in range(1, 37):
            keyed, reversed_ = (3, ANXIETY_REVERSED) if n <= 18 else (2, AVOIDANCE_REVERSED)
            value = 8 - keyed if n in reversed_ else keyed
            page.locator(f"input[name='q:{n}'][value='{value}']").check()
        page.locator("#submit-button").click()
        page.wait_for_load_state()

        (response,) = [
            r
            for r in search(fhir, "QuestionnaireResponse", subject=f"Patient/{ADULT}")
            if r["questionnaire"].startswith(ECR_R)
        ]
        assert response["status"] == "completed"
        assert response["author"]["reference"] == f"Patient/{ADULT}"
        assert response["source"]["reference"] == f"Patient/{ADULT}"
        scores = search(
            fhir, "Observation", **{"derived-from": f"QuestionnaireResponse/{response['id']}"}
        )
        by_code = {o["code"]["coding"][0]["code"]: o for o in scores}
        assert {c: o["valueQuantity"]["value"] for c, o in by_code.items()} == {
            "ecr-r-anxiety": 3,
            "ecr-r-avoidance": 2,
        }
        assert {o["status"] for o in scores} == {"preliminary"}  # not reviewed by a clinician
        assert {o["performer"][0]["reference"] for o in scores} == {f"Patient/{ADULT}"}

        # Back home, the assignment shows as done today; then a journal entry, linked to the
        # plan's journaling activity.
        page.goto(home)
        assert (
            page.locator("#todo li").first.get_attribute("data-done") == response["authored"][:10]
        )
        assert axe_violations(page) == []
        page.locator("#journal-link").click()
        assert axe_violations(page) == []
        page.locator("#journal-submit").click()  # nothing written: the first prompt is required
        assert "Enter an answer" in page.locator("main").inner_text()
        assert axe_violations(page) == []
        page.get_by_label("Describe a moment in the last few days with someone close to you.").fill(
            "My sister called and I let it ring."
        )
        page.get_by_label("What did you feel in that moment?").fill("Guilty, then relieved.")
        page.locator("#journal-submit").click()
        page.wait_for_selector("#sync-status")
        assert page.locator("#sync-status").get_attribute("data-status") == "delivered"
        assert (
            "My sister called and I let it ring."
            in page.locator(".journal-entry").first.inner_text()
        )

        (entry,) = [
            r
            for r in search(fhir, "QuestionnaireResponse", subject=f"Patient/{ADULT}")
            if r["questionnaire"].startswith(JOURNAL_URL)
        ]
        assert entry["author"]["reference"] == f"Patient/{ADULT}"
        assert entry["basedOn"] == [{"reference": f"CarePlan/{careplan_id}"}]
        assert entry["extension"][0]["url"] == CAREPLAN_ACTIVITY_EXT
        assert entry["extension"][0]["valueCoding"]["code"] == "attachment-journaling"
        answers = {i["linkId"]: i["answer"][0]["valueString"] for i in entry["item"]}
        assert answers == {
            "moment": "My sister called and I let it ring.",
            "felt": "Guilty, then relieved.",
        }
    finally:
        context.close()
