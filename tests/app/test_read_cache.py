"""Fewer repeated reads (issue 14): a launch reads its Patient, the CapabilityStatement and each
Questionnaire once while they are fresh, re-reads them after the TTL or after its own write, and
never sees another launch's copy.

Against the real (open) sandbox FHIR server, through Flask's test client; every outbound request
goes through the e2e tests' ``RecordingTransport`` (real HTTP, recorded), so each page's FHIR
requests are counted as the server received them. Names are changed on the server behind the
app's back to tell a cached copy from a fresh read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.web.context import LaunchContext
from smart_app.web.errors import ConfigurationError
from smart_app.web.read_cache import ReadCache
from smart_app.web.security import COOKIE_NAME
from tests.fixtures.fhir_server import FhirServerFactory
from tests.fixtures.launched_app import LaunchedApp, add_launch, launched_app
from tests.fixtures.smart_app_server import RecordingTransport

pytestmark = pytest.mark.e2e  # starts the sandbox FHIR server process

ROWAN = "Practitioner/sandbox-practitioner-rowan"
JORDAN = "Practitioner/sandbox-practitioner-jordan"
ADULT = "sandbox-adult-29"
SCOPE = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.crs user/QuestionnaireResponse.crus "
    "user/Observation.crs user/Provenance.crs user/CarePlan.crus user/Goal.crus"
)
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
RQ = "http://attach-fhir.org/fhir/Questionnaire/rq"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def transport() -> Iterator[RecordingTransport]:
    """Real HTTP to the FHIR server, every request recorded."""
    recording = RecordingTransport()
    yield recording
    recording.shutdown()


@pytest.fixture
def start(tmp_path: Path, transport: RecordingTransport) -> Iterator[Callable[..., LaunchedApp]]:
    """``start(fhir_base, patient, clock=None, config=None, **registration)``: an app (with
    ``config`` added to its settings) and one launch."""
    apps: list[LaunchedApp] = []

    def make(
        fhir_base: str,
        patient: str,
        clock: Clock | None = None,
        config: dict[str, Any] | None = None,
        **registration: Any,
    ) -> LaunchedApp:
        launched = launched_app(
            fhir_base,
            tmp_path / f"app-{len(apps)}",
            transport,
            client_id="read-cache-test",
            kind="ehr",
            patient=patient,
            user=ROWAN,
            scope=SCOPE,
            registration=registration or None,
            **(config or {}),
        )
        if clock is not None:
            services = launched.app.extensions["attach_fhir"]
            services.reads = ReadCache(services.reads.ttl, clock=clock)
        apps.append(launched)
        return launched

    yield make
    for launched in apps:
        stop_app(launched.app)


def fhir(base: str) -> httpx.Client:
    """A plain client for the open server (to write behind the app's back)."""
    return httpx.Client(base_url=base.rstrip("/") + "/", timeout=30)


def unique(word: str) -> str:
    """A name no other test run gives a patient."""
    return f"{word} {uuid.uuid4().hex[:8]}"


def new_patient(base: str, name: str) -> str:
    """A fresh adult Patient named ``name`` on the server; its id."""
    with fhir(base) as client:
        made = client.post(
            "Patient",
            json={
                "resourceType": "Patient",
                "name": [{"text": name}],
                "birthDate": "1990-04-02",
            },
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def rename(base: str, patient_id: str, name: str) -> None:
    """Change the Patient's name on the server, as another EHR user would."""
    with fhir(base) as client:
        resource = client.get(f"Patient/{patient_id}").json()
        resource["name"] = [{"text": name}]
        assert client.put(f"Patient/{patient_id}", json=resource).status_code == 200


def server_name(base: str, patient_id: str) -> str:
    """The Patient's name as the server holds it now."""
    with fhir(base) as client:
        return str(client.get(f"Patient/{patient_id}").json()["name"][0]["text"])


class Pages:
    """One browser's pages, each with the FHIR requests it made (method, URL)."""

    def __init__(self, client: FlaskClient, ctx: str, csrf: str, transport: RecordingTransport):
        self.client, self.ctx, self.csrf, self.transport = client, ctx, csrf, transport
        self.made: dict[str, list[tuple[str, str]]] = {}

    def request(self, label: str, method: str, path: str, status: int, **kwargs: Any) -> Any:
        """Request a page under this launch, record its FHIR requests under ``label``."""
        since = len(self.transport.requests)
        url = path if path.startswith("/app/") else f"/app/{self.ctx}/{path}"
        answer = self.client.open(url, method=method, **kwargs)
        assert answer.status_code == status, (label, answer.status_code, answer.text[:500])
        self.made[label] = list(self.transport.requests[since:])
        return answer

    def count(self, label: str, method: str, url_start: str) -> int:
        """How many of a page's requests match (``.../Questionnaire`` is not the start of
        ``.../QuestionnaireResponse``)."""
        return sum(
            1
            for m, u in self.made[label]
            if m == method
            and u.startswith(url_start)
            and not (url_start[-1].isalnum() and u[len(url_start) :][:1].isalnum())
        )

    def total(self, method: str, url_start: str) -> int:
        """How many requests of every page so far match."""
        return sum(self.count(label, method, url_start) for label in self.made)


def pages_of(launched: LaunchedApp, transport: RecordingTransport) -> Pages:
    """The launched browser's pages."""
    return Pages(launched.client, launched.ctx, launched.csrf, transport)


def answers() -> dict[str, str]:
    """All 36 ECR-R items answered: item n -> (3n mod 7) + 1."""
    return {f"q:{n}": str((3 * n) % 7 + 1) for n in range(1, 37)}


def hidden(page: str, name: str) -> str:
    """A hidden input's value."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, name
    return found.group(1)


def test_a_clinician_walk_reads_the_patient_once_and_searches_a_questionnaire_once(
    fhir_server: FhirServerProcess, start: Callable[..., LaunchedApp], transport: RecordingTransport
) -> None:
    base = fhir_server.base_url.rstrip("/")
    launched = start(base, ADULT)
    pages = pages_of(launched, transport)
    name = server_name(base, ADULT)
    landing = pages.request("landing", "GET", "", 200)
    assert name in landing.text
    assert name in pages.request("choose", "GET", "assess/", 200).text
    form = pages.request("form", "GET", "assess/ecr-r/", 200).text
    post = {
        **answers(),
        "csrf_token": launched.csrf,
        "submission_id": hidden(form, "submission_id"),
        "action": "submit",
    }
    posted = pages.request("submit", "POST", "assess/ecr-r/", 303, data=post)
    status = pages.request("status", "GET", posted.headers["Location"], 303)
    review = pages.request("review", "GET", status.headers["Location"], 200)
    assert name in review.text
    assert name in pages.request("history", "GET", "review/", 200).text
    pages.request("care plan", "GET", "careplan/", 200)

    # The walk wrote to the record (the response and its scores), so it talked to the server
    # on the later pages too: only the reads the cache holds are not repeated.
    assert pages.count("submit", "POST", base) >= 1
    assert pages.total("GET", f"{base}/Patient/{ADULT}") == 1
    assert pages.count("landing", "GET", f"{base}/Patient/{ADULT}") == 1
    assert pages.total("GET", str(httpx.URL(f"{base}/Questionnaire", params={"url": ECR_R}))) == 1
    assert pages.total("GET", f"{base}/Questionnaire") == 1  # no other Questionnaire read
    assert pages.total("GET", f"{base}/metadata") == 1


def test_after_the_ttl_the_patient_and_the_questionnaire_are_read_again(
    fhir_server: FhirServerProcess, start: Callable[..., LaunchedApp], transport: RecordingTransport
) -> None:
    base = fhir_server.base_url.rstrip("/")
    before, after = unique("Before"), unique("After")
    patient = new_patient(base, before)
    clock = Clock()
    launched = start(base, patient, clock=clock)
    ttl = launched.app.extensions["attach_fhir"].reads.ttl
    assert ttl == launched.app.config["READ_CACHE_SECONDS"] == 60
    pages = pages_of(launched, transport)
    read, search = f"{base}/Patient/{patient}", f"{base}/Questionnaire?url="

    assert before in pages.request("first", "GET", "", 200).text
    pages.request("first form", "GET", "assess/rq/", 200)
    rename(base, patient, after)  # behind the app's back: the app cannot know
    clock.now += ttl - 1
    assert before in pages.request("within", "GET", "", 200).text
    pages.request("within form", "GET", "assess/rq/", 200)
    assert pages.count("within", "GET", read) == 0
    assert pages.count("within form", "GET", search) == 0

    clock.now += 2
    assert after in pages.request("expired", "GET", "", 200).text
    pages.request("expired form", "GET", "assess/rq/", 200)
    assert pages.count("expired", "GET", read) == 1
    assert pages.count("expired form", "GET", search) == 1
    assert pages.total("GET", read) == 2
    assert pages.total("GET", search) == 2


def test_after_the_app_writes_a_questionnaire_it_searches_again_once(
    fhir_server_factory: FhirServerFactory,
    start: Callable[..., LaunchedApp],
    transport: RecordingTransport,
) -> None:
    server = fhir_server_factory()  # its own server: no other test has filed the RQ there
    base = server.base_url.rstrip("/")
    launched = start(base, ADULT, create_questionnaires=True)
    pages = pages_of(launched, transport)
    search, create = f"{base}/Questionnaire?url=", f"{base}/Questionnaire"

    pages.request("first", "GET", "assess/rq/", 200)
    assert pages.count("first", "GET", search) == 1
    assert pages.count("first", "POST", create) == 1  # not on the server: the app files it
    with fhir(base) as client:
        filed = client.get("Questionnaire", params={"url": RQ}).json()
    assert len(filed.get("entry") or []) == 1

    # The app's own write changed what the search finds: it searches again and finds the copy
    # it filed (so it files nothing more); then that answer is kept.
    pages.request("second", "GET", "assess/rq/", 200)
    assert pages.count("second", "GET", search) == 1
    assert pages.count("second", "POST", create) == 0
    pages.request("third", "GET", "assess/rq/", 200)
    assert pages.made["third"] == []


def test_a_write_of_the_patient_in_a_transaction_drops_the_launchs_copy(
    fhir_server: FhirServerProcess, start: Callable[..., LaunchedApp], transport: RecordingTransport
) -> None:
    base = fhir_server.base_url.rstrip("/")
    before, after = unique("Before"), unique("After")
    patient = new_patient(base, before)
    launched = start(base, patient)
    pages = pages_of(launched, transport)
    assert before in pages.request("first", "GET", "", 200).text
    with fhir(base) as client:
        resource = client.get(f"Patient/{patient}").json()
    resource["name"] = [{"text": after}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"Patient/{patient}"},
            }
        ],
    }
    # The launch writes through its own client, as the care-plan approval and the write-back do.
    cookie = {"Cookie": cookie_header(launched)}
    with launched.app.test_request_context(f"/app/{launched.ctx}/", headers=cookie):
        LaunchContext.load(launched.ctx).fhir().transaction(bundle)
    second = pages.request("second", "GET", "", 200)
    assert after in second.text
    assert pages.count("second", "GET", f"{base}/Patient/{patient}") == 1
    pages.request("third", "GET", "", 200)
    assert pages.count("third", "GET", f"{base}/Patient/{patient}") == 0


def cookie_header(launched: LaunchedApp) -> str:
    """The browser's cookie, as its next request would send it."""
    cookie = launched.client.get_cookie(COOKIE_NAME)
    assert cookie is not None
    return f"{COOKIE_NAME}={cookie.value}"


def test_two_launches_never_see_each_others_cached_reads(
    fhir_server: FhirServerProcess, start: Callable[..., LaunchedApp], transport: RecordingTransport
) -> None:
    base = fhir_server.base_url.rstrip("/")
    first, renamed = unique("First"), unique("Renamed")
    shared = new_patient(base, first)
    other = new_patient(base, unique("Other"))
    rowan = start(base, shared)  # Rowan's launch for the patient, in Rowan's browser
    app = rowan.app
    rowan_pages = pages_of(rowan, transport)
    assert first in rowan_pages.request("rowan", "GET", "", 200).text

    # Jordan, in another browser, launches for another patient, then for Rowan's patient.
    client, ctx, csrf = add_launch(app, base, kind="ehr", patient=other, user=JORDAN, scope=SCOPE)
    jordan = Pages(client, ctx, csrf, transport)
    page = jordan.request("jordan, other patient", "GET", "", 200).text
    assert server_name(base, other) in page
    assert first not in page
    assert jordan.count("jordan, other patient", "GET", f"{base}/Patient/{other}") == 1

    rename(base, shared, renamed)
    client, ctx, csrf = add_launch(app, base, kind="ehr", patient=shared, user=JORDAN, scope=SCOPE)
    jordan_same = Pages(client, ctx, csrf, transport)
    page = jordan_same.request("jordan, same patient", "GET", "", 200).text
    # Jordan's launch read the patient itself (with its own token), so it shows the new name
    assert renamed in page
    assert jordan_same.count("jordan, same patient", "GET", f"{base}/Patient/{shared}") == 1
    # while Rowan's launch keeps its own copy within the TTL.
    assert first in rowan_pages.request("rowan again", "GET", "", 200).text
    assert rowan_pages.count("rowan again", "GET", f"{base}/Patient/{shared}") == 0


def test_zero_seconds_turns_the_cache_off(
    fhir_server: FhirServerProcess, start: Callable[..., LaunchedApp], transport: RecordingTransport
) -> None:
    base = fhir_server.base_url.rstrip("/")
    launched = start(base, ADULT, config={"READ_CACHE_SECONDS": 0})
    pages = pages_of(launched, transport)
    for label in ("first", "second"):
        pages.request(label, "GET", "", 200)
        assert pages.count(label, "GET", f"{base}/Patient/{ADULT}") == 1


@pytest.mark.parametrize("value", ["soon", "-1", "true", "null"])
def test_the_setting_is_checked_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ATTACH_READ_CACHE_SECONDS", value)
    with pytest.raises(ConfigurationError) as refused:
        create_app({"DATA_DIR": str(tmp_path)})
    assert "ATTACH_READ_CACHE_SECONDS" in refused.value.description


def test_the_setting_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTACH_READ_CACHE_SECONDS", "5")
    app = create_app({"DATA_DIR": str(tmp_path)})
    try:
        assert app.extensions["attach_fhir"].reads.ttl == 5.0
    finally:
        stop_app(app)
