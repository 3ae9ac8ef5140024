"""Drafts saved automatically on navigation, in headless Chromium after a real EHR launch.

A clinician answers part of the RQ and leaves the page without pressing any button; the page's
script (static/autosave.js) posts the answers as the draft. A fresh browser, launched again from
the EHR, finds the draft on the Choose page and resumes it with those answers. A page left
without changes saves nothing; without JavaScript the "Save and continue later" button remains.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.smart_app_server import (
    AppServer,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADULT = "sandbox-adult-29"
QR = "QuestionnaireResponse"
APP_PAGE = re.compile(r".*/app/([^/]+)/.*")


@pytest.fixture(scope="module")
def world(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer]]:
    """A sandbox of its own (so the drafts found are this test's) and the app, with the
    least-privilege default scopes."""
    sandbox = sandbox_factory(with_app=False)
    assert sandbox.urls is not None
    data_dir = tmp_path_factory.mktemp("autosave-app")
    reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir, "e2e-autosave")
    server = start_app(reg, data_dir)
    register_app(sandbox, server, client)
    yield sandbox, server
    server.stop()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (cookies of its own)."""
    ctx = chromium.new_context()
    yield ctx
    ctx.close()


def launch(page: Page, world: tuple[Sandbox, AppServer]) -> str:
    """EHR launch for the adult in ``page``; the launch's ctx."""
    sandbox, server = world
    page.goto(ehr_launch_url(sandbox, server.client_id, ADULT))
    page.wait_for_url(APP_PAGE, timeout=20_000)
    match = APP_PAGE.fullmatch(page.url)
    assert match is not None
    return match.group(1)


def drafts(server: AppServer, ctx: str, fhir_base: str) -> list[dict[str, Any]]:
    """The adult's in-progress responses, read with the launch's own token."""
    with server.app.app_context():
        record = server.app.extensions["attach_fhir"].store.get("launch", ctx)
    token = record["token"]["access_token"]
    found = httpx.get(
        f"{fhir_base}/{QR}",
        params={"subject": f"Patient/{ADULT}", "status": "in-progress"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry") or []]


def answers(draft: dict[str, Any]) -> dict[str, str]:
    return {i["linkId"]: i["answer"][0]["valueCoding"]["code"] for i in draft.get("item", [])}


def test_answers_left_on_the_page_are_saved_and_resumed_after_a_relaunch(
    world: tuple[Sandbox, AppServer], chromium: Browser, context: BrowserContext
) -> None:
    sandbox, server = world
    assert sandbox.urls is not None
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Security Policy" in m.text else None)
    ctx = launch(page, world)
    form_url = f"{server.url}/app/{ctx}/assess/rq/"

    page.goto(form_url)  # looked at, nothing changed, left: nothing to save
    page.goto("about:blank")
    page.goto(form_url)
    page.check("input[name='q:secure'][value='6']")
    page.check("input[name='q:fearful'][value='2']")
    page.goto("about:blank")  # away from the app, no button pressed

    deadline = time.time() + 15
    found = drafts(server, ctx, sandbox.urls.fhir_base)
    while not found and time.time() < deadline:
        time.sleep(0.2)
        found = drafts(server, ctx, sandbox.urls.fhir_base)
    assert len(found) == 1  # the unchanged visit wrote nothing
    assert answers(found[0]) == {"secure": "6", "fearful": "2"}
    assert blocked == []  # the script runs under the CSP without 'unsafe-inline'

    later = chromium.new_context()  # another browser: a new EHR launch
    try:
        again = later.new_page()
        ctx2 = launch(again, world)
        assert ctx2 != ctx
        again.goto(f"{server.url}/app/{ctx2}/assess/")
        again.locator(f"li.draft[data-draft='{found[0]['id']}'] a").click()
        again.wait_for_url(re.compile(rf".*\?draft={found[0]['id']}$"))
        assert again.is_checked("input[name='q:secure'][value='6']")
        assert again.is_checked("input[name='q:fearful'][value='2']")
        assert not again.is_checked("input[name='q:preoccupied'][value='1']")
    finally:
        later.close()


def test_without_javascript_the_save_button_remains(
    world: tuple[Sandbox, AppServer], chromium: Browser
) -> None:
    no_js = chromium.new_context(java_script_enabled=False)
    try:
        page = no_js.new_page()
        page.goto(ehr_launch_url(world[0], world[1].client_id, ADULT))
        page.wait_for_url(APP_PAGE, timeout=20_000)
        match = APP_PAGE.fullmatch(page.url)
        assert match is not None
        page.goto(f"{world[1].url}/app/{match.group(1)}/assess/rq/")
        button = page.locator("#draft-button")
        assert button.is_visible() and button.is_enabled()
        assert button.inner_text() == "Save and continue later"
    finally:
        no_js.close()
