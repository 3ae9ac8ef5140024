"""The sandbox EHR renders a CDS card's markdown ``detail`` as an EHR does: emphasis, lists and
https links become HTML; raw HTML, script URLs and images from a hostile service stay inert,
checked in the rendered page and in headless Chromium (no dialog, no image request)."""

from __future__ import annotations

import pytest
from flask import render_template
from playwright.sync_api import Browser

from ehr_sandbox.authz import create_authz_app
from ehr_sandbox.authz.cds_client import CardView
from ehr_sandbox.authz.directory import Person
from tests.e2e.test_form_browser import axe_violations

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FRIENDLY = (
    "Anxiety **4.17** (was 4.50)\n\n- re-assess in *8 weeks*\n- [guide](https://example.org/g)"
)
HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(2)>\n\n"
    "[click](javascript:alert(3)) ![pixel](https://evil.example/p.png) "
    '<a href="https://evil.example" onclick="alert(4)">raw</a>\n\n'
    "[data](data:text/html,<script>alert(5)</script>)"
)


def ehr_page(detail: str) -> str:
    card = CardView(service="attach-fhir", summary="Latest ECR-R", indicator="info", detail=detail)
    app = create_authz_app({"issuer": "http://127.0.0.1:1", "fhir_base": "http://127.0.0.1:2"})
    try:
        with app.test_request_context():
            return render_template(
                "ehr/patient.html",
                patient=Person(ref="Patient/p", name="Alex"),
                practitioner=Person(ref="Practitioner/r", name="Rowan"),
                cards=[card],
                problems=[],
            )
    finally:
        app.extensions["smart_authz"].server.http.close()


def test_card_markdown_becomes_html() -> None:
    page = ehr_page(FRIENDLY)
    assert "<p>Anxiety <strong>4.17</strong> (was 4.50)</p>" in page
    assert "<li>re-assess in <em>8 weeks</em></li>" in page
    assert (
        '<a href="https://example.org/g" target="_blank" rel="noopener noreferrer">guide</a>'
        in page
    )


def test_a_hostile_card_stays_inert(chromium: Browser) -> None:
    page_html = ehr_page(HOSTILE)
    assert "<script>" not in page_html and "<img" not in page_html
    assert 'href="javascript:' not in page_html and 'href="data:' not in page_html
    assert 'onclick="alert(4)">' not in page_html  # the raw tag is escaped, not kept
    context = chromium.new_context(java_script_enabled=True)
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.set_content(page_html)
        detail = page.locator(".card .detail")
        assert detail.locator("script, img, [onclick], [onerror]").count() == 0
        assert detail.locator("a").count() == 0  # script and data URLs are not links
        text = detail.inner_text()
        assert "<script>alert(1)</script>" in text  # shown as text
        assert '<a href="https://evil.example" onclick="alert(4)">raw</a>' in text
        detail.click()
        page.wait_for_timeout(200)
        assert dialogs == []
        assert not [u for u in requests if "evil.example/p.png" in u]
    finally:
        context.close()


def test_a_rendered_card_is_accessible_at_desktop_width_and_on_a_phone(chromium: Browser) -> None:
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.set_content(ehr_page(FRIENDLY))
        for width, height in ((1280, 800), (320, 640)):
            page.set_viewport_size({"width": width, "height": height})
            assert axe_violations(page) == []
            detail = page.locator(".card .detail")
            assert detail.evaluate("e => e.scrollWidth <= e.clientWidth")  # the card reflows
    finally:
        context.close()
