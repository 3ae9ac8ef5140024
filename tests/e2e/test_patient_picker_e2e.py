"""The app's patient picker end to end: a clinician's standalone launch that brings no patient
(the sandbox's ``standalone_patient_picker`` knob off: no ``launch/patient``, no ``patient`` in the
token), a search by name, a choice, and what must never happen on the way: a name in a URL or a
log line, a patient chosen that the token cannot read, a patient launch that picks, a POST
without the CSRF token, or one patient's work showing up under another.

Expected values come from the sandbox seed (tests.fixtures.seed.seeded_patient): the adult is
Alex Synthetic, 29 (the birth date counted from the seed day), gender other, MRN SANDBOX-ADULT-29;
the adolescent is Noor Synthetic; all five seeded patients share the family name Synthetic.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser as Chromium
from werkzeug.serving import WSGIRequestHandler

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from smart_app.records import delivery
from smart_app.records.delivery import CREDENTIAL_NS
from smart_app.web.security import COOKIE_NAME
from tests.e2e.test_pages_a11y import AXE, answers, axe_violations, check
from tests.fixtures.sandbox import hidden_value
from tests.fixtures.seed import seeded_patient
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ADOLESCENT = "sandbox-adolescent-15"
PRACTITIONER = "sandbox-practitioner-rowan"


@pytest.fixture(scope="module")
def picker_app(
    launch_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    """A public-client app on the launch sandbox, with werkzeug's access log switched on (the
    test servers are quiet by default) so that a test can read what an access log would keep."""
    assert launch_sandbox.urls is not None
    data_dir: Path = tmp_path_factory.mktemp("picker-app")
    reg, client = app_registration("public", launch_sandbox.urls.fhir_base, data_dir, "e2e-picker")
    server = start_app(reg, data_dir)
    server.thread.server.RequestHandlerClass = WSGIRequestHandler  # logs each request line
    register_app(launch_sandbox, server, client)
    yield server
    server.stop()


@pytest.fixture
def no_ehr_picker(launch_knobs: Knobs) -> Knobs:
    """The sandbox as a server without launch/patient: clinicians' tokens carry no patient."""
    launch_knobs.standalone_patient_picker = False
    return launch_knobs


class Clinician:
    """A clinician's browser over HTTP, launching the app standalone and using its picker."""

    def __init__(self, server: AppServer, sandbox: Sandbox) -> None:
        assert sandbox.urls is not None
        self.server = server
        self.fhir_base = sandbox.urls.fhir_base
        self.browser = Browser()
        self.ctx = ""

    def launch(self, role: str = "clinician") -> httpx.Response:
        """A standalone launch; the landing page."""
        url = f"{self.server.url}/launch/standalone?iss={self.fhir_base}&role={role}"
        page = self.browser.go(url)
        assert page.status_code == 200, page.text
        self.ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        return page

    def url(self, path: str = "", ctx: str | None = None) -> str:
        """A URL under ``/app/<ctx>/``."""
        return f"{self.server.url}/app/{ctx or self.ctx}/{path}"

    def csrf(self) -> str:
        """This browser's CSRF token (from the picker page)."""
        return hidden_value(self.browser.request("GET", self.url("patients/")).text, "csrf_token")

    def search(self, csrf: str | None = None, **criteria: str) -> httpx.Response:
        """POST the search form, as the browser submits it."""
        data = {"name": "", "birth_date": "", "identifier": "", **criteria}
        if csrf is not None:
            data["csrf_token"] = csrf
        return self.browser.request("POST", self.url("patients/"), data=data)

    def choose(self, patient_id: str, csrf: str | None = None) -> httpx.Response:
        """POST a Choose button."""
        data = {"patient_id": patient_id}
        if csrf is not None:
            data["csrf_token"] = csrf
        return self.browser.request("POST", self.url("patients/choose"), data=data)

    def follow(self, response: httpx.Response) -> httpx.Response:
        """GET the page a 303 names; the context id is the new one."""
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        self.ctx = urlsplit(location).path.split("/")[2]
        return self.browser.request("GET", f"{self.server.url}{location}")

    def csrf_from_store(self) -> str:
        """This browser's CSRF token read from the session store (for pages without a form)."""
        sid = self.browser.cookies[urlsplit(self.server.url).netloc][COOKIE_NAME]
        app = self.server.app
        with app.app_context():
            session = app.extensions["attach_fhir"].store.get("browser", sid)
        assert session is not None
        return str(session["csrf"])

    def record(self, ctx: str | None = None) -> dict[str, Any] | None:
        """The server-side launch record."""
        app = self.server.app
        with app.app_context():
            found = app.extensions["attach_fhir"].store.get("launch", ctx or self.ctx)
        return dict(found) if found is not None else None

    def close(self) -> None:
        """Close the browser."""
        self.browser.close()


@pytest.fixture
def clinician(picker_app: AppServer, launch_sandbox: Sandbox) -> Iterator[Clinician]:
    """A fresh browser; the app's recorded requests cleared."""
    picker_app.transport.clear()
    c = Clinician(picker_app, launch_sandbox)
    yield c
    c.close()


def result_ids(page: str) -> list[str]:
    """The patient ids the results list offers, in order."""
    return re.findall(r'<li class="patient-result" data-patient="([^"]+)">', page)


def test_find_choose_and_the_landing_offers_the_flows(
    clinician: Clinician, no_ehr_picker: Knobs
) -> None:
    landing = clinician.launch()
    first = clinician.ctx
    record = clinician.record()
    assert record is not None and "patient" not in record
    assert "launch/patient" not in record["token"]["scope"].split()
    assert 'id="find-patient"' in landing.text and 'id="flows"' not in landing.text
    assert f'action="/app/{first}/patients/"' in landing.text
    csrf = hidden_value(landing.text, "csrf_token")

    found = clinician.search(csrf, name="Alex Synthetic")
    assert found.status_code == 200, found.text
    adult = seeded_patient(ADULT)
    assert result_ids(found.text) == [ADULT]  # Alex matches one of the five Synthetics
    assert f'<span class="result-name" id="result-1">{adult["name"][0]["text"]}</span>' in (
        found.text
    )
    assert f"<dt>Born</dt> <dd>{adult['birthDate']}</dd>" in found.text
    assert "<dt>Gender</dt> <dd>other</dd>" in found.text
    assert "<dt>Identifier</dt> <dd>SANDBOX-ADULT-29</dd>" in found.text
    assert '<h2 id="results-heading">1 patient found</h2>' in found.text
    # To the FHIR server as POST Patient/_search, the name in the body, in no URL.
    transport = clinician.server.transport
    sent = list(zip(transport.requests, transport.bodies, strict=True))
    searches = [(m, u, b) for (m, u), b in sent if "/Patient/_search" in u or "/Patient?" in u]
    assert [(m, u) for m, u, _ in searches] == [("POST", f"{clinician.fhir_base}/Patient/_search")]
    assert parse_qs(searches[0][2].decode()) == {
        "name": ["Alex", "Synthetic"],
        "_count": ["20"],
    }

    chosen = clinician.choose(ADULT, csrf)
    assert chosen.status_code == 303
    read_back = ("GET", f"{clinician.fhir_base}/Patient/{ADULT}")
    assert read_back in clinician.server.transport.requests  # read with the launch's token
    page = clinician.follow(chosen)
    assert clinician.ctx != first  # a new context id for the chosen patient
    assert page.status_code == 200, page.text
    assert f'id="patient-name">{adult["name"][0]["text"]}<' in page.text  # our banner
    assert f'id="patient-birth-date">{adult["birthDate"]}<' in page.text
    assert f'href="/app/{clinician.ctx}/assess/"' in page.text  # the questionnaires flow
    assert f'href="/app/{clinician.ctx}/patients/" id="change-patient">Change patient</a>' in (
        page.text
    )
    record = clinician.record()
    assert record is not None
    assert (record["patient"], record["patient_chosen_by"]) == (ADULT, "app")
    assert clinician.record(first) is None
    old = clinician.browser.request("GET", clinician.url(ctx=first))
    assert old.status_code == 404
    choose_page = clinician.browser.request("GET", clinician.url("assess/"))
    assert choose_page.status_code == 200
    assert 'id="instrument-ecr-r"' in choose_page.text


def test_no_name_birth_date_or_mrn_in_urls_or_logs(
    clinician: Clinician, no_ehr_picker: Knobs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clinician.launch()
    csrf = clinician.csrf()
    born = seeded_patient(ADULT)["birthDate"]
    by_all = clinician.search(csrf, name="Alex", birth_date=born, identifier="SANDBOX-ADULT-29")
    assert result_ids(by_all.text) == [ADULT]
    none = clinician.search(csrf, name="Nobody", birth_date=born)
    assert result_ids(none.text) == [] and 'id="no-match"' in none.text
    clinician.follow(clinician.choose(ADULT, csrf))

    phi = ["Alex", "Nobody", "Synthetic", born, "SANDBOX-ADULT-29"]
    urls = clinician.browser.visited + [u for _, u in clinician.server.transport.requests]
    assert [u for u in urls if any(p in u for p in phi)] == []
    logged = [r.getMessage() for r in caplog.records]
    access = [line for line in logged if "POST /app/" in line and "/patients/" in line]
    assert len(access) == 3  # werkzeug's access log saw the two searches and the choice
    assert [line for line in logged if any(p in line for p in phi)] == []
    assert any("picker.search outcome=ok method=POST rows=1" in line for line in logged)


def test_a_patient_id_the_token_cannot_read_is_refused(
    clinician: Clinician, no_ehr_picker: Knobs
) -> None:
    clinician.launch()
    csrf = clinician.csrf()
    for forged in ("no-such-patient", PRACTITIONER):  # unknown; a Practitioner's id
        refused = clinician.choose(forged, csrf)
        assert refused.status_code == 403, forged
        assert 'data-error-code="patient_not_readable"' in refused.text
    clinician.server.transport.clear()
    for malformed in ("../Observation/x", f"{ADULT}/_history/1", "a" * 65, ""):
        refused = clinician.choose(malformed, csrf)
        assert refused.status_code == 400, malformed
    assert clinician.server.transport.requests == []  # nothing sent for a malformed id
    record = clinician.record()
    assert record is not None and "patient" not in record  # the launch still has none
    assert clinician.browser.request("GET", clinician.url()).status_code == 200


@pytest.mark.parametrize(
    ("who", "role", "code", "reason"),
    [
        # a patient's own launch: the friendly 403 of every clinician page (web.audience)
        (
            {"sign_in_as": f"Patient/{ADOLESCENT}"},
            "patient",
            "clinician_page",
            "This page is for your care team",
        ),
        (
            {"patient": ADOLESCENT},
            "clinician",
            "patient_choice_refused",
            "The EHR chose this launch&#39;s patient",
        ),
    ],
    ids=["patient-launch", "ehr-chose"],
)
def test_a_patient_launch_or_an_ehr_chosen_patient_cannot_use_the_picker(
    clinician: Clinician, who: dict[str, str], role: str, code: str, reason: str
) -> None:
    clinician.browser.close()
    clinician.browser = Browser(**who)  # the patient signs in; the clinician picks at the EHR
    landing = clinician.launch(role=role)
    assert 'id="find-patient"' not in landing.text and "Change patient" not in landing.text
    for refused in (
        clinician.browser.request("GET", clinician.url("patients/")),
        clinician.search(clinician.csrf_from_store(), name="Alex"),
        clinician.choose(ADULT, clinician.csrf_from_store()),
    ):
        assert refused.status_code == 403
        assert f'data-error-code="{code}"' in refused.text
        assert reason in refused.text
    record = clinician.record()
    assert record is not None and record["patient"] == ADOLESCENT
    assert "patient_chosen_by" not in record
    assert not [u for _, u in clinician.server.transport.requests if "/Patient/_search" in u]


def test_a_post_without_the_csrf_token_is_refused(
    clinician: Clinician, no_ehr_picker: Knobs
) -> None:
    clinician.launch()
    searched = clinician.search(name="Alex")
    assert searched.status_code == 400 and 'data-error-code="csrf_failed"' in searched.text
    forged = clinician.search("x" * 43, name="Alex")
    assert forged.status_code == 400
    chosen = clinician.choose(ADULT)
    assert chosen.status_code == 400
    assert not [u for _, u in clinician.server.transport.requests if "/Patient" in u]
    record = clinician.record()
    assert record is not None and "patient" not in record


def test_changing_patient_leaves_the_previous_patients_work_behind(
    clinician: Clinician, no_ehr_picker: Knobs
) -> None:
    clinician.launch()
    csrf = clinician.csrf()
    clinician.follow(clinician.choose(ADULT, csrf))
    first = clinician.ctx
    # The adult's work: a delivered ECR-R, a saved RQ draft, and an ECR-R form left open.
    done_sid, done_qr = submit_ecr_r(clinician, csrf)
    rq = clinician.browser.request("GET", clinician.url("assess/rq/"))
    draft = clinician.browser.request(
        "POST",
        clinician.url("assess/rq/"),
        data={
            "q:secure": "6",
            "csrf_token": csrf,
            "submission_id": hidden_value(rq.text, "submission_id"),
            "action": "draft",
        },
    )
    assert draft.status_code == 303, draft.text
    draft_id = parse_qs(urlsplit(draft.headers["location"]).query)["draft"][0]
    stale = clinician.browser.request("GET", clinician.url("assess/ecr-r/"))
    stale_sid = hidden_value(stale.text, "submission_id")
    record = clinician.record()
    assert record is not None
    key_a = key_of(record["iss"], ADULT, record["fhir_user"])
    assert pointer(clinician, key_a) == {"ctx": first}

    change = clinician.browser.request("GET", clinician.url("patients/"))
    assert '<h1 id="page-title">Change patient</h1>' in change.text
    assert f'href="/app/{first}/" id="keep-patient"' in change.text
    assert result_ids(clinician.search(csrf, name="Noor").text) == [ADOLESCENT]
    clinician.follow(clinician.choose(ADOLESCENT, csrf))
    second = clinician.ctx
    assert second != first

    # The form left open for the adult posts nowhere: its launch id is gone.
    posted = clinician.browser.request(
        "POST",
        clinician.url("assess/ecr-r/", ctx=first),
        data={**answers(4), "csrf_token": csrf, "submission_id": stale_sid, "action": "submit"},
    )
    assert posted.status_code == 404
    outbox = delivery.outbox_services(clinician.server.app).outbox.store
    assert outbox.get(stale_sid) is None
    # Nothing of the adult's under the adolescent: no draft, no history, no submission page.
    choose = clinician.browser.request("GET", clinician.url("assess/"))
    assert choose.status_code == 200
    assert draft_id not in choose.text and done_qr not in choose.text
    status = clinician.browser.request("GET", clinician.url(f"assess/submissions/{done_sid}"))
    assert status.status_code == 404
    record = clinician.record()
    assert record is not None and record["patient"] == ADOLESCENT
    # The adult's items keep this user's token (under the new id) and their own key.
    assert pointer(clinician, key_a) == {"ctx": second}
    assert key_of(record["iss"], ADOLESCENT, record["fhir_user"]) != key_a
    assert outbox.get(done_sid).target.endswith(f"#cred={key_a}")


@pytest.mark.browser
def test_the_picker_with_results_passes_axe(
    chromium: Chromium, clinician: Clinician, no_ehr_picker: Knobs
) -> None:
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    clinician.launch()
    sid = clinician.browser.cookies[urlsplit(clinician.server.url).netloc][COOKIE_NAME]
    context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    context.add_cookies([{"name": COOKIE_NAME, "value": sid, "url": clinician.server.url}])
    page = context.new_page()
    page.goto(clinician.url("patients/"))
    page.fill("#search-name", "Synthetic")
    with page.expect_navigation():
        page.click("#search-button")
    shown = page.locator("#patient-results li").evaluate_all(
        "items => items.map(i => i.dataset.patient)"
    )
    seeded = {"sandbox-child-4", "sandbox-child-9", ADOLESCENT, ADULT, "sandbox-parent-41"}
    assert seeded <= set(shown)
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 320, "height": 640})
    check(page, "320px")  # axe again, and nothing wider than the screen


def submit_ecr_r(clinician: Clinician, csrf: str) -> tuple[str, str]:
    """Submit an ECR-R (every item scoring 4); its submission id and delivered response id."""
    form = clinician.browser.request("GET", clinician.url("assess/ecr-r/"))
    sid = hidden_value(form.text, "submission_id")
    data = {**answers(4), "csrf_token": csrf, "submission_id": sid, "action": "submit"}
    posted = clinician.browser.request("POST", clinician.url("assess/ecr-r/"), data=data)
    assert posted.status_code == 303, posted.text
    status = clinician.browser.request("GET", f"{clinician.server.url}{posted.headers['location']}")
    review = re.search(
        r"/review/responses/([^/?]+)(?:\?sid=[A-Za-z0-9-]+)?$", status.headers.get("location", "")
    )
    assert review, "the submission was not delivered"
    return sid, review.group(1)


def key_of(iss: str, patient: str, fhir_user: str) -> str:
    """The outbox credential key as smart_app.records.delivery documents it: sha256 of
    ``iss|patient|fhirUser``, first 40 hex digits."""
    return hashlib.sha256(f"{iss}|{patient}|{fhir_user}".encode()).hexdigest()[:40]


def pointer(clinician: Clinician, key: str) -> dict[str, Any] | None:
    """Which launch delivers the items queued under ``key``."""
    app = clinician.server.app
    with app.app_context():
        found = app.extensions["attach_fhir"].store.get(CREDENTIAL_NS, key)
    return dict(found) if found is not None else None
