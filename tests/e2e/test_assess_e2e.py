"""The assess flow end to end: a real EHR launch, the app over HTTP, the sandbox FHIR server.

Expected scores are the hand-computed examples of tests/lib/scoring_examples.py (worked from the
published keys). Faults: a connection dropped after the server committed is made by tampering
with the real response (E's RecordingTransport); "server down" is a refused connection at the
app's transport, because restarting the in-memory sandbox server would lose the very records the
test reads back.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from attach_fhir.instruments import library
from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from smart_app import stop as stop_app
from smart_app.records import delivery
from smart_app.records.delivery import Worker
from smart_app.records.follow_ups import after_delivery
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    RecordingTransport,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)
from tests.lib.scoring_examples import EXAMPLES, Example

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
PARENT = "sandbox-parent-41"
PARENT = "sandbox-parent-41"  # an adult: the RQ fits (docs/instrument-fit.md)
ADOLESCENT = "sandbox-adolescent-15"
ROWAN = "Practitioner/sandbox-practitioner-rowan"
#: user/ scopes, so the tests can read back every resource, Provenance too (the least-privilege
#: default only creates Provenance: see ``patient_scoped``).
SCOPES = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs "
    "user/QuestionnaireResponse.crus user/Observation.crs user/Provenance.crs offline_access"
)
QR = "QuestionnaireResponse"
#: One hand-computed example per packaged instrument.
PER_INSTRUMENT = {e.instrument: e for e in reversed(EXAMPLES)}


class SharedTransport(RecordingTransport):
    """E's recording transport, closed once at the end rather than by each app client: a
    request's teardown closing the shared pool while the browser's next request opens a
    connection on it would leak that connection."""

    def close(self) -> None:
        """Keep the pool open (see ``shutdown``)."""

    def shutdown(self) -> None:
        """Close the real pool."""
        self.inner.close()


@dataclass
class Env:
    """The sandbox EHR and one app registered with it."""

    sandbox: Sandbox
    server: AppServer
    transport: SharedTransport

    @property
    def fhir_base(self) -> str:
        """The sandbox FHIR base URL."""
        assert self.sandbox.urls is not None
        return self.sandbox.urls.fhir_base


@contextmanager
def app_env(
    sandbox: Sandbox, data_dir: Path, client_id: str, scopes: str | None, **config: Any
) -> Iterator[Env]:
    """A public-client app (``scopes``, or the default ones) registered with ``sandbox``."""
    assert sandbox.urls is not None
    reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir)
    reg["client_id"] = client["client_id"] = client_id
    if scopes is not None:
        reg["scopes"] = scopes
    transport = SharedTransport()
    server = start_app(reg, data_dir, HTTP_TRANSPORT=transport, **config)
    register_app(sandbox, server, client)
    try:
        yield Env(sandbox, server, transport)
    finally:
        server.thread.stop()
        stop_app(server.app)
        transport.shutdown()
        server.transport.close()


#: Quick outbox retries, for the tests that wait for a delivery after a fault.
QUICK_RETRIES = {"OUTBOX_BACKOFF_BASE": 0.1, "OUTBOX_BACKOFF_CAP": 0.5}


@pytest.fixture(scope="module")
def env(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A sandbox of its own and a public-client app asking for Provenance.c as well."""
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("assess-app")
    with app_env(sandbox, data_dir, "assess-e2e", SCOPES, **QUICK_RETRIES) as found:
        yield found


@pytest.fixture(scope="module")
def patient_scoped(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A second app on the same sandbox asking for the default, least-privilege patient/ scopes."""
    data_dir: Path = tmp_path_factory.mktemp("assess-app-patient-scopes")
    with app_env(env.sandbox, data_dir, "assess-e2e-patient-scopes", None) as found:
        yield found


@pytest.fixture
def knobs(env: Env) -> Iterator[Knobs]:
    """The sandbox's knobs, reset afterwards."""
    found = env.sandbox.state.config.knobs
    yield found
    found.update(vars(Knobs()))


class Clinician:
    """A clinician using the app after an EHR launch: fills forms the way a browser posts them."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.browser = Browser()
        self.base = ""
        self.ctx = ""

    def launch(self, patient: str) -> str:
        """EHR launch for ``patient``; the assess start URL."""
        page = self.browser.go(ehr_launch_url(self.env.sandbox, self.env.server.client_id, patient))
        assert page.status_code == 200, page.text
        self.ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        self.base = f"{self.env.server.url}/app/{self.ctx}/assess/"
        return self.base

    def get(self, path: str = "") -> httpx.Response:
        """GET a page under the assess base."""
        return self.browser.request("GET", self.base + path)

    def open_form(self, instrument: str, query: str = "") -> tuple[str, str, str]:
        """The fill page, its CSRF token and its submission id."""
        page = self.get(f"{instrument}/{query}")
        assert page.status_code == 200, page.text
        return page.text, hidden(page.text, "csrf_token"), hidden(page.text, "submission_id")

    def post(
        self, instrument: str, fields: dict[str, Any], action: str, sid: str, csrf: str
    ) -> httpx.Response:
        """POST the form as a browser would (no redirects followed)."""
        data = {**fields, "csrf_token": csrf, "submission_id": sid, "action": action}
        return self.browser.request("POST", f"{self.base}{instrument}/", data=data)

    def token(self) -> str:
        """The launch's current access token (to read back what the app wrote)."""
        app = self.env.server.app
        with app.app_context():
            record = app.extensions["attach_fhir"].store.get("launch", self.ctx)
        assert record is not None
        return str(record["token"]["access_token"])

    def fhir(self) -> httpx.Client:
        """A client for the sandbox FHIR server with this launch's token."""
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/fhir+json"}
        return httpx.Client(base_url=self.env.fhir_base + "/", headers=headers, timeout=30)

    def close(self) -> None:
        """Close the browser."""
        self.browser.close()


@pytest.fixture
def clinician(env: Env) -> Iterator[Clinician]:
    """A fresh browser."""
    c = Clinician(env)
    yield c
    c.close()


def hidden(page: str, name: str) -> str:
    """The value of a hidden input."""
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def fields(example: Example) -> dict[str, str]:
    """The example's answers as form fields."""
    out: dict[str, str] = {}
    for link_id, value in example.answers.items():
        out[f"q:{link_id}"] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return out


def search(client: httpx.Client, kind: str, **params: str) -> list[dict[str, Any]]:
    """Every match of a search."""
    response = client.get(kind, params=params)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry") or []]


def outbox_item(env: Env, sid: str) -> Any:
    """The outbox row of a submission."""
    return delivery.outbox_services(env.server.app).outbox.store.get(sid)


def pointer_expiry(env: Env) -> float | None:
    """When the pointer from this user's outbox items to their launch expires (the session
    store's own row), or None without one."""
    path = env.server.app.extensions["attach_fhir"].store.path
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT MAX(expires_at) FROM attach_session WHERE ns = 'outbox-credential'"
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def submit(
    clinician: Clinician, instrument: str, answers: dict[str, str]
) -> tuple[str, httpx.Response]:
    """Open a fresh form, submit the answers; the submission id and the status page."""
    _, csrf, sid = clinician.open_form(instrument)
    posted = clinician.post(instrument, answers, "submit", sid, csrf)
    assert posted.status_code == 303, posted.text
    return sid, clinician.browser.request(
        "GET", httpx.URL(clinician.base).join(posted.headers["location"]).__str__()
    )


def count_written(client: httpx.Client, sid: str, codes: list[str]) -> tuple[int, int, int]:
    """How many QRs, score Observations and Provenances carry this submission's identifiers."""
    qrs = search(client, QR, identifier=f"{SUBMISSION_SYSTEM}|{identifier_value(sid, QR)}")
    obs = sum(
        len(
            search(
                client,
                "Observation",
                identifier=f"{SUBMISSION_SYSTEM}|{identifier_value(sid, code)}",
            )
        )
        for code in codes
    )
    prov = search(
        client, "Provenance", _tag=f"{SUBMISSION_SYSTEM}|{identifier_value(sid, 'Provenance')}"
    )
    return len(qrs), obs, len(prov)


@pytest.mark.parametrize("instrument", sorted(PER_INSTRUMENT))
def test_each_instrument_is_written_back_with_its_references(
    instrument: str, env: Env, clinician: Clinician
) -> None:
    example = PER_INSTRUMENT[instrument]
    clinician.launch(PARENT if instrument == "prfq" else ADULT)
    assert clinician.get().status_code == 200  # the choose page sets the pointer
    pointer_set = pointer_expiry(env)
    sid, page = submit(clinician, instrument, fields(example))
    assert page.status_code in (200, 303), page.text
    item = outbox_item(env, sid)
    assert item.status == "delivered", item.last_error
    assert pointer_expiry(env) == pointer_set  # delivered at once: nothing waits on it
    qr_ref = item.receipt[f"urn:uuid:{identifier_value(sid, QR)}"]
    with clinician.fhir() as client:
        qr = client.get(qr_ref).json()
        assert qr["status"] == "completed"
        inst = next(i for i in library().instruments() if i.id == instrument)
        assert qr["questionnaire"] == f"{inst.url}|{inst.version}"
        assert qr["subject"]["reference"] == f"Patient/{PARENT if instrument == 'prfq' else ADULT}"
        assert qr["author"]["reference"] == ROWAN
        observations = search(client, "Observation", **{"derived-from": qr_ref})
        values: dict[str, Any] = {}
        for obs in observations:
            code = obs["code"]["coding"][0]["code"]
            values[code] = (
                obs["valueQuantity"]["value"]
                if "valueQuantity" in obs
                else obs["valueCodeableConcept"]["coding"][0]["code"]
            )
            assert obs["subject"]["reference"] == qr["subject"]["reference"]
        assert set(values) == set(example.expected)
        for code, expected in example.expected.items():
            if isinstance(expected, float):
                assert values[code] == pytest.approx(expected)
            else:
                assert values[code] == expected
        provenances = search(client, "Provenance", target=qr_ref)
        assert len(provenances) == 1
        targets = {t["reference"] for t in provenances[0]["target"]}
        assert targets == {qr_ref} | {f"Observation/{o['id']}" for o in observations}
        agents = [a["who"].get("reference") for a in provenances[0]["agent"]]
        assert ROWAN in agents


def test_a_draft_is_saved_updated_and_resumed_after_expiry_and_relaunch(
    env: Env, clinician: Clinician, knobs: Knobs
) -> None:
    knobs.access_token_lifetime = 2  # the token expires between the two saves: refresh
    clinician.launch(PARENT)
    _, csrf, sid = clinician.open_form("rq")
    first = clinician.post("rq", {"q:secure": "6"}, "draft", sid, csrf)
    assert first.status_code == 303, first.text
    draft_id = re.search(r"draft=([^&]+)", first.headers["location"]).group(1)  # type: ignore[union-attr]
    time.sleep(2.5)
    second = clinician.post("rq", {"q:secure": "6", "q:fearful": "2"}, "draft", sid, csrf)
    assert second.status_code == 303
    assert f"draft={draft_id}&" in second.headers["location"]
    with clinician.fhir() as client:
        drafts = search(client, QR, subject=f"Patient/{PARENT}", status="in-progress")
        assert [d["id"] for d in drafts] == [draft_id]
        answers = {i["linkId"]: i["answer"][0]["valueCoding"]["code"] for i in drafts[0]["item"]}
        assert answers == {"secure": "6", "fearful": "2"}

    later = Clinician(env)  # another browser, a new launch
    try:
        later.launch(PARENT)
        choose = later.get()
        assert f'data-draft="{draft_id}"' in choose.text
        page, csrf2, sid2 = later.open_form("rq", f"?draft={draft_id}")
        assert sid2 == sid  # the resumed form keeps writing to the same resource
        assert re.search(r'name="q:fearful" value="2" id="[^"]+"\s*checked', page)
        rest = {"q:secure": "6", "q:fearful": "2", "q:preoccupied": "3", "q:dismissing": "5"}
        done = later.post("rq", rest, "submit", sid2, csrf2)
        assert done.status_code == 303
        assert outbox_item(env, sid).status == "delivered"
        with later.fhir() as client:
            completed = client.get(f"{QR}/{draft_id}").json()
            assert completed["status"] == "completed"
            assert search(client, QR, subject=f"Patient/{PARENT}", status="in-progress") == []
    finally:
        later.close()


def test_three_submissions_are_listed_as_history(env: Env, clinician: Clinician) -> None:
    clinician.launch(ADOLESCENT)  # 15: the ECR-RS may fit ("a variety of age groups")
    answers = fields(PER_INSTRUMENT["ecr-rs"])
    sids = [submit(clinician, "ecr-rs", answers)[0] for _ in range(3)]
    page = clinician.get()
    rows = re.findall(r'class="response" data-response="([^"]+)"', page.text)
    expected = {outbox_item(env, s).receipt[f"urn:uuid:{identifier_value(s, QR)}"] for s in sids}
    assert {f"{QR}/{r}" for r in rows} == expected
    assert len(rows) == 3


class Down(httpx.BaseTransport):
    """Refuses connections to the FHIR server (as a stopped server does); others pass."""

    def __init__(self, inner: httpx.BaseTransport, fhir_base: str) -> None:
        self.inner = inner
        self.fhir_base = fhir_base

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self.fhir_base) and request.method == "POST":
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)


@pytest.mark.timed_thread_wait
def test_server_down_at_submit_waits_then_is_delivered_once_by_the_worker(
    env: Env, clinician: Clinician
) -> None:
    clinician.launch(ADULT)
    example = PER_INSTRUMENT["ecr-r"]
    assert clinician.get().status_code == 200  # the choose page sets the pointer
    pointer_set = pointer_expiry(env)
    assert pointer_set is not None
    real = env.transport.inner
    env.transport.inner = Down(real, env.fhir_base)  # type: ignore[assignment]
    try:
        sid, page = submit(clinician, "ecr-r", fields(example))
        assert "Saved here, waiting to reach the record" in page.text
        assert outbox_item(env, sid).status == "queued"
    finally:
        env.transport.inner = real
    # Left waiting, the item renews how long the worker can find this launch's token.
    renewed = pointer_expiry(env)
    assert renewed is not None and renewed > pointer_set
    with clinician.fhir() as client:
        assert count_written(client, sid, list(example.expected)) == (0, 0, 0)
    outbox = delivery.outbox_services(env.server.app).outbox
    worker = Worker(env.server.app, outbox, poll=0.1, after=after_delivery)
    worker.start()
    try:
        deadline = time.time() + 20
        while outbox_item(env, sid).status != "delivered" and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert outbox_item(env, sid).status == "delivered"
    with clinician.fhir() as client:
        assert count_written(client, sid, list(example.expected)) == (1, 2, 1)
    qr_id = outbox_item(env, sid).receipt[f"urn:uuid:{identifier_value(sid, QR)}"].split("/")[1]
    status = clinician.get(f"submissions/{sid}")  # delivered: on to the review of that response
    assert status.status_code == 303
    assert status.headers["location"] == f"/app/{clinician.ctx}/review/responses/{qr_id}?sid={sid}"
    # The review says where the answers went, at the time the outbox delivered them.
    review = clinician.browser.request("GET", env.server.url + status.headers["location"])
    moment = dt.datetime.fromtimestamp(outbox_item(env, sid).updated_at).astimezone()
    when = f"{moment:%H:%M} on {moment.day} {moment:%b} {moment.year}"
    assert (
        f'data-state="delivered">Saved to the record (QuestionnaireResponse and 2 score '
        f"Observations) at {when}.</p>"
    ) in review.text


def post_with_answer_dropped(
    env: Env, clinician: Clinician, instrument: str, answers: dict[str, str], sid: str, csrf: str
) -> tuple[httpx.Response, list[str]]:
    """Submit while the connection drops after the FHIR server answered the first POST to its
    base (the transaction): the app's response, and the status the server had answered."""
    dropped: list[str] = []

    def drop_after_commit(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if (
            request.method == "POST"
            and str(request.url).rstrip("/") == env.fhir_base
            and not dropped
        ):
            dropped.append(str(response.status_code))  # the server has committed by now
            raise httpx.RemoteProtocolError("connection dropped", request=request)
        return response

    env.transport.tamper = drop_after_commit
    try:
        posted = clinician.post(instrument, answers, "submit", sid, csrf)
    finally:
        env.transport.tamper = None
    return posted, dropped


def test_a_dropped_answer_and_a_double_click_write_each_resource_once(
    env: Env, clinician: Clinician
) -> None:
    clinician.launch(ADULT)
    example = PER_INSTRUMENT["ecr"]
    _, csrf, sid = clinician.open_form("ecr")
    first, dropped = post_with_answer_dropped(env, clinician, "ecr", fields(example), sid, csrf)
    assert dropped == ["200"]
    assert first.status_code == 303
    assert outbox_item(env, sid).status == "queued"
    again = clinician.post("ecr", fields(example), "submit", sid, csrf)  # the user clicks again
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    time.sleep(0.6)  # past the (test-sized) backoff
    with env.server.app.app_context():
        delivery.outbox_services(env.server.app).outbox.drain()
    assert outbox_item(env, sid).status == "delivered"
    with clinician.fhir() as client:
        assert count_written(client, sid, list(example.expected)) == (1, 3, 1)


def test_a_refusal_is_shown_with_the_servers_operation_outcome(
    env: Env, clinician: Clinician
) -> None:
    clinician.launch(ADULT)
    _, csrf, sid = clinician.open_form("rq")
    with clinician.fhir() as client:  # two responses already carry this submission's identifier
        twin = {
            "resourceType": QR,
            "status": "in-progress",
            "identifier": {"system": SUBMISSION_SYSTEM, "value": identifier_value(sid, QR)},
            "subject": {"reference": f"Patient/{ADULT}"},
        }
        for _ in range(2):
            assert client.post(QR, json=twin).status_code == 201
    rq = {"q:secure": "4", "q:fearful": "4", "q:preoccupied": "4", "q:dismissing": "4"}
    posted = clinician.post("rq", rq, "submit", sid, csrf)
    page = clinician.browser.request(
        "GET", str(httpx.URL(clinician.base).join(posted.headers["location"]))
    )
    assert "The EHR refused the answers" in page.text
    assert "Conditional PUT matched multiple resources" in page.text
    assert outbox_item(env, sid).status == "failed-permanent"


def test_a_patient_scoped_launch_writes_the_provenance(
    env: Env, patient_scoped: Env, clinician: Clinician
) -> None:
    example = PER_INSTRUMENT["ecr-r"]
    launched = Clinician(patient_scoped)  # the default request: patient/ scopes only
    try:
        launched.launch(ADULT)
        app = patient_scoped.server.app
        with app.app_context():
            record = app.extensions["attach_fhir"].store.get("launch", launched.ctx)
        granted = record["token"]["scope"].split()
        assert "patient/Provenance.c" in granted
        # patient/ scopes, and the signed-in user's own Practitioner record for the header
        assert [s for s in granted if s.startswith("user/")] == ["user/Practitioner.r"]
        sid, page = submit(launched, "ecr-r", fields(example))
        assert page.status_code in (200, 303), page.text
        item = outbox_item(patient_scoped, sid)
        assert item.status == "delivered", item.last_error
        qr_ref = item.receipt[f"urn:uuid:{identifier_value(sid, QR)}"]
    finally:
        launched.close()
    clinician.launch(ADULT)  # the user/-scoped app reads back what the patient/-scoped one wrote
    with clinician.fhir() as client:
        assert count_written(client, sid, list(example.expected)) == (1, 2, 1)
        observations = search(client, "Observation", **{"derived-from": qr_ref})
        (provenance,) = search(client, "Provenance", target=qr_ref)
        targets = {t["reference"] for t in provenance["target"]}
        assert targets == {qr_ref} | {f"Observation/{o['id']}" for o in observations}
