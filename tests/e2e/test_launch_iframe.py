"""Headless Chromium: the EHR launch works inside an iframe of another site.

The EHR page is served from 127.0.0.1 and frames the app on ``localhost`` (another site, so the
app's cookie is a third-party cookie there): the launch, the sign-in redirects and the landing
page all happen inside the frame. A page on an origin the registration does not list cannot
frame the app at all (CSP frame-ancestors).
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page
from werkzeug.wrappers import Request, Response

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox, ServerThread
from tests.fixtures.seed import seeded_patient
from tests.fixtures.smart_app_server import (
    AppServer,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADULT = "sandbox-adult-29"


class HostPage:
    """A page of "the EHR" that frames whatever URL it is given (``/?src=...``)."""

    def __init__(self) -> None:
        self.thread = ServerThread(0)
        self.origin = f"http://127.0.0.1:{self.thread.port}"
        self.thread.start(self._app)

    @staticmethod
    def _app(environ: dict[str, Any], start_response: Any) -> Any:
        src = Request(environ).args.get("src", "about:blank")
        html = (
            "<!doctype html><title>EHR</title><h1>EHR chart</h1>"
            f'<iframe id="app" src="{escape(src)}" width="900" height="600"></iframe>'
        )
        return Response(html, mimetype="text/html")(environ, start_response)


@pytest.fixture(scope="module")
def host() -> Iterator[HostPage]:
    page = HostPage()
    yield page
    page.thread.stop()


@pytest.fixture(scope="module")
def framed_app(
    launch_sandbox: Sandbox, host: HostPage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    assert launch_sandbox.urls is not None
    data_dir = tmp_path_factory.mktemp("framed-app")
    reg, client = app_registration("rs384", launch_sandbox.urls.fhir_base, data_dir, "e2e-iframe")
    reg["frame_ancestors"] = [host.origin]
    server = start_app(reg, data_dir)
    register_app(launch_sandbox, server, client)
    yield server
    server.thread.stop()
    server.transport.shutdown()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    yield context.new_page()
    context.close()


def test_ehr_launch_inside_a_cross_site_iframe(
    launch_sandbox: Sandbox,
    framed_app: AppServer,
    host: HostPage,
    page: Page,
    launch_knobs: Knobs,
) -> None:
    launch_knobs.need_patient_banner = True
    launch_url = ehr_launch_url(launch_sandbox, framed_app.client_id, ADULT, mode="iframe")
    page.goto(f"{host.origin}/?" + urlencode({"src": launch_url}))
    frame = page.frame_locator("#app")
    name = frame.locator("#patient-name")
    name.wait_for(timeout=20_000)
    assert name.inner_text() == seeded_patient(ADULT)["name"][0]["text"]
    assert page.url.startswith(host.origin)  # the top window never left the EHR
    app_frame = next(f for f in page.frames if f.url.startswith(framed_app.url))
    assert "/app/" in app_frame.url
    cookies = page.context.cookies(framed_app.url)
    session = [c for c in cookies if c["name"] == "attach_sid"]
    assert len(session) == 1
    assert session[0]["httpOnly"] and session[0]["secure"] and session[0]["sameSite"] == "None"
    assert session[0].get("partitionKey")  # CHIPS: kept per top-level site


def test_a_site_not_listed_cannot_frame_the_app(
    launch_sandbox: Sandbox, framed_app: AppServer, page: Page
) -> None:
    stranger = HostPage()  # another origin, not in the registration's frame_ancestors
    try:
        with page.expect_console_message(
            lambda m: "frame-ancestors" in m.text, timeout=20_000
        ) as message:
            page.goto(f"{stranger.origin}/?" + urlencode({"src": f"{framed_app.url}/"}))
        assert "Content Security Policy" in message.value.text
        app_frames = [f for f in page.frames if f.url.startswith(framed_app.url)]
        assert all(f.locator("h1").count() == 0 for f in app_frames)
    finally:
        stranger.thread.stop()
