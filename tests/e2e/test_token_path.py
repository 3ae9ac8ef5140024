"""The bearer token never leaves the FHIR base (issue 14), against a hostile EHR over HTTP.

The EHR (tests/fixtures/hostile_ehr.py) is a real server on loopback whose FHIR base is a
sub-path, ``/fhir/r4``; it records every request as it arrived with its Authorization header.
A real launch (discovery, authorize, token, a signed id_token) puts its token in the app; the
EHR then aims it elsewhere on the same host: a ``fhirUser`` with dot segments (plain, absolute,
percent-encoded, with backslashes), a search ``next`` link, a CarePlan's goal reference. No
request carrying the token may reach a path a lenient server serves outside the base, and each
page answers with what it could read instead of a 500. Each test also shows the token did
reach the base, so "nothing outside" is not "nothing at all".
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from attach_fhir.careplan_fhir import build_resources
from attach_fhir.careplan_proposal import ProposalInputs, propose
from attach_fhir.goal_target import packaged_scales
from tests.fixtures.hostile_ehr import BASE_PATH, PATIENT, PRACTITIONER, HostileEhr
from tests.fixtures.smart_app_server import AppServer, Browser, start_app

pytestmark = pytest.mark.e2e

CLINICIAN_NAME = "Dr Hostile Probe"
PLAN_ID = "8a1c2a4e-5b0f-4c44-9d36-0f4a1d0c2b7e"


@pytest.fixture(scope="module")
def ehr() -> Iterator[HostileEhr]:
    server = HostileEhr()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(ehr: HostileEhr, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    registration = {
        "name": "hostile",
        "iss": [ehr.base],
        "client_id": "token-path",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    server = start_app(registration, tmp_path_factory.mktemp("token-path"))
    yield server
    server.stop()


@pytest.fixture
def hostile(ehr: HostileEhr) -> HostileEhr:
    ehr.reset()
    ehr.resources.update(
        {
            f"Patient/{PATIENT}": {
                "resourceType": "Patient",
                "id": PATIENT,
                "name": [{"given": ["Pat"], "family": "Probe"}],
                "birthDate": "1990-04-02",
            },
            PRACTITIONER: {
                "resourceType": "Practitioner",
                "id": PRACTITIONER.split("/")[1],
                "name": [{"text": CLINICIAN_NAME}],
            },
        }
    )
    return ehr


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def launch(ehr: HostileEhr, app: AppServer, browser: Browser) -> tuple[str, str]:
    """A real EHR launch against the hostile EHR; the landing page's text and its path."""
    page = browser.go(f"{app.url}/launch?" + urlencode({"iss": ehr.base, "launch": "x"}))
    assert page.status_code == 200, page.text
    landing = urlsplit(browser.visited[-1]).path
    assert landing.startswith("/app/")
    return page.text, landing


@pytest.mark.parametrize(
    "fhir_user",
    [
        "Practitioner/../../../leak",
        "{base}/../../leak",
        "{base}/Practitioner/../../../leak",
        "Practitioner/%2e%2e/%2e%2e/%2e%2e/leak",
        "{base}/%2E%2E/%2e%2E/leak",
        "Practitioner/.%2e/.%2e/%2e./leak",
        "Practitioner\\..\\..\\..\\leak",
        "Practitioner/..%2f..%2f..%2fleak",
        "Practitioner/..;/..;/..;/leak",
    ],
)
def test_a_fhir_user_aimed_outside_the_base_gets_no_token(
    fhir_user: str,
    hostile: HostileEhr,
    app: AppServer,
    browser: Browser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile.fhir_user = fhir_user.format(base=hostile.base)
    with caplog.at_level(logging.INFO):
        page, _ = launch(hostile, app, browser)
    assert hostile.token_outside_base() == []
    assert f"{BASE_PATH}/Patient/{PATIENT}" in hostile.with_token()  # the token did flow
    assert CLINICIAN_NAME not in page
    assert "fhir.url refused" in caplog.text
    assert hostile.token not in caplog.text and "leak" not in caplog.text


def test_a_fhir_user_in_the_base_is_read_with_the_token(
    hostile: HostileEhr, app: AppServer, browser: Browser
) -> None:
    """The control for the test above: the same launch with a plain fhirUser reads the user."""
    page, _ = launch(hostile, app, browser)
    assert CLINICIAN_NAME in page
    assert f"{BASE_PATH}/{PRACTITIONER}" in hostile.with_token()
    assert hostile.token_outside_base() == []


@pytest.mark.parametrize("next_link", ["{base}/../../x", "{base}/%2e%2e/%2e%2e/x"])
def test_a_next_link_aimed_outside_the_base_gets_no_token(
    next_link: str, hostile: HostileEhr, app: AppServer, browser: Browser
) -> None:
    observation = {"resourceType": "Observation", "id": "o1", "status": "final"}
    hostile.resources["Observation"] = searchset([observation], next_link.format(base=hostile.base))
    _, landing = launch(hostile, app, browser)
    page = browser.go(f"{app.url}{landing}review/")
    assert page.status_code == 502
    assert 'data-error-code="fhir_url_refused"' in page.text
    assert any(t.startswith(f"{BASE_PATH}/Observation?") for t in hostile.with_token())
    assert hostile.token_outside_base() == []


def _plan_with_hostile_goal() -> tuple[dict[str, Any], dict[str, Any]]:
    """An active attach-fhir CarePlan (built by the app's own builder) whose first goal is
    ``Goal/g1`` and whose second reference climbs out of the base."""
    scales = packaged_scales()
    proposal = propose(
        ProposalInputs(
            scores={"ecr-r-anxiety": 6.0},
            scales=scales,
            start_date=dt.date(2025, 1, 6),
            birth_date="1990-04-02",
        )
    )
    built = build_resources(proposal, plan_id=PLAN_ID, subject=f"Patient/{PATIENT}")
    assert built.goals, "the proposal has a goal to show"
    goal = {**built.goals[0][1], "id": "g1", "meta": {"versionId": "1"}}
    plan = {
        **built.careplan,
        "id": "cp1",
        "status": "active",
        "meta": {"versionId": "1", "lastUpdated": "2025-01-06T10:00:00Z"},
        "goal": [{"reference": "Goal/g1"}, {"reference": "Goal/../../../leak-goal"}],
    }
    return plan, goal


def test_a_goal_reference_aimed_outside_the_base_gets_no_token_and_is_skipped(
    hostile: HostileEhr, app: AppServer, browser: Browser
) -> None:
    plan, goal = _plan_with_hostile_goal()
    hostile.resources.update(
        {
            "CarePlan": searchset([plan]),
            "Goal/g1": goal,
            "Observation": searchset([]),
            "QuestionnaireResponse": searchset([]),
        }
    )
    _, landing = launch(hostile, app, browser)
    page = browser.go(f"{app.url}{landing}careplan/")
    assert page.status_code == 200, page.text
    assert 'data-reference="Goal/g1"' in page.text
    assert "1 of the plan's goals could not be read from the EHR" in page.text
    assert f"{BASE_PATH}/Goal/g1" in hostile.with_token()
    assert hostile.token_outside_base() == []


def _raw_get(app: AppServer, browser: Browser, target: str) -> int:
    """GET a raw request target (no client-side dot removal) with the browser's cookies."""
    parts = urlsplit(app.url)
    jar = browser.cookies.get(parts.netloc, {})
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        connection.request("GET", target, headers={"Cookie": cookie})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("qr_id", [".", "..", "%2e", "%2E%2e", ".%2e"])
def test_a_review_id_that_is_no_fhir_id_is_a_404_with_no_request(
    qr_id: str, hostile: HostileEhr, app: AppServer, browser: Browser
) -> None:
    _, landing = launch(hostile, app, browser)
    before = len(hostile.seen)
    assert _raw_get(app, browser, f"{landing}review/responses/{qr_id}") == 404
    assert hostile.seen[before:] == []


def test_a_review_id_of_the_right_shape_is_looked_up(
    hostile: HostileEhr, app: AppServer, browser: Browser
) -> None:
    """The control for the test above: an unknown but well-formed id is asked for, then 404."""
    _, landing = launch(hostile, app, browser)
    before = len(hostile.seen)
    assert _raw_get(app, browser, f"{landing}review/responses/no-such-response") == 404
    targets = [s.target for s in hostile.seen[before:]]
    assert f"{BASE_PATH}/QuestionnaireResponse/no-such-response" in targets
