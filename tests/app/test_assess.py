"""The assess blueprint through Flask's test client, against the real (open) sandbox FHIR server.

A launch is put straight into the session store (``launch_as``): these tests are about what the
assess pages do with a launch, not about the launch itself (tests/e2e covers that end to end).
Faults a real server cannot produce on demand (a refusal quoting markup, a CapabilityStatement
without QuestionnaireResponse create) come from a transport wrapping the real one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from attach_fhir.cli import main
from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import stop as stop_app
from smart_app.records import delivery
from tests.fixtures.launched_app import launched_app

pytestmark = pytest.mark.e2e  # starts the sandbox FHIR server process

ROWAN = "Practitioner/sandbox-practitioner-rowan"
ALL = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.crs user/QuestionnaireResponse.crus "
    "user/Observation.crs user/Provenance.crs"
)
READ_ONLY = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs user/QuestionnaireResponse.rs"
)
RQ = {"q:secure": "6", "q:fearful": "2", "q:preoccupied": "3", "q:dismissing": "5"}


class Wrapped(httpx.BaseTransport):
    """Real HTTP, with an optional rewrite of one kind of answer (faults only)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.rewrite: Callable[[httpx.Request, httpx.Response], httpx.Response] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.rewrite is None:
            return response
        response.read()
        return self.rewrite(request, response)

    def close(self) -> None:
        """Kept open for the whole test (several app clients share it)."""


class Session:
    """One app and one browser with a launch for a patient."""

    def __init__(self, app: Flask, client: FlaskClient, ctx: str, csrf: str) -> None:
        self.app, self.client, self.ctx, self.csrf = app, client, ctx, csrf

    def url(self, path: str = "") -> str:
        """A URL under this launch's assess pages."""
        return f"/app/{self.ctx}/assess/{path}"

    def form(self, instrument: str) -> tuple[str, str]:
        """The fill page and its submission id."""
        page = self.client.get(self.url(f"{instrument}/"))
        assert page.status_code == 200, page.text
        return page.text, re.search(r'name="submission_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    def post(self, instrument: str, data: dict[str, str], action: str, sid: str) -> Any:
        """Post the fill form."""
        body = {**data, "action": action, "submission_id": sid, "csrf_token": self.csrf}
        return self.client.post(self.url(f"{instrument}/"), data=body)


@pytest.fixture
def transport() -> Iterator[Wrapped]:
    """The app's outbound transport (real HTTP)."""
    wrapped = Wrapped()
    yield wrapped
    wrapped.inner.close()


@pytest.fixture
def launch_as(
    fhir_server: FhirServerProcess, tmp_path: Path, transport: Wrapped
) -> Iterator[Callable[..., Session]]:
    """``launch_as(patient, scope=ALL, registration=None, **config)``: an app and a browser
    launched for a patient; ``registration`` adds fields to the app's registration."""
    apps: list[Flask] = []

    def launch(
        patient: str,
        scope: str = ALL,
        registration: dict[str, Any] | None = None,
        **config: Any,
    ) -> Session:
        launched = launched_app(
            fhir_server.base_url,
            tmp_path / f"app-{len(apps)}",
            transport,
            client_id="assess-app-test",
            kind="ehr",
            patient=patient,
            user=ROWAN,
            scope=scope,
            registration=registration,
            **config,
        )
        apps.append(launched.app)
        return Session(launched.app, launched.client, launched.ctx, launched.csrf)

    yield launch
    for app in apps:
        stop_app(app)


def fhir(fhir_server: FhirServerProcess) -> httpx.Client:
    """A plain client for the open server (to check what was written)."""
    return httpx.Client(base_url=fhir_server.base_url.rstrip("/") + "/", timeout=30)


def article(page: str, instrument: str) -> str:
    """The Choose page's card for one instrument."""
    start = page.index(f'id="instrument-{instrument}"')
    return page[start : page.index("</article>", start)]


def test_choose_offers_what_fits_the_patients_age(launch_as: Callable[..., Session]) -> None:
    session = launch_as("sandbox-child-4")
    page = session.client.get(session.url()).text
    ecr_r = article(page, "ecr-r")
    assert "Does not fit this patient." in ecr_r
    assert "the patient is 4, under the reading age of 12" in ecr_r
    assert 'class="button start"' not in ecr_r and "Use anyway" in ecr_r
    prfq = article(page, "prfq")
    # validated for children 0-3 (Luyten et al. 2017): a 4-year-old only "may fit"
    assert "May fit this patient." in prfq and "The child is 4." in prfq
    assert "Anis et al. 2020" in prfq and "De Roo et al. 2019" in prfq
    assert "answered by a parent or caregiver" in prfq
    adult = launch_as("sandbox-adult-29")
    page = adult.client.get(adult.url()).text
    assert "Fits this patient." in article(page, "ecr-r")
    rq = article(page, "rq")
    # the author's restriction stays in view, outside the licence notes' <details>
    details = rq.index("<details")
    assert rq.index("not appropriate for use in individual assessments") < details
    assert rq.index("cannot use these measures for commercial purposes") > details
    assert '<span class="length">4 questions</span>' in rq
    assert "Does not fit this patient." in article(page, "prfq")  # no child on record


def test_a_parent_may_fit_the_prfq_once_the_children_can_be_read(
    launch_as: Callable[..., Session],
) -> None:
    unknown = launch_as("sandbox-parent-41")  # RelatedPerson not granted: cannot tell
    prfq = article(unknown.client.get(unknown.url()).text, "prfq")
    assert "Cannot tell whether it fits this patient." in prfq
    known = launch_as("sandbox-parent-41", ALL + " user/RelatedPerson.rs")
    prfq = article(known.client.get(known.url()).text, "prfq")
    # the children are 4 and 9: beyond the validated 0-3, inside Anis et al.'s 42-60 months
    # (the 4-year-old) and De Roo et al.'s 0-12 years (both)
    assert "May fit this patient." in prfq and "The patient&#39;s child is 4." in prfq
    assert "Anis et al. 2020" in prfq


def test_errors_reshow_the_form_with_every_answer_kept(launch_as: Callable[..., Session]) -> None:
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    partial = {"q:secure": "6", "q:fearful": "2", "q:best-fit": "secure"}
    page = session.post("rq", partial, "submit", sid)
    assert page.status_code == 422
    assert "There is a problem" in page.text
    assert len(re.findall(r'<a href="#q-(preoccupied|dismissing)-0">', page.text)) == 2
    for name, value in partial.items():
        assert re.search(rf'name="{name}" value="{value}" id="[^"]+"\s*checked', page.text)
    assert f'name="submission_id" value="{sid}"' in page.text  # still the same submission


@pytest.mark.parametrize("action", ["update", "add:secure", "remove.2:secure", "add:nowhere"])
def test_actions_other_than_draft_and_submit_never_save_or_submit(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess, action: str
) -> None:
    """A repeating group's add/remove (or one naming no such group) shows the page again."""
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    page = session.post("rq", RQ, action, sid)  # every answer given: a submit would be valid
    assert page.status_code == 200
    assert "There is a problem" not in page.text
    for name, value in RQ.items():
        assert re.search(rf'name="{name}" value="{value}" id="[^"]+"\s*checked', page.text)
    assert delivery.outbox_services(session.app).outbox.store.get(sid) is None
    assert session.client.get(session.url(f"submissions/{sid}")).status_code == 404
    value = identifier_value(sid, "QuestionnaireResponse")
    with fhir(fhir_server) as client:
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        ).json()
    assert not found.get("entry")  # no draft either


def test_every_post_needs_the_csrf_token(launch_as: Callable[..., Session]) -> None:
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    page = session.client.post(
        session.url("rq/"), data={**RQ, "action": "submit", "submission_id": sid}
    )
    assert page.status_code == 400 and "csrf_failed" in page.text
    assert delivery.outbox_services(session.app).outbox.store.get(sid) is None


def test_without_write_scopes_the_results_are_kept_and_exported(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess
) -> None:
    session = launch_as("sandbox-adult-29", READ_ONLY)
    choose = session.client.get(session.url()).text
    assert 'id="keep-and-export"' in choose and "did not grant the app permission" in choose
    page, sid = session.form("rq")
    assert re.search(r'id="draft-button" disabled aria-describedby="draft-reason"', page)
    assert 'id="draft-reason">Saving a draft needs permission' in page
    done = session.post("rq", RQ, "submit", sid)
    assert done.status_code == 303
    status = session.client.get(done.headers["Location"])
    assert 'data-state="kept"' in status.text
    exported = session.client.get(session.url(f"submissions/{sid}/export"))
    bundle = json.loads(exported.data)
    values = {
        e["resource"]["code"]["coding"][0]["code"]: e["resource"]["valueQuantity"]["value"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    # By hand from the RQ key: prototypes are the ratings; self = (6 + 5) - (2 + 3) = 6;
    # other = (6 + 3) - (2 + 5) = 2.
    assert values == {
        "rq-secure": 6,
        "rq-fearful": 2,
        "rq-preoccupied": 3,
        "rq-dismissing": 5,
        "rq-model-of-self": 6,
        "rq-model-of-other": 2,
    }
    with fhir(fhir_server) as client:
        value = identifier_value(sid, "QuestionnaireResponse")
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        )
        assert found.json()["total"] == 0


def test_a_server_that_cannot_take_responses_is_said_before_starting(
    launch_as: Callable[..., Session], transport: Wrapped
) -> None:
    def no_qr_create(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if not request.url.path.endswith("/metadata"):
            return response
        statement = response.json()
        for res in statement["rest"][0]["resource"]:
            if res["type"] == "QuestionnaireResponse":
                res["interaction"] = [i for i in res["interaction"] if i["code"] != "create"]
        return httpx.Response(
            200, json=statement, headers={"Content-Type": "application/fhir+json"}
        )

    transport.rewrite = no_qr_create
    session = launch_as("sandbox-adult-29")
    page = session.client.get(session.url()).text
    assert "This EHR does not accept questionnaire answers or scores" in page
    assert 'id="keep-and-export"' in page


def test_a_refusal_is_shown_escaped(launch_as: Callable[..., Session], transport: Wrapped) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "<script>alert(1)</script> bad"}
        ],
    }

    def refuse_bundles(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir"):
            return httpx.Response(422, json=outcome)
        return response

    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    transport.rewrite = refuse_bundles
    done = session.post("rq", RQ, "submit", sid)
    transport.rewrite = None
    page = session.client.get(done.headers["Location"]).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; bad" in page
    assert "<script>alert" not in page
    assert delivery.outbox_services(session.app).outbox.store.get(sid).status == "failed-permanent"


def test_the_ehrs_copy_is_used_and_the_packaged_one_created_when_asked(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess
) -> None:
    from attach_fhir.instruments import library

    ecr = dict(library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/ecr|1.1.0"))
    ecr.pop("id", None)
    ecr["title"] = "ECR as filed in this EHR"
    with fhir(fhir_server) as client:
        assert client.post("Questionnaire", json=ecr).status_code == 201
    session = launch_as("sandbox-adult-29")
    assert "<h1>ECR as filed in this EHR</h1>" in session.form("ecr")[0]

    url = {"url": "http://attach-fhir.org/fhir/Questionnaire/ecr-rs", "version": "1.1.0"}
    not_asked = launch_as("sandbox-adult-29")
    not_asked.form("ecr-rs")
    with fhir(fhir_server) as client:
        assert client.get("Questionnaire", params=url).json()["total"] == 0
    creating = launch_as("sandbox-adult-29", registration={"create_questionnaires": True})
    creating.form("ecr-rs")
    creating.form("ecr-rs")  # conditional on url and version: still one
    with fhir(fhir_server) as client:
        found = client.get("Questionnaire", params=url).json()
        assert len(found.get("entry") or []) == 1


@pytest.mark.parametrize("labelled", [True, False])
def test_the_registration_asks_for_security_labels(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess, labelled: bool
) -> None:
    session = launch_as("sandbox-adult-29", registration={"security_labels": labelled})
    _, sid = session.form("rq")
    draft = session.post("rq", {"q:secure": "6"}, "draft", sid)
    assert draft.status_code == 303, draft.text
    draft_id = re.search(r"draft=([^&]+)", draft.headers["Location"]).group(1)  # type: ignore[union-attr]
    with fhir(fhir_server) as client:
        in_progress = client.get(f"QuestionnaireResponse/{draft_id}").json()
    done = session.post("rq", RQ, "submit", sid)
    assert done.status_code == 303
    item = delivery.outbox_services(session.app).outbox.store.get(sid)
    assert item.status == "delivered", item.last_error
    written = [in_progress]
    with fhir(fhir_server) as client:
        for reference in item.receipt.values():
            written.append(client.get(reference).json())
    kinds = sorted({r["resourceType"] for r in written})
    assert kinds == ["Observation", "Provenance", "QuestionnaireResponse"]
    for resource in written:
        codes = {s["code"] for s in resource.get("meta", {}).get("security", [])}
        # v3-ActCode BH (behavioural health) and confidentiality R, only when asked
        assert codes == ({"BH", "R"} if labelled else set()), resource["resourceType"]


@pytest.mark.timed_thread_wait
def test_create_app_starts_the_worker_when_configured_and_it_delivers_later(
    launch_as: Callable[..., Session], transport: Wrapped, fhir_server: FhirServerProcess
) -> None:
    def refused(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "POST":  # as a stopped server: nothing reaches it
            raise httpx.ConnectError("connection refused", request=request)
        return response

    session = launch_as(
        "sandbox-adult-29",
        OUTBOX_WORKER=True,
        OUTBOX_POLL=0.1,
        OUTBOX_BACKOFF_BASE=0.2,
        OUTBOX_BACKOFF_CAP=0.4,
    )
    worker = delivery.outbox_services(session.app).worker
    assert worker is not None
    _, sid = session.form("rq")
    transport.rewrite = refused
    try:
        done = session.post("rq", RQ, "submit", sid)
        assert "Saved, waiting to sync" in session.client.get(done.headers["Location"]).text
    finally:
        transport.rewrite = None
    store = delivery.outbox_services(session.app).outbox.store
    deadline = time.time() + 15
    while store.get(sid).status != "delivered" and time.time() < deadline:
        time.sleep(0.1)
    assert store.get(sid).status == "delivered"
    with fhir(fhir_server) as client:
        value = identifier_value(sid, "QuestionnaireResponse")
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        )
        assert found.json()["total"] == 1


def submitted_while_down(
    launch_as: Callable[..., Session], transport: Wrapped
) -> tuple[Session, str]:
    """A clinician's RQ submitted while the EHR takes no POST: the session and the submission
    id, left waiting in the outbox with a retry due within 0.1 s."""

    def refused(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "POST":  # as a stopped server: nothing reaches it
            raise httpx.ConnectError("connection refused", request=request)
        return response

    session = launch_as("sandbox-adult-29", OUTBOX_BACKOFF_BASE=0.05, OUTBOX_BACKOFF_CAP=0.1)
    _, sid = session.form("rq")
    transport.rewrite = refused
    try:
        session.post("rq", RQ, "submit", sid)
    finally:
        transport.rewrite = None
    return session, sid


def test_the_drain_command_follows_up_what_it_delivered(
    launch_as: Callable[..., Session],
    transport: Wrapped,
    fhir_server: FhirServerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Queued while the EHR was down, delivered by `attach-fhir outbox drain`: its
    attach_fhir.after_drain hook (the app's) judges the goals with the user's live launch, so
    the submission page goes straight on to the review, with no button left to press."""

    session, sid = submitted_while_down(launch_as, transport)
    waiting = session.client.get(session.url(f"submissions/{sid}"))
    assert waiting.status_code == 200 and "Saved, waiting to sync" in waiting.text
    data_dir = Path(session.app.config["DATA_DIR"])
    registration = {
        "name": "open sandbox",
        "iss": [fhir_server.base_url.rstrip("/")],
        "client_id": "assess-app-test",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    registrations = tmp_path / "registrations.json"
    registrations.write_text(json.dumps({"registrations": [registration]}), encoding="utf-8")
    monkeypatch.setenv("ATTACH_REGISTRATIONS", str(registrations))
    time.sleep(0.2)  # past the retry's back-off (at most 0.1 s)
    code = main(["outbox", "drain", "--dsn", str(data_dir / "outbox.sqlite3")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "delivered 1, retrying 0, failed 0" in err
    assert "follow-ups checked for 1 delivered" in err
    with fhir(fhir_server) as client:  # the patient has no active care plan: no goal to judge
        plans = client.get(
            "CarePlan", params={"subject": "Patient/sandbox-adult-29", "status": "active"}
        )
        assert plans.json().get("total") == 0
    with session.app.app_context():
        record = session.app.extensions["attach_fhir"].store.get("assess-submission", sid)
    assert record["goals"] == {"state": "none"}
    shown = session.client.get(session.url(f"submissions/{sid}"))
    assert shown.status_code == 303 and "/review/" in shown.headers["Location"]


def test_the_submission_page_only_reads_and_its_button_updates_the_record(
    launch_as: Callable[..., Session], transport: Wrapped
) -> None:
    """Delivered with no follow-up run (a drain with no app around it): the page says the goals
    are not updated and offers the button, writing nothing; the button (a POST with the CSRF
    token) runs the follow-ups, and the page then goes on to the review."""

    session, sid = submitted_while_down(launch_as, transport)
    time.sleep(0.2)  # past the retry's back-off (at most 0.1 s)
    with session.app.app_context():
        assert delivery.outbox_services().outbox.drain().delivered == [sid]
        store = session.app.extensions["attach_fhir"].store
    page = session.client.get(session.url(f"submissions/{sid}"))
    assert page.status_code == 200
    assert "The care plan's goals are not updated from this submission yet." in page.text
    assert "Update the record now" in page.text
    assert "goals" not in store.get("assess-submission", sid)  # the GET wrote nothing
    button = session.url(f"submissions/{sid}/follow-up")
    assert session.client.post(button).status_code == 400  # no CSRF token
    pressed = session.client.post(button, data={"csrf_token": session.csrf})
    assert pressed.status_code == 303
    assert pressed.headers["Location"].endswith(session.url(f"submissions/{sid}"))
    assert store.get("assess-submission", sid)["goals"] == {"state": "none"}  # no active plan
    again = session.client.get(session.url(f"submissions/{sid}"))
    assert again.status_code == 303 and "/review/" in again.headers["Location"]


def autosave(session: Session, instrument: str, data: dict[str, str], sid: str, **kw: Any) -> Any:
    """Post answers to the draft endpoint as static/autosave.js does (the form's own fields)."""
    body = {**data, "submission_id": sid, "csrf_token": session.csrf, **kw}
    return session.client.post(session.url(f"{instrument}/draft"), data=body)


def test_the_fill_page_autosaves_where_drafts_are_allowed(
    launch_as: Callable[..., Session],
) -> None:
    session = launch_as("sandbox-adult-29")
    page, _ = session.form("rq")
    assert f'data-autosave="{session.url("rq/draft")}"' in page
    assert 'src="/static/autosave.js"' in page
    read_only, _ = launch_as("sandbox-adult-29", READ_ONLY).form("rq")
    assert "data-autosave" not in read_only and "autosave.js" not in read_only


def test_autosave_writes_one_draft_then_refuses_once_submitted(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess
) -> None:
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    first = autosave(session, "rq", {"q:secure": "6"}, sid)
    assert first.status_code == 200, first.text
    draft_id = first.json["draft"]
    second = autosave(session, "rq", {"q:secure": "6", "q:fearful": "2"}, sid)
    assert second.json == {"draft": draft_id}  # the same resource, updated
    with fhir(fhir_server) as client:
        draft = client.get(f"QuestionnaireResponse/{draft_id}").json()
    assert draft["status"] == "in-progress"
    assert draft["subject"]["reference"] == "Patient/sandbox-adult-29"
    answers = {i["linkId"]: i["answer"][0]["valueCoding"]["code"] for i in draft["item"]}
    assert answers == {"secure": "6", "fearful": "2"}
    resumed = session.client.get(session.url(f"rq/?draft={draft_id}")).text
    assert re.search(r'name="q:fearful" value="2" id="[^"]+"\s*checked', resumed)
    assert session.post("rq", RQ, "submit", sid).status_code == 303
    late = autosave(session, "rq", {"q:secure": "1"}, sid)  # a beacon after the submit
    assert late.status_code == 409
    with fhir(fhir_server) as client:
        assert client.get(f"QuestionnaireResponse/{draft_id}").json()["status"] == "completed"


def test_autosave_needs_the_csrf_token_and_a_submission_id(
    launch_as: Callable[..., Session], fhir_server: FhirServerProcess
) -> None:
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    forged = autosave(session, "rq", {"q:secure": "6"}, sid, csrf_token="not-the-token")
    assert forged.status_code == 400 and "csrf_failed" in forged.text
    assert autosave(session, "rq", {"q:secure": "6"}, "short").status_code == 400
    bad = autosave(session, "rq", {"q:secure": "8"}, sid)  # not an answer option
    assert bad.status_code == 422
    with fhir(fhir_server) as client:
        value = identifier_value(sid, "QuestionnaireResponse")
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        )
        assert found.json()["total"] == 0


def test_autosave_after_expiry_keeps_the_answers_for_the_next_form(
    launch_as: Callable[..., Session],
) -> None:
    session = launch_as("sandbox-adult-29")
    _, sid = session.form("rq")
    store = session.app.extensions["attach_fhir"].store
    record = store.get("launch", session.ctx)
    record["token"]["expires_at"] = time.time() - 60  # expired, and no refresh token
    store.put("launch", session.ctx, record, 3600)
    expired = autosave(session, "rq", {"q:secure": "6", "q:fearful": "2"}, sid)
    assert expired.status_code == 401 and expired.json["code"] == "authorization_expired"
    record["token"]["expires_at"] = time.time() + 3600  # as after the next launch
    store.put("launch", session.ctx, record, 3600)
    page, kept_sid = session.form("rq")
    assert "Your answers from before the connection to the EHR expired are back." in page
    assert kept_sid == sid
    assert re.search(r'name="q:fearful" value="2" id="[^"]+"\s*checked', page)


@pytest.mark.parametrize(("scope", "only_copy"), [(ALL, False), (READ_ONLY, True)])
def test_the_submission_record_is_synced_only_where_it_is_the_only_copy(
    scope: str,
    only_copy: bool,
    launch_as: Callable[..., Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = launch_as("sandbox-adult-29", scope)
    store = session.app.extensions["attach_fhir"].store
    put = store.put
    synced: dict[str, bool] = {}

    def recording_put(ns: str, key: str, value: Any, ttl: float, **kw: Any) -> None:
        if ns == "assess-submission":  # the first write of each record: as it is stored
            synced.setdefault(key, kw.get("durable", True))
        put(ns, key, value, ttl, **kw)

    monkeypatch.setattr(store, "put", recording_put)
    _, sid = session.form("rq")
    assert session.post("rq", RQ, "submit", sid).status_code == 303
    item = delivery.outbox_services(session.app).outbox.store.get(sid)
    # Sent: the outbox row (synced when stored) holds the answers; kept: this record does.
    assert (item is None) == only_copy
    assert synced == {sid: only_copy}
