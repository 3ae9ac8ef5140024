"""The patient's own pages in headless Chromium after a standalone patient launch against the
sandbox: goals and the assigned questionnaire in plain words, their results, and the friendly
403 for every clinician page; axe-clean at 1280 and 320 px (no sideways scroll), and by touch.

A clinician's token writes the plan (ECR-R anxiety 6.0 -> goal, avoidance 4.0) and a Task from
Dr. Rowan Example (the sandbox's practitioner) due on 15 January; the patient then answers the
ECR-R so that anxiety = 3 and avoidance = 2 (items keyed by hand as in test_patient_browser).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from ehr_sandbox.runner import Sandbox
from tests.e2e.test_form_browser import AXE, axe_violations
from tests.e2e.test_patient_browser import (
    ADULT,
    ANXIETY_REVERSED,
    AVOIDANCE_REVERSED,
    CLINICIAN_SCOPES,
    ECR_R,
    PATIENT_SCOPES,
    ROWAN,
    write_plan,
)
from tests.fixtures.sandbox import SANDBOX_CLIENTS, SandboxFactory, clinician_fhir
from tests.fixtures.shared_pool import pooled_app
from tests.fixtures.smart_app_server import AppServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The patient's grant, closing the Task their answers complete, and the requester's name
#: (Practitioner is in no patient compartment).
SCOPES = f"{PATIENT_SCOPES} patient/Task.u patient/Practitioner.r"
WIDTHS = {"desktop": (1280, 800), "320px": (320, 640)}
CLINICIAN_PAGES = ("assess/", "review/", "careplan/", "careplan/propose", "patients/")
#: Pattern names and clinician wording that must not reach the patient.
NOT_FOR_PATIENTS = re.compile(
    r"preoccupied|fearful|dismissing|licen[cs]e|fits this patient|What the EHR allows", re.I
)


@pytest.fixture(scope="module")
def world(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer, httpx.Client]]:
    public = SANDBOX_CLIENTS["public"]
    sandbox = sandbox_factory(clients=[public.registration()], with_app=False)
    assert sandbox.urls is not None
    data_dir: Path = tmp_path_factory.mktemp("patient-pages")
    with pooled_app(sandbox, data_dir, "patient-pages", SCOPES) as server:
        fhir = clinician_fhir(
            sandbox, public, ADULT, ROWAN.split("/")[1], f"{CLINICIAN_SCOPES} user/Task.crus"
        )
        yield sandbox, server, fhir
        fhir.close()


def send_task(fhir: httpx.Client) -> str:
    """An SDC Task asking the adult to fill in the ECR-R, from Rowan, due 15 January."""
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                             "code": "complete-questionnaire"}]},
        "for": {"reference": f"Patient/{ADULT}"},
        "owner": {"reference": f"Patient/{ADULT}"},
        "requester": {"reference": ROWAN},
        "authoredOn": "2025-01-06T10:00:00Z",
        "restriction": {"period": {"end": "2027-01-15"}},
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": ECR_R}],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
    }  # fmt: skip
    made = fhir.post("Task", json=task, headers={"Content-Type": "application/fhir+json"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def sign_in(page: Page, server: AppServer) -> str:
    """Through the sandbox portal; a patient's launch lands on their home. Its URL."""
    page.goto(f"{server.url}/")
    page.locator("a[href*='role=patient']").first.click()
    page.locator(f"button[data-ref='Patient/{ADULT}']").click()
    page.wait_for_load_state()
    approve = page.get_by_role("button", name="Approve")
    if approve.count():
        approve.click()
    page.wait_for_url(f"{server.url}/app/*/patient/")
    return page.url


def check_layout(page: Page, width: int) -> None:
    assert axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "sideways scroll"
    home = page.locator(".review-nav a[href$='/patient/']")
    assert home.count() == 1  # every patient page links back home


def test_the_patient_reads_their_plan_and_results_in_plain_words_and_never_a_clinicians_page(
    world: tuple[Sandbox, AppServer, httpx.Client], chromium: Browser
) -> None:
    sandbox, server, fhir = world
    assert sandbox.urls is not None and AXE.is_file()
    write_plan(fhir, sandbox.urls.fhir_base)
    task_id = send_task(fhir)
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        home = sign_in(page, server)
        ctx_base = home.removesuffix("patient/")
        text = page.locator("main").inner_text()
        assert not NOT_FOR_PATIENTS.search(text), NOT_FOR_PATIENTS.search(text)

        # The assignment, named: which questionnaire, who asked, by when.
        item = page.locator(f"#todo li[data-source='Task/{task_id}'] .assignment")
        assert re.fullmatch(
            r"ECR-R relationships questionnaire, requested by Dr\. Rowan Example, "
            r"due 15 Jan( 2027)?",
            item.inner_text(),
        ), item.inner_text()
        assert "Last filled in" not in text  # nothing filled in by the patient yet

        # The goal (the plan's rules: anxiety 6.00 down; avoidance 4.00 too).
        goals = page.locator("#goals .patient-goal")
        whats = goals.locator(".goal-what").all_inner_texts()
        assert "Lower your ECR-R attachment anxiety score" in whats
        anxiety = goals.filter(has_text="ECR-R attachment anxiety").locator(".goal-target")
        assert re.fullmatch(
            r"\d\.\d\d or lower, from 6\.00 when the goal was set "
            r"\(the scale runs from 1\.00 to 7\.00\)",
            anxiety.inner_text(),
        ), anxiety.inner_text()
        progress = goals.filter(has_text="ECR-R attachment anxiety").locator(".goal-progress")
        assert progress.inner_text().startswith("Not measured again yet")

        # Every clinician page: 403 and a friendly page leading home.
        for path in CLINICIAN_PAGES:
            response = page.goto(ctx_base + path)
            assert response is not None and response.status == 403, path
            assert page.locator("#for-care-team h1").inner_text() == (
                "This page is for your care team"
            )
            assert page.locator("#patient-home").get_attribute("href", timeout=1000)
        assert axe_violations(page) == []
        page.locator("#patient-home").click()
        assert page.url == home

        # The assigned ECR-R, through the shared form: no use restrictions, a way home.
        page.locator(f"#todo li[data-source='Task/{task_id}'] a").first.click()
        page.wait_for_selector("input[name='q:1']")
        assert page.locator("#restrictions").count() == 0
        assert page.locator("#patient-home-link").count() == 1
        for n in range(1, 37):
            keyed, reversed_ = (3, ANXIETY_REVERSED) if n <= 18 else (2, AVOIDANCE_REVERSED)
            value = 8 - keyed if n in reversed_ else keyed
            page.locator(f"input[name='q:{n}'][value='{value}']").check()
        page.locator("#submit-button").click()
        page.wait_for_url(re.compile(r".*/patient/\?sid="))  # home, not the clinician's review
        assert page.locator("#sync-status").get_attribute("data-status") == "delivered"

        # Results: dimension scores with their scale, not yet reviewed.
        page.goto(ctx_base + "patient/results")
        section = page.locator(".result-day").first
        assert section.locator("h2").inner_text().startswith("ECR-R relationships questionnaire")
        assert section.locator("li").all_inner_texts() == [
            "ECR-R attachment anxiety: 3.00 on a scale from 1.00 to 7.00 "
            "(higher means more anxious)",
            "ECR-R attachment avoidance: 2.00 on a scale from 1.00 to 7.00 "
            "(higher means more avoidant)",
        ]
        assert "Not yet looked at by your clinician." in section.inner_text()

        for name, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            for path in ("patient/", "patient/results", "patient/journal"):
                page.goto(ctx_base + path)
                text = page.locator("main").inner_text()
                assert not NOT_FOR_PATIENTS.search(text), (name, path)
                check_layout(page, width)
            page.goto(ctx_base + "review/")  # the friendly 403 page, at this width too
            assert axe_violations(page) == []
            assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


def test_on_a_phone_the_patient_taps_from_results_back_home(
    world: tuple[Sandbox, AppServer, httpx.Client], chromium: Browser
) -> None:
    _, server, _ = world
    context = chromium.new_context(
        viewport={"width": 320, "height": 640}, has_touch=True, is_mobile=True, bypass_csp=True
    )
    page = context.new_page()
    try:
        home = sign_in(page, server)
        page.locator("#results-link").tap()
        page.wait_for_url(home + "results")
        link = page.locator(".patient-nav a[href$='/patient/']")
        box = link.bounding_box()
        assert box is not None and box["height"] >= 24  # WCAG 2.5.8 target size
        link.tap()
        page.wait_for_url(home)
        check_layout(page, 320)
    finally:
        context.close()
