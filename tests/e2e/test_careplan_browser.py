"""The clinician's care-plan pages in headless Chromium: an EHR launch, an ECR-R filled by
clicks, a proposal edited and approved, the plan with its goals; axe-core finds no WCAG 2.1 AA
violation on any of them, error page included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from ehr_sandbox.runner import Sandbox
from tests.e2e.test_careplan_e2e import SCOPES, ecr_r_answers
from tests.e2e.test_form_browser import AXE, axe_violations
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.shared_pool import pooled_app
from tests.fixtures.smart_app_server import AppServer, ehr_launch_url

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADULT = "sandbox-adult-29"


@pytest.fixture(scope="module")
def clinic(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer]]:
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("careplan-browser")
    with pooled_app(sandbox, data_dir, "careplan-browser", SCOPES) as server:
        yield sandbox, server


def test_the_care_plan_pages_are_accessible(
    clinic: tuple[Sandbox, AppServer], chromium: Browser
) -> None:
    sandbox, server = clinic
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    context = chromium.new_context(bypass_csp=True)  # axe is injected as an inline script
    page = context.new_page()
    try:
        page.goto(ehr_launch_url(sandbox, server.client_id, ADULT))
        page.wait_for_url(f"{server.url}/app/*/")
        app = page.url.rstrip("/")
        page.goto(f"{app}/assess/ecr-r/")
        for name, value in ecr_r_answers(anxiety=6, avoidance=4).items():
            page.locator(f"input[name='{name}'][value='{value}']").check()
        page.locator("#submit-button").click()
        page.wait_for_load_state()

        page.locator("#careplan-link").click()
        assert page.locator("#no-plan").count() == 1
        assert axe_violations(page) == []
        page.locator("#propose-link").click()
        assert axe_violations(page) == []
        page.locator("#propose-button").click()
        page.wait_for_selector("#approve-button")
        assert axe_violations(page) == []
        page.locator("#goal-0-target").fill("nine")
        page.locator("#save-button").click()
        assert page.locator("#goal-0-target-error").count() == 1
        assert axe_violations(page) == []
        page.locator("#goal-0-target").fill("4.75")
        page.locator("#approve-button").click()
        page.wait_for_selector("#sync-status")
        assert page.locator("#sync-status").get_attribute("data-status") == "delivered"
        assert page.locator("article.goal").count() == 2
        assert axe_violations(page) == []
    finally:
        context.close()
