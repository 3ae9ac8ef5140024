"""Closing an assigning Task from the app: what is checked before, and what is said after.

Flask's test client against real (open) sandbox FHIR servers, with a patient's launch put
straight into the session store (tests/fixtures/launched_app.py). One server is started with
Task read-only (its CapabilityStatement says so and it refuses writes with 405), seeded with
the Tasks below; the session's open server takes Tasks created by the tests. A refusal quoting
markup is a fault the real server will not produce on demand: a transport wrapping the real
one answers that request itself. tests/e2e/test_task_completion_e2e.py closes a Task end to end.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import create_app
from smart_app import stop as stop_app
from tests.fixtures.fhir_server import FhirServerFactory
from tests.fixtures.launched_app import launched_app
from tests.fixtures.seed import seed_bundle

pytestmark = pytest.mark.e2e  # starts sandbox FHIR server processes

ADULT = "sandbox-adult-29"
OTHER = "sandbox-parent-41"
RQ_URL = "http://attach-fhir.org/fhir/Questionnaire/rq"
ECR_R_URL = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
RQ = {"q:secure": "6", "q:fearful": "2", "q:preoccupied": "3", "q:dismissing": "5"}
PATIENT_SCOPES = (
    "launch/patient openid fhirUser patient/Patient.r patient/Questionnaire.rs "
    "patient/QuestionnaireResponse.crus patient/Observation.crs patient/Task.rus"
)


def assigning_task(task_id: str, patient: str, questionnaire: str, status: str) -> dict[str, Any]:
    """An SDC-style Task asking ``patient`` to complete ``questionnaire``."""
    return {
        "resourceType": "Task",
        "id": task_id,
        "status": status,
        "intent": "order",
        "description": "Please fill in the RQ",
        "for": {"reference": f"Patient/{patient}"},
        "authoredOn": dt.date.today().isoformat(),
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": questionnaire}],
    }


SEEDED = (
    assigning_task("assigned-rq", ADULT, RQ_URL, "requested"),
    assigning_task("someone-elses-rq", OTHER, RQ_URL, "requested"),
    assigning_task("closed-rq", ADULT, RQ_URL, "cancelled"),
)


class Recording(httpx.BaseTransport):
    """Real HTTP, recorded (method, path); ``refuse`` may answer a request itself, unsent
    (faults only)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str]] = []
        self.refuse: Callable[[httpx.Request], httpx.Response | None] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        refused = self.refuse(request) if self.refuse is not None else None
        return refused if refused is not None else self.inner.handle_request(request)

    def writes_to(self, path_end: str) -> int:
        """How many PUTs went to a path ending with ``path_end``."""
        return sum(1 for m, p in self.sent if m == "PUT" and p.endswith(path_end))

    def close(self) -> None:
        """Kept open for the whole test (several app clients share it)."""


@pytest.fixture(scope="module")
def read_only_tasks(
    fhir_server_factory: FhirServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> FhirServerProcess:
    """A server that declares Task read-only, seeded with the sandbox people and ``SEEDED``."""
    bundle = seed_bundle()
    for task in SEEDED:
        bundle["entry"].append(
            {"resource": task, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
        )
    seed = tmp_path_factory.mktemp("task-seed") / "seed.json"
    seed.write_text(json.dumps(bundle), encoding="utf-8")
    return fhir_server_factory(seed=seed, read_only_types=("Task",))


@pytest.fixture
def transport() -> Iterator[Recording]:
    wrapped = Recording()
    yield wrapped
    wrapped.inner.close()


class Portal:
    """The adult patient's launch (as a portal's standalone launch records it) and browser."""

    def __init__(self, app: Flask, client: FlaskClient, ctx: str, csrf: str, base: str) -> None:
        self.app, self.client, self.ctx, self.csrf, self.base = app, client, ctx, csrf, base

    def get(self, path: str) -> Any:
        return self.client.get(f"/app/{self.ctx}{path}")

    def link(self, task_id: str) -> str:
        """The assignment's link on the patient's page."""
        home = self.get("/patient/").text
        found = re.search(rf'<li data-source="Task/{task_id}"[^>]*>\s*<a href="([^"]+)"', home)
        assert found, home
        return found.group(1).replace("&amp;", "&")

    def submit(self, link: str, answers: dict[str, str]) -> tuple[str, Any]:
        """Open the form at ``link``, submit it; the submission id and the page it ends on."""
        form = self.client.get(link)
        assert form.status_code == 200, form.text
        sid = re.search(r'name="submission_id" value="([^"]+)"', form.text)
        assert sid
        posted = self.client.post(
            link.partition("?")[0],
            data={**answers, "action": "submit", "submission_id": sid.group(1),
                  "csrf_token": self.csrf},
        )  # fmt: skip
        assert posted.status_code == 303, posted.text
        return sid.group(1), self.client.get(posted.headers["Location"])


@pytest.fixture
def portal(tmp_path: Path, transport: Recording) -> Iterator[Callable[..., Portal]]:
    """``portal(server, scope)``: an app and the adult patient's launch against ``server``."""
    apps: list[Flask] = []

    def launch(server: FhirServerProcess, scope: str = PATIENT_SCOPES) -> Portal:
        launched = launched_app(
            server.base_url,
            tmp_path / f"app-{len(apps)}",
            transport,
            client_id="task-app-test",
            kind="patient",
            patient=ADULT,
            user=f"Patient/{ADULT}",
            scope=scope,
        )
        apps.append(launched.app)
        return Portal(launched.app, launched.client, launched.ctx, launched.csrf, launched.base)

    yield launch
    for app in apps:
        stop_app(app)


def task_now(server: FhirServerProcess, task_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=server.base_url.rstrip("/") + "/", timeout=30) as fhir:
        found = fhir.get(f"Task/{task_id}")
        assert found.status_code == 200, found.text
        task: dict[str, Any] = found.json()
        return task


def create_task(server: FhirServerProcess, questionnaire: str = RQ_URL) -> dict[str, Any]:
    task = assigning_task("x", ADULT, questionnaire, "requested")
    del task["id"]
    with httpx.Client(base_url=server.base_url.rstrip("/") + "/", timeout=30) as fhir:
        made = fhir.post("Task", json=task)
        assert made.status_code == 201, made.text
        created: dict[str, Any] = made.json()
        return created


def test_a_task_the_ehr_declares_read_only_is_not_written_and_the_pages_say_so(
    portal: Callable[..., Portal], read_only_tasks: FhirServerProcess, transport: Recording
) -> None:
    patient = portal(read_only_tasks)
    before = task_now(read_only_tasks, "assigned-rq")
    link = patient.link("assigned-rq")
    assert link.endswith("/assess/rq/?task=assigned-rq")
    sid, page = patient.submit(link, RQ)
    assert page.status_code == 200, page.text  # delivered, not straight on to the review
    assert 'data-state="delivered"' in page.text
    assert 'id="task-not-updated"' in page.text
    assert "This EHR does not accept updates of Task." in page.text
    # the patient reads plain words; the EHR's reason waits, folded, for their clinic
    section = re.search(r'<section[^>]*id="task-not-updated".*?</section>', page.text, re.S)
    assert section and 'role="status"' in section.group(0)
    assert "Your clinic will mark this questionnaire as done in your record." in section.group(0)
    assert "Your answers are in your clinic&#39;s record (sent at " in page.text
    assert "QuestionnaireResponse" not in page.text
    assert "<details><summary>Details for your clinic</summary>" in section.group(0)
    assert "(the EHR&#39;s task)" not in page.text
    assert transport.writes_to("/Task/assigned-rq") == 0  # not even tried
    assert task_now(read_only_tasks, "assigned-rq")["meta"] == before["meta"]

    home = patient.get("/patient/").text
    item = re.search(r'<li data-source="Task/assigned-rq"[^>]*>.*?</li>', home, re.S)
    assert item, home
    assert f'data-sent="{dt.datetime.now(dt.UTC).date().isoformat()}"' in item.group(0)
    assert "Waiting for your clinic to mark this as done." in item.group(0)
    # the day in words, as the patient reads dates ("6 Dec"; the year only for another year)
    assert re.search(r"You sent your answers on \d{1,2} [A-Z][a-z]{2}( \d{4})?\.", item.group(0))
    assert f"/assess/submissions/{sid}" in item.group(0)
    assert 'data-source="Task/closed-rq"' not in home  # closed: not an assignment
    assert 'data-source="Task/someone-elses-rq"' not in home


def test_the_link_binds_only_an_open_assignment_of_this_instrument_to_this_patient(
    portal: Callable[..., Portal], read_only_tasks: FhirServerProcess
) -> None:
    patient = portal(read_only_tasks)
    # The open server hands out anyone's Task: the app's own check refuses it.
    assert patient.get("/assess/rq/?task=someone-elses-rq").status_code == 404
    assert patient.get("/assess/ecr-r/?task=assigned-rq").status_code == 404  # another form's
    assert patient.get("/assess/rq/?task=no-such-task").status_code == 404
    assert patient.get("/assess/rq/?task=..%2Fmetadata").status_code == 404
    # A closed one: the form opens and says so; the submission answers no Task.
    link = f"/app/{patient.ctx}/assess/rq/?task=closed-rq"
    form = patient.client.get(link)
    assert "This assignment is already closed in your clinic&#39;s record." in form.text
    sid, page = patient.submit(link, RQ)
    assert page.status_code == 303  # delivered: straight on to the review, no Task to tell of
    with patient.app.app_context():
        record = patient.app.extensions["attach_fhir"].store.get("assess-submission", sid)
    assert record is not None and "assignment" not in record


def test_a_bound_submission_id_posted_with_another_instruments_answers_answers_no_task(
    portal: Callable[..., Portal], fhir_server: FhirServerProcess, transport: Recording
) -> None:
    task = create_task(fhir_server)
    patient = portal(fhir_server)
    form = patient.client.get(patient.link(task["id"]))  # the RQ form: its id bound to the Task
    sid = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert sid
    answers = {f"q:{n}": "4" for n in range(1, 37)}  # an ECR-R, posted under the RQ form's id
    posted = patient.client.post(
        f"/app/{patient.ctx}/assess/ecr-r/",
        data={**answers, "action": "submit", "submission_id": sid.group(1),
              "csrf_token": patient.csrf},
    )  # fmt: skip
    assert posted.status_code == 303, posted.text
    with patient.app.app_context():
        record = patient.app.extensions["attach_fhir"].store.get("assess-submission", sid.group(1))
    assert record is not None and record["instrument"] == "ecr-r"
    assert "assignment" not in record
    assert transport.writes_to(f"/Task/{task['id']}") == 0
    assert task_now(fhir_server, task["id"])["meta"]["versionId"] == task["meta"]["versionId"]


def test_without_task_update_in_the_grant_nothing_is_written(
    portal: Callable[..., Portal], fhir_server: FhirServerProcess, transport: Recording
) -> None:
    task = create_task(fhir_server)
    patient = portal(fhir_server, PATIENT_SCOPES.replace("Task.rus", "Task.rs"))
    _, page = patient.submit(patient.link(task["id"]), RQ)
    assert 'id="task-not-updated"' in page.text
    assert "The EHR did not grant the app permission to update Task." in page.text
    assert transport.writes_to(f"/Task/{task['id']}") == 0
    assert task_now(fhir_server, task["id"])["meta"]["versionId"] == task["meta"]["versionId"]


def test_a_refusal_of_the_task_update_is_shown_escaped(
    portal: Callable[..., Portal], fhir_server: FhirServerProcess, transport: Recording
) -> None:
    task = create_task(fhir_server)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "business-rule",
             "diagnostics": "<b>Only the clinic</b> closes this task"}
        ],
    }  # fmt: skip

    def refuse_task_updates(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and "/Task/" in request.url.path:
            return httpx.Response(422, json=outcome)
        return None

    patient = portal(fhir_server)
    transport.refuse = refuse_task_updates
    _, page = patient.submit(patient.link(task["id"]), RQ)
    transport.refuse = None
    assert 'id="task-not-updated"' in page.text and 'data-code="fhir_unprocessable"' in page.text
    assert "&lt;b&gt;Only the clinic&lt;/b&gt; closes this task" in page.text
    assert "<b>Only" not in page.text
    assert transport.writes_to(f"/Task/{task['id']}") == 1  # a 422 is not retried
    assert task_now(fhir_server, task["id"])["status"] == "requested"


def test_a_task_read_back_as_another_task_is_neither_bound_nor_written(
    portal: Callable[..., Portal], fhir_server: FhirServerProcess, transport: Recording
) -> None:
    asked, other = create_task(fhir_server), create_task(fhir_server)
    patient = portal(fhir_server)
    link = patient.link(asked["id"])

    def answer_with_the_other(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith(f"/Task/{asked['id']}"):
            return httpx.Response(200, json=task_now(fhir_server, other["id"]))
        return None

    transport.refuse = answer_with_the_other  # a server answering one Task's read with another
    assert patient.client.get(link).status_code == 404  # not bound to the Task in the link
    transport.refuse = None
    form = patient.client.get(link)  # bound, read as itself
    sid = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert form.status_code == 200 and sid
    transport.refuse = answer_with_the_other
    posted = patient.client.post(
        link.partition("?")[0],
        data={**RQ, "action": "submit", "submission_id": sid.group(1), "csrf_token": patient.csrf},
    )
    transport.refuse = None
    page = patient.client.get(posted.headers["Location"])
    assert 'id="task-not-updated"' in page.text and 'data-code="not_that_task"' in page.text
    assert [p for m, p in transport.sent if m == "PUT"] == []  # neither Task was written
    assert task_now(fhir_server, other["id"])["status"] == "requested"
    assert task_now(fhir_server, asked["id"])["status"] == "requested"


def test_a_task_whose_status_is_no_string_is_not_open(
    portal: Callable[..., Portal], fhir_server: FhirServerProcess, transport: Recording
) -> None:
    task = create_task(fhir_server)
    patient = portal(fhir_server)
    link = patient.link(task["id"])
    malformed = {**task, "status": ["requested"]}  # a real server refuses to store this

    def answer_malformed(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith(f"/Task/{task['id']}"):
            return httpx.Response(200, json=malformed)
        return None

    transport.refuse = answer_malformed
    form = patient.client.get(link)
    transport.refuse = None
    assert form.status_code == 200, form.text
    assert "This assignment is already closed in your clinic&#39;s record." in form.text


def test_two_follow_ups_finishing_at_once_keep_both_outcomes(tmp_path: Path) -> None:
    """A page view judging goals and the worker closing the Task both start from the same
    stored record: the second write must not erase the first one's outcome."""
    from types import SimpleNamespace

    from smart_app.records.submission import SUBMISSION_NS, Status, record_outcome

    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    store = app.extensions["attach_fhir"].store
    record = {"cred": "c", "instrument": "ecr-r", "assignment": {"task": "Task/t1"}}
    store.put(SUBMISSION_NS, "sid-1", record, 60)
    launch: Any = SimpleNamespace(services=SimpleNamespace(store=store))
    page, worker = Status("sid-1", dict(record), None), Status("sid-1", dict(record), None)
    with app.app_context():
        record_outcome(launch, page, "goals", {"state": "none"})
        record_outcome(launch, worker, "task_outcome", {"state": "completed"})
    stored = store.get(SUBMISSION_NS, "sid-1")
    assert stored == record | {"goals": {"state": "none"}, "task_outcome": {"state": "completed"}}
    stop_app(app)
