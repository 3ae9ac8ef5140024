"""WCAG 2.1 A/AA (axe-core) on the landing, choose, review-scores and history pages after a real
EHR launch against the sandbox, at desktop width and at 320 px (no sideways scrolling either).

The launch and three ECR-R submissions go through the app over HTTP the way a browser posts
them (tests.fixtures.smart_app_server.Browser); headless Chromium then opens each page with the
launch's session cookie. Answers are chosen so the three points on the plane differ: every item
scores 6, 4, then 2 after reverse keying, so anxiety = avoidance = 6, 4, 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ehr_sandbox.runner import Sandbox
from smart_app.web.security import COOKIE_NAME
from tests.fixtures.sandbox import hidden_value
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

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ADULT = "sandbox-adult-29"
#: ECR-R items keyed in reverse (published key): answer 8 - x there to score x.
REVERSED = {9, 11, 20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}
LEVELS = (6, 4, 2)
WIDTHS = {"desktop": (1280, 800), "320px": (320, 640)}


@dataclass
class Launched:
    """The app after a launch and three submissions: where the pages are, and the cookie."""

    server: AppServer
    base: str
    sid: str
    qr_id: str


def answers(level: int) -> dict[str, str]:
    """Every ECR-R item answered so that it scores ``level`` after reverse keying."""
    return {f"q:{n}": str(8 - level if n in REVERSED else level) for n in range(1, 37)}


@pytest.fixture(scope="module")
def launched(
    sandbox_factory: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launched]:
    sandbox = sandbox_factory(with_app=False)
    server = registered_app(sandbox, "public", tmp_path_factory.mktemp("a11y-app"))
    http = HttpBrowser()
    try:
        base = launch_base(server, ehr_launch(http, sandbox, server, ADULT))
        review = ""
        for level in LEVELS:
            form = http.request("GET", f"{base}/assess/ecr-r/").text
            post = {
                **answers(level),
                "csrf_token": hidden_value(form, "csrf_token"),
                "submission_id": hidden_value(form, "submission_id"),
                "action": "submit",
            }
            posted = http.request("POST", f"{base}/assess/ecr-r/", data=post)
            assert posted.status_code == 303, posted.text
            status = http.request("GET", f"{server.url}{posted.headers['location']}")
            review = status.headers.get("location", "")
        match = re.search(r"/review/responses/([^/?]+)(?:\?sid=[A-Za-z0-9-]+)?$", review)
        assert match, f"the last submission was not delivered: {review!r}"
        sid = session_cookie(http, server)
        yield Launched(server, base, sid, match.group(1))
    finally:
        http.close()
        server.stop()


def open_page(chromium: Browser, launched: Launched, path: str, width: str) -> Page:
    """The page in a fresh context of the given size, signed in with the launch's cookie."""
    w, h = WIDTHS[width]
    # axe is injected as an inline script, which the app's CSP (rightly) refuses.
    context = chromium.new_context(bypass_csp=True, viewport={"width": w, "height": h})
    context.add_cookies([{"name": COOKIE_NAME, "value": launched.sid, "url": launched.server.url}])
    page = context.new_page()
    response = page.goto(f"{launched.base}{path}")
    assert response is not None and response.status == 200, path
    return page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    return list(
        page.evaluate(
            """async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))
                .violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' ') + ': '
                  + ([...n.any, ...n.all, ...n.none][0] || {message: ''}).message)}))""",
            WCAG_TAGS,
        )
    )


def check(page: Page, width: str) -> None:
    """No axe violation; at 320 px nothing wider than the screen (WCAG 1.4.10 reflow)."""
    assert axe_violations(page) == []
    if width == "320px":
        wider = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > 320.5)
                .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > 320.5))
                .map(e => e.tagName + ' ' + Math.round(e.getBoundingClientRect().right) + ' '
                          + e.textContent.slice(0, 40))"""
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 320, wider
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_landing_page(chromium: Browser, launched: Launched, width: str) -> None:
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    page = open_page(chromium, launched, "/", width)
    assert page.locator("#flows a").count() >= 1  # the launch's own landing page
    check(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_choose_page(chromium: Browser, launched: Launched, width: str) -> None:
    page = open_page(chromium, launched, "/assess/", width)
    assert page.locator("#instrument-ecr-r").count() == 1
    assert page.locator("#history tr.response").count() == len(LEVELS)
    check(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_review_scores_page_with_charts(chromium: Browser, launched: Launched, width: str) -> None:
    page = open_page(chromium, launched, f"/review/responses/{launched.qr_id}", width)
    points = page.locator("svg.chart-plane circle")
    got = [
        (
            float(c.get_attribute("data-anxiety") or ""),
            float(c.get_attribute("data-avoidance") or ""),
        )
        for c in points.all()
    ]
    # one point per submission, oldest first (within one second: in the order stored)
    assert got == [(float(x), float(x)) for x in LEVELS]
    check(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_history_page(chromium: Browser, launched: Launched, width: str) -> None:
    page = open_page(chromium, launched, "/review/", width)
    assert page.locator("svg.chart-lines").count() == 1
    assert page.locator(".submissions li").count() == len(LEVELS)
    check(page, width)
