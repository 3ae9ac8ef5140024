"""Sessions over real HTTP: two tabs, the patient banner, token expiry, refresh and its failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from flask import Blueprint, Flask, render_template_string, request

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from smart_app.web import kept_forms
from smart_app.web.context import LaunchContext
from tests.fixtures.seed import seeded_name
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    ehr_launch,
    launch_ctx,
    launch_record,
    registered_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ADOLESCENT = "sandbox-adolescent-15"
SHORT = 2  # seconds an access token lives when a test wants it to expire mid-session
FHIR_SERVER_LEEWAY = 5  # the sandbox FHIR server accepts a token this long after its exp


def _refreshes(server: AppServer, sandbox: Sandbox) -> int:
    assert sandbox.urls is not None
    token_url = f"{sandbox.urls.issuer}/token"
    sent = zip(server.transport.requests, server.transport.bodies, strict=True)
    return sum(1 for (m, u), body in sent if u == token_url and b"grant_type=refresh_token" in body)


def _short_lived(browser: Browser, sandbox: Sandbox, server: AppServer, knobs: Knobs) -> str:
    """A launch for the adult (banner shown) whose access token lives ``SHORT`` seconds."""
    knobs.need_patient_banner = True
    knobs.access_token_lifetime = SHORT
    return ehr_launch(browser, sandbox, server, ADULT)


def test_two_tabs_each_read_only_their_own_patient(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    launch_knobs.need_patient_banner = True
    server = app_servers["es384"]
    tab_a = ehr_launch(browser, launch_sandbox, server, ADULT)
    tab_b = ehr_launch(browser, launch_sandbox, server, ADOLESCENT)
    assert tab_a != tab_b
    assert ADULT not in tab_a and ADOLESCENT not in tab_b  # the URL names a launch, not a patient
    for url, mine, theirs in ((tab_a, ADULT, ADOLESCENT), (tab_b, ADOLESCENT, ADULT)):
        page = browser.go(url)
        assert f'id="patient-name">{seeded_name(mine)}<' in page.text
        assert seeded_name(theirs) not in page.text
    other = Browser()
    try:
        page = other.go(tab_a)
        assert page.status_code == 404
        assert seeded_name(ADULT) not in page.text
    finally:
        other.close()


def test_banner_only_when_the_ehr_asks_for_it(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    server = app_servers["public"]
    launch_knobs.need_patient_banner = False
    page = browser.go(ehr_launch(browser, launch_sandbox, server, ADULT))
    assert 'id="patient-banner"' not in page.text and seeded_name(ADULT) not in page.text
    launch_knobs.need_patient_banner = True
    page = browser.go(ehr_launch(browser, launch_sandbox, server, ADULT))
    assert 'id="patient-banner"' in page.text


def test_expired_token_is_refreshed_once_and_the_refresh_token_rotates(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    server = app_servers["symmetric"]
    landing = _short_lived(browser, launch_sandbox, server, launch_knobs)
    before = launch_record(server, landing)["token"]
    time.sleep(SHORT + 0.5)
    server.transport.clear()
    page = browser.go(landing)
    assert f'id="patient-name">{seeded_name(ADULT)}<' in page.text
    assert _refreshes(server, launch_sandbox) == 1
    after = launch_record(server, landing)["token"]
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated: the new one replaces it


def test_concurrent_requests_share_one_refresh(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    server = app_servers["rs384"]
    landing = _short_lived(browser, launch_sandbox, server, launch_knobs)
    time.sleep(SHORT + 0.5)
    server.transport.clear()
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def load() -> None:
        barrier.wait()
        statuses.append(browser.request("GET", landing).status_code)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 6
    assert _refreshes(server, launch_sandbox) == 1


def test_a_401_from_the_fhir_server_refreshes_once_and_retries(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    server = app_servers["es384"]
    landing = _short_lived(browser, launch_sandbox, server, launch_knobs)
    ctx = launch_ctx(landing)
    store = server.app.extensions["attach_fhir"].store
    record = store.get("launch", ctx)
    assert record is not None
    record["token"]["expires_at"] = time.time() + 3600  # the app believes the token is good
    record["token"]["expires_in"] = 3600
    store.put("launch", ctx, record, 3600)
    time.sleep(SHORT + FHIR_SERVER_LEEWAY + 1)
    server.transport.clear()
    # The landing page read the patient a moment ago: drop the launch's kept reads so that this
    # visit asks the FHIR server again, with the token it now rejects.
    server.app.extensions["attach_fhir"].reads.forget(ctx, None)
    page = browser.go(landing)
    assert page.status_code == 200
    assert f'id="patient-name">{seeded_name(ADULT)}<' in page.text
    assert _refreshes(server, launch_sandbox) == 1
    assert launch_sandbox.urls is not None
    patient_reads = server.transport.count(
        "GET", f"{launch_sandbox.urls.fhir_base}/Patient/{ADULT}"
    )
    assert patient_reads == 2  # the 401, then the retry with the new token


# -- a failing refresh keeps what the user typed ------------------------------------------------

NOTE_FORM = (
    '<form method="post">{{ csrf_field() }}'
    '<textarea name="text" id="text">{{ text }}</textarea></form>'
)


def _note_blueprint() -> Blueprint:
    bp = Blueprint("note", __name__)

    @bp.route("/app/<ctx>/note", methods=["GET", "POST"])
    def note(ctx: str) -> str:
        launch = LaunchContext.load(ctx)
        if request.method == "POST":
            assert launch.patient_id is not None
            launch.fhir().read("Patient", launch.patient_id)  # any FHIR call needs the token
            return "sent"
        kept = kept_forms.take(launch, "note") or {}
        return render_template_string(NOTE_FORM, text=kept.get("text", [""])[0])

    return bp


@pytest.fixture(scope="module")
def notes_app(
    launch_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    data_dir = tmp_path_factory.mktemp("notes-app")

    def setup(app: Flask) -> None:
        app.register_blueprint(_note_blueprint())

    server = registered_app(launch_sandbox, "public", data_dir, "e2e-notes", setup=setup)
    yield server
    server.thread.stop()
    server.transport.shutdown()


def _csrf(page: httpx.Response) -> str:
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def test_failing_refresh_tells_the_user_and_keeps_what_they_typed(
    launch_sandbox: Sandbox, notes_app: AppServer, browser: Browser, launch_knobs: Knobs
) -> None:
    launch_knobs.access_token_lifetime = SHORT
    launch_knobs.refresh_fails = True
    landing = ehr_launch(browser, launch_sandbox, notes_app, ADULT)
    form = browser.go(landing + "note")
    typed = "Felt <closer> to my sister & said so"
    time.sleep(SHORT + 0.5)
    page = browser.request(
        "POST", landing + "note", data={"text": typed, "csrf_token": _csrf(form)}
    )
    assert page.status_code == 401
    assert 'data-error-code="authorization_expired"' in page.text
    assert "launch the app again" in page.text
    assert 'id="kept-note"' in page.text
    assert typed not in page.text  # kept server-side, not echoed into the error page

    launch_knobs.update(vars(Knobs()))  # the EHR is healthy again; the user relaunches
    relaunched = ehr_launch(browser, launch_sandbox, notes_app, ADULT)
    assert relaunched != landing
    restored = browser.go(relaunched + "note")
    assert ">Felt &lt;closer&gt; to my sister &amp; said so</textarea>" in restored.text
    again = browser.go(relaunched + "note")  # restored once, then forgotten
    assert "Felt" not in again.text


def test_post_without_csrf_token_is_refused(
    launch_sandbox: Sandbox, notes_app: AppServer, browser: Browser
) -> None:
    landing = ehr_launch(browser, launch_sandbox, notes_app, ADULT)
    notes_app.transport.clear()
    page = browser.request("POST", landing + "note", data={"text": "x"})
    assert page.status_code == 400 and 'data-error-code="csrf_failed"' in page.text
    assert notes_app.transport.requests == []
