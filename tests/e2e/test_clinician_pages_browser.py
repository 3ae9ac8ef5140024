"""The clinician's pages as a clinician reads them, in headless Chromium after an EHR launch:
the signed-in name, the form's instructions-free essentials (progress count, item errors), where
the answers went, the review's results first with a readable plane, and the care plan's numbers,
dates, version and progress in words. axe-core finds no WCAG 2.1 AA violation at 1280 and 320 px.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from ehr_sandbox.runner import Sandbox
from tests.e2e.test_careplan_e2e import SCOPES, ecr_r_answers
from tests.e2e.test_form_browser import AXE, axe_violations
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.shared_pool import pooled_app
from tests.fixtures.smart_app_server import AppServer, ehr_launch_url

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADULT = "sandbox-adult-29"
#: The care-plan scopes and the signed-in clinician's own Practitioner record.
CLINICIAN_SCOPES = SCOPES.replace("offline_access", "user/Practitioner.r offline_access")
#: A number with more than two decimals: a score not rounded for reading (not a DOI's
#: "10.1037/..." or a page range's "78.2.350", which sit between dots and slashes).
LONG_NUMBER = re.compile(r"(?<![\w./-])\d+\.\d{3,}(?![\w./-])")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 320, "height": 640}


def shot(page: Page, name: str) -> None:
    """A screenshot for a person to look at, when PAGES_SHOTS names a folder."""
    folder = os.environ.get("PAGES_SHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def baseline_answers() -> dict[str, str]:
    """ECR-R answers with anxiety 73/18 = 4.0555... (item 1 one point up) and avoidance 4."""
    answers = ecr_r_answers(anxiety=4, avoidance=4)
    answers["q:1"] = "5"  # item 1 is keyed forwards: anxiety sum 17 x 4 + 5 = 73
    return answers


def later_answers() -> dict[str, str]:
    """Anxiety 3.50 (nine items at 3, nine at 4), avoidance 4."""
    first = ecr_r_answers(anxiety=3, avoidance=4)
    second = ecr_r_answers(anxiety=4, avoidance=4)
    return {k: (first[k] if int(k[2:]) <= 9 else second[k]) for k in first}


def fill(page: Page, answers: dict[str, str]) -> None:
    for name, value in answers.items():
        page.locator(f"input[name='{name}'][value='{value}']").check()


def accessible_at_both_widths(page: Page) -> None:
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        assert axe_violations(page) == [], size
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"], size
    page.set_viewport_size(DESKTOP)


def no_long_numbers(page: Page) -> None:
    found = LONG_NUMBER.findall(page.content())
    assert found == [], f"{page.url}: {found}"


@pytest.fixture(scope="module")
def clinic(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer]]:
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("clinician-pages")
    with pooled_app(sandbox, data_dir, "clinician-pages", CLINICIAN_SCOPES) as server:
        yield sandbox, server


def test_a_clinician_reads_every_page_plainly(
    clinic: tuple[Sandbox, AppServer], chromium: Browser
) -> None:
    sandbox, server = clinic
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    context = chromium.new_context(bypass_csp=True, viewport=DESKTOP)  # axe is inline script
    page = context.new_page()
    try:
        page.goto(ehr_launch_url(sandbox, server.client_id, ADULT))
        page.wait_for_url(f"{server.url}/app/*/")
        app = page.url.rstrip("/")

        # Landing: the clinician by name (the seed's Practitioner), permissions folded away.
        assert page.locator("#user-name").inner_text() == "Dr. Rowan Example"
        details = page.locator("details#capabilities-details")
        assert details.count() == 1 and details.get_attribute("open") is None
        shot(page, "landing")
        accessible_at_both_widths(page)

        # Form: the count is live as answers are clicked ...
        page.goto(f"{app}/assess/ecr-r/")
        assert page.locator("#progress").inner_text() == "0 of 36 answered"
        # Each statement carries its number (the Questionnaire's SDC prefix).
        legends = page.locator("fieldset.q legend")
        assert legends.first.inner_text().startswith("1. ")
        assert legends.nth(35).inner_text().startswith("36. ")
        some = dict(list(baseline_answers().items())[:12])
        fill(page, some)
        assert page.locator("#progress").inner_text() == "12 of 36 answered"
        # ... and right after the server's round trip; the errors end in one colon, no ".:".
        page.locator("#submit-button").click()
        page.wait_for_selector(".err-summary")
        assert page.locator("#progress").inner_text() == "12 of 36 answered"
        errors = page.locator(".err-summary li").all_inner_texts()
        assert len(errors) == 24
        assert not [e for e in errors if re.search(r"[.?!:;,]:", e)], errors
        assert all(re.search(r"\w(: |… )Select an answer$", e) for e in errors), errors
        shot(page, "form-errors")
        accessible_at_both_widths(page)
        fill(page, baseline_answers())
        assert page.locator("#progress").inner_text() == "36 of 36 answered"
        page.locator("#submit-button").click()
        page.wait_for_url(re.compile(r".*/review/responses/.*"))

        # Review: where the answers went, the results and the plane first, then the instrument.
        receipt = page.locator("#receipt")
        assert receipt.get_attribute("data-state") == "delivered"
        assert re.fullmatch(
            r"Saved to the record \(QuestionnaireResponse and 2 score Observations\) at "
            r"\d\d:\d\d on \d{1,2} [A-Z][a-z]{2} \d{4}\.",
            receipt.inner_text(),
        ), receipt.inner_text()
        title = page.locator("#questionnaire-title").inner_text()
        assert title not in page.locator("h2").all_inner_texts()
        assert page.locator(".score-value").all_inner_texts() == ["4.06", "4.00"]
        plane = page.locator("svg.chart-plane").first
        box = plane.bounding_box()
        assert box is not None and box["width"] >= 400, box
        about = page.locator(".about-instrument")
        assert about.locator("h3").inner_text() == "About this instrument"
        assert "http" in about.locator(".canonical").inner_text()
        results_first = page.evaluate(
            "() => !!(document.querySelector('table.scores').compareDocumentPosition("
            "document.querySelector('.about-instrument')) & Node.DOCUMENT_POSITION_FOLLOWING)"
        )
        assert results_first
        date_cell = page.locator("table.scores .recorded").first
        assert date_cell.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
        no_long_numbers(page)
        shot(page, "review")
        page.set_viewport_size(PHONE)
        # No date breaks across lines in a table cell, at 320 px either.
        dates, wrapped = page.locator("table.chart-data td").evaluate_all(
            "cells => { const d = cells.filter(c => /^\\d{4}-\\d\\d-\\d\\d$/.test("
            "c.innerText.trim())); return [d.length, d.filter(c => c.getBoundingClientRect()"
            ".height > 2 * parseFloat(getComputedStyle(c).lineHeight)).length]; }"
        )
        assert (dates, wrapped) == (2, 0)  # one submission: a row in each of the two tables
        narrow = plane.bounding_box()
        assert narrow is not None and narrow["width"] <= 320 - 16, narrow
        shot(page, "review-320")
        accessible_at_both_widths(page)

        # Care-plan proposal and editor: rounded scores, date inputs, one primary button.
        page.goto(f"{app}/careplan/propose")
        no_long_numbers(page)
        page.locator("#propose-button").click()
        page.wait_for_selector("#approve-button")
        no_long_numbers(page)
        assert "baseline 4.06;" in page.locator("fieldset.goal-edit legend").first.inner_text() + (
            page.locator("fieldset.goal-edit legend").last.inner_text()
        )
        assert (
            page.locator("input[id$='-due']").evaluate_all("els => els.map(e => e.type)")
            == ["date"] * page.locator("input[id$='-due']").count()
        )
        primaries = page.locator(".careplan-edit form button:not(.secondary)")
        assert primaries.all_inner_texts() == ["Approve and write to the record"]
        area = page.locator("textarea[id^='activity-']").first
        assert area.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), "text is cut off"
        shot(page, "careplan-edit")
        accessible_at_both_widths(page)
        page.locator("#approve-button").click()
        page.wait_for_selector("#sync-status")

        # The plan: its version in words, and progress before any re-assessment.
        version = page.locator("#plan-version").inner_text()
        assert re.fullmatch(r"This is version 1, updated \d{1,2} [A-Z][a-z]{2} \d{4}\.", version)
        assert page.locator(".achievement").all_inner_texts() == ["not yet re-assessed"] * 2
        no_long_numbers(page)
        page.locator("#revise-link").click()
        page.locator("#approve-button").click()
        page.wait_for_selector("#sync-status")
        assert page.locator("#plan-version").inner_text().startswith("This is version 2, ")

        # A later assessment: anxiety 3.50 is judged against the baseline 4.06.
        page.goto(f"{app}/assess/ecr-r/")
        fill(page, later_answers())
        page.locator("#submit-button").click()
        page.wait_for_url(re.compile(r".*/review/responses/.*"))
        page.goto(f"{app}/careplan/")
        if page.locator(".achievement", has_text="not yet").count() == 2:
            page.locator("#reassess-button").click()
            page.wait_for_load_state()
        anxiety = page.locator("article.goal", has_text="nxiety")
        target = anxiety.locator("dt:text('Target') + dd").inner_text().split(" ")[0]
        progress = anxiety.locator(".achievement").inner_text()
        assert re.fullmatch(
            rf"(achieved|improving|no change): 4\.06 → 3\.50, target {re.escape(target)}",
            progress,
        ), progress
        no_long_numbers(page)
        shot(page, "careplan-plan")
        accessible_at_both_widths(page)

        page.goto(f"{app}/review/")
        no_long_numbers(page)
    finally:
        context.close()
