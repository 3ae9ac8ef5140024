"""The Choose page in headless Chromium for a 4-year-old, a 9-year-old and an adult after real EHR
launches against the sandbox: the fit of each instrument, fitting ones first, the RQ author's
restriction in view, licence notes closed, "Use anyway" for what does not fit; axe clean at 1280
and 320 px. Ages come from the seed (``AGE:4:73``, ``AGE:9:140``, ``AGE:29:35``), counted from
the seed day the sandbox was started with, never from the calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from ehr_sandbox.runner import Sandbox
from smart_app.web.security import COOKIE_NAME
from tests.e2e.test_pages_a11y import AXE, WIDTHS, axe_violations
from tests.fixtures.smart_app_server import (
    AppServer,
    ehr_launch,
    launch_base,
    registered_app,
    session_cookie,
)
from tests.fixtures.smart_app_server import (
    Browser as HttpBrowser,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PATIENTS = {"child": "sandbox-child-4", "school": "sandbox-child-9", "adult": "sandbox-adult-29"}


@dataclass
class Launch:
    """One launch: the app's URL for its pages and the session cookie."""

    server: AppServer
    base: str
    cookie: str


@pytest.fixture(scope="module")
def launches(
    sandbox_factory: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Launch]]:
    sandbox = sandbox_factory(with_app=False)
    server = registered_app(sandbox, "public", tmp_path_factory.mktemp("fit-app"))
    browsers: list[HttpBrowser] = []
    try:
        out = {}
        for key, patient in PATIENTS.items():
            http = HttpBrowser()
            browsers.append(http)
            landing = ehr_launch(http, sandbox, server, patient)
            out[key] = Launch(server, launch_base(server, landing), session_cookie(http, server))
        yield out
    finally:
        for http in browsers:
            http.close()
        server.stop()


def choose(chromium: Browser, launch: Launch, width: str) -> Page:
    w, h = WIDTHS[width]
    context = chromium.new_context(bypass_csp=True, viewport={"width": w, "height": h})
    context.add_cookies([{"name": COOKIE_NAME, "value": launch.cookie, "url": launch.server.url}])
    page = context.new_page()
    response = page.goto(f"{launch.base}/assess/")
    assert response is not None and response.status == 200
    return page


def badges(page: Page) -> list[tuple[str, str]]:
    """(instrument id, badge) in page order."""
    cards = page.locator("article.instrument")
    return [
        (
            (cards.nth(n).get_attribute("id") or "").removeprefix("instrument-"),
            cards.nth(n).locator(".fit-badge").inner_text(),
        )
        for n in range(cards.count())
    ]


def check(page: Page, width: str, shot: Path) -> None:
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    page.screenshot(path=str(shot), full_page=True)
    assert axe_violations(page) == []
    if width == "320px":
        assert page.evaluate("document.documentElement.scrollWidth") <= 320


@pytest.mark.parametrize("width", WIDTHS)
def test_a_four_year_old(
    chromium: Browser, launches: dict[str, Launch], width: str, tmp_path: Path
) -> None:
    page = choose(chromium, launches["child"], width)
    # every self-report instrument is under the reading age of 12; the PRFQ is validated for
    # children 0-3, used with 42-60 months and 0-12 years: it may fit, and comes first
    assert badges(page) == [
        ("prfq", "May fit"),
        ("ecr", "Does not fit"),
        ("ecr-rs", "Does not fit"),
        ("ecr-r", "Does not fit"),
        ("rq", "Does not fit"),
    ]
    ecr_rs = page.locator("#instrument-ecr-rs")
    assert ecr_rs.locator("a.start").count() == 0
    assert ecr_rs.get_by_role("button", name="Use anyway").is_visible()
    check(page, width, tmp_path / f"choose-child-4-{width}.png")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_nine_year_old_uses_the_ecr_rs_anyway_without_the_partner_section(
    chromium: Browser, launches: dict[str, Launch], width: str, tmp_path: Path
) -> None:
    page = choose(chromium, launches["school"], width)
    assert badges(page)[0] == ("prfq", "May fit")
    check(page, width, tmp_path / f"choose-child-9-{width}.png")
    page.locator("#instrument-ecr-rs").get_by_role("button", name="Use anyway").click()
    page.wait_for_url("**/assess/ecr-rs/?anyway=*")
    assert (
        "the patient is 9, under the reading age of 12" in page.locator("#fill-note").inner_text()
    )
    assert "romantic partner" in page.locator("#hidden-sections").inner_text()
    assert page.locator('[name="q:partner.applies"]').count() == 0
    assert page.locator('[name="q:mother.applies"]').count() == 2  # yes / no
    check(page, width, tmp_path / f"form-ecr-rs-child-9-{width}.png")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_adult(
    chromium: Browser, launches: dict[str, Launch], width: str, tmp_path: Path
) -> None:
    page = choose(chromium, launches["adult"], width)
    assert badges(page) == [
        ("ecr", "Fits"),
        ("ecr-rs", "Fits"),
        ("ecr-r", "Fits"),
        ("rq", "Fits"),
        ("prfq", "Does not fit"),  # no child on record
    ]
    page.screenshot(path=str(tmp_path / f"choose-adult-closed-{width}.png"), full_page=True)
    if width == "desktop":
        # the whole page was about 3,000 px tall; the five cards now take about 1,150 px
        height = page.locator("#instruments").bounding_box()
        assert height is not None and height["height"] < 1250, height
    rq = page.locator("#instrument-rq")
    key = rq.locator(".restriction-key")
    assert key.is_visible()
    assert "not appropriate for use in individual assessments" in key.inner_text()
    notes = rq.locator("details.about")
    assert notes.get_attribute("open") is None
    commercial = notes.get_by_text("You cannot use these measures for commercial purposes")
    assert not commercial.is_visible()  # one click away
    notes.locator("summary").click()
    assert commercial.is_visible()
    assert rq.locator("a.start").is_visible()
    check(page, width, tmp_path / f"choose-adult-{width}.png")
    page.context.close()
