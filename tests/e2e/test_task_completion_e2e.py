"""An assigned questionnaire closes its Task: a patient's standalone launch, the sandbox EHR.

The clinic assigns the ECR-R with an SDC-style Task (``input.valueCanonical``). The patient
signs in from the portal (the app asks for its default patient scopes, which include
``patient/Task.rus``), follows the assignment from their page, submits, and the Task read back
from the server is ``completed`` with an ``output`` referencing the QuestionnaireResponse that
was written. While the app closes it, the clinic adds a note (a real concurrent change): the
app's first write meets a 412, it reads again and writes once more, keeping the note. Submitting
or delivering again writes nothing (versionId unchanged). Where the server keeps refusing the
write (the clinic edits the Task at every read, so both writes meet a 412), the submission page
says the Task could not be updated and why, and the patient's page shows the assignment as sent,
waiting for the clinic, not as still to do. A submission made while the server is down is
delivered later by the outbox worker, which closes the Task too, with no page opened again.
What the grant or the CapabilityStatement does not allow is checked before any write
(tests/app/test_task_updates.py).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from ehr_sandbox.runner import Sandbox
from smart_app.records import delivery
from smart_app.records.delivery import Worker
from smart_app.records.follow_ups import after_delivery
from tests.e2e.test_assess_e2e import Down
from tests.e2e.test_careplan_e2e import ecr_r_answers, hidden
from tests.fixtures.sandbox import SANDBOX_CLIENTS, SandboxFactory, clinician_fhir
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
OTHER = "sandbox-parent-41"
ROWAN = "sandbox-practitioner-rowan"
CLINICIAN_SCOPES = "launch user/Task.cruds user/QuestionnaireResponse.rs"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"


@dataclass
class World:
    """A sandbox EHR, the app registered with it (default scopes), and the clinic's client."""

    sandbox: Sandbox
    server: AppServer
    clinic: httpx.Client

    @property
    def fhir_base(self) -> str:
        assert self.sandbox.urls is not None
        return self.sandbox.urls.fhir_base

    def assign(self, patient: str = ADULT) -> dict[str, Any]:
        """The clinic asks ``patient`` to fill in the ECR-R (an SDC-style Task); the Task."""
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
            "description": "Please fill in the ECR-R before our next session",
            "for": {"reference": f"Patient/{patient}"},
            "authoredOn": dt.date.today().isoformat(),  # the EHR's local day, as some write it
            "requester": {"reference": f"Practitioner/{ROWAN}"},
            "input": [
                {
                    "type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]},
                    "valueCanonical": ECR_R,
                }
            ],
        }
        made = self.clinic.post("Task", json=task)
        assert made.status_code == 201, made.text
        created: dict[str, Any] = made.json()
        return created

    def task(self, task_id: str) -> dict[str, Any]:
        found = self.clinic.get(f"Task/{task_id}")
        assert found.status_code == 200, found.text
        task: dict[str, Any] = found.json()
        return task

    def note(self, task_id: str, text: str) -> str:
        """The clinic puts a note on the Task (a real concurrent change); its new versionId."""
        current = self.task(task_id)
        current["note"] = [{"text": text}]
        changed = self.clinic.put(
            f"Task/{task_id}", json=current, headers={"Content-Type": "application/fhir+json"}
        )
        assert changed.status_code == 200, changed.text
        version: str = changed.json()["meta"]["versionId"]
        return version


def world(sandbox_factory: SandboxFactory, data_dir: Path) -> Iterator[World]:
    """Start a sandbox and the app; stop the app afterwards."""
    public = SANDBOX_CLIENTS["public"]
    sandbox = sandbox_factory(clients=[public.registration()])
    assert sandbox.urls is not None
    reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir, "task-e2e")
    server = start_app(reg, data_dir)  # no "scopes": the default patient request
    register_app(sandbox, server, client)
    clinic = clinician_fhir(sandbox, public, ADULT, ROWAN, CLINICIAN_SCOPES)
    try:
        yield World(sandbox, server, clinic)
    finally:
        clinic.close()
        server.stop()


def response_output(qr_id: str) -> list[dict[str, Any]]:
    """A closed Task's output, written out from SDC's sdc-task profile: the response it got."""
    sdc_temp = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
    kind = {
        "system": sdc_temp,
        "code": "questionnaire-response",
        "display": "Questionnaire Response",
    }
    return [
        {
            "type": {"coding": [kind]},
            "valueReference": {"reference": f"QuestionnaireResponse/{qr_id}"},
        }
    ]


@pytest.fixture(scope="module")
def open_ehr(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """An EHR that lets the patient's grant update their Tasks."""
    yield from world(sandbox_factory, tmp_path_factory.mktemp("task-open"))


class Patient:
    """The adult patient, signed in from the portal, using the app like a browser."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.browser = Browser(sign_in_as=f"Patient/{ADULT}")
        server = world.server
        page = self.browser.go(f"{server.url}/launch/standalone?iss={world.fhir_base}&role=patient")
        assert page.status_code == 200, page.text
        self.ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        self.app = f"{server.url}/app/{self.ctx}"

    def get(self, path: str) -> httpx.Response:
        return self.browser.request("GET", self.app + path)

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, response.text
        return self.browser.request(
            "GET", str(httpx.URL(self.app).join(response.headers["location"]))
        )

    def assignment_link(self, task_id: str) -> str:
        """The link of the assignment from Task ``task_id`` on the patient's page."""
        home = self.get("/patient/")
        assert home.status_code == 200, home.text
        item = re.search(rf'<li data-source="Task/{task_id}"[^>]*>\s*<a href="([^"]+)"', home.text)
        assert item, home.text
        return item.group(1).replace("&amp;", "&")

    def fill(self, link: str) -> dict[str, str]:
        """Open the assignment's form; the fields a browser posts to submit it."""
        form = self.browser.request("GET", str(httpx.URL(self.app).join(link)))
        assert form.status_code == 200, form.text
        return {
            **ecr_r_answers(anxiety=3, avoidance=2),
            "submission_id": hidden(form.text, "submission_id"),
            "csrf_token": hidden(form.text, "csrf_token"),
            "action": "submit",
        }

    def submit(self, fields: dict[str, str]) -> httpx.Response:
        posted = self.browser.request("POST", f"{self.app}/assess/ecr-r/", data=fields)
        assert posted.status_code == 303, posted.text
        return posted

    def update_the_record(self, sid: str, csrf_token: str) -> httpx.Response:
        """Press "Update the record now" on the submission's page."""
        url = f"{self.app}/assess/submissions/{sid}/follow-up"
        return self.browser.request("POST", url, data={"csrf_token": csrf_token})

    def close(self) -> None:
        self.browser.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_the_patients_submission_completes_the_assigned_task_once(open_ehr: World) -> None:
    world, transport = open_ehr, open_ehr.server.transport
    task = world.assign()
    theirs = world.assign(patient=OTHER)
    patient = Patient(world)
    try:
        link = patient.assignment_link(task["id"])
        assert f"task={task['id']}" in link
        # Another patient's Task cannot be carried into this patient's form.
        forged = link.replace(task["id"], theirs["id"])
        assert (
            patient.browser.request("GET", str(httpx.URL(patient.app).join(forged))).status_code
            == 404
        )
        fields = patient.fill(link)

        # While the app closes the Task, the clinic adds a note: the app's If-Match meets 412.
        task_url = f"{world.fhir_base}/Task/{task['id']}"
        noted: list[str] = []

        def clinic_edits_meanwhile(
            request: httpx.Request, response: httpx.Response
        ) -> httpx.Response:
            if request.method == "GET" and str(request.url) == task_url and not noted:
                noted.append(world.note(task["id"], "Moved the session to Thursday"))
            return response

        transport.clear()
        transport.tamper = clinic_edits_meanwhile
        before = now()
        shown = patient.follow(patient.submit(fields))
        after = now()
        transport.tamper = None
        assert shown.status_code == 303  # delivered, Task closed: straight on to their home
        assert "/patient/?sid=" in shown.headers["location"]

        (response,) = [
            r
            for r in (
                e["resource"]
                for e in world.clinic.get(
                    "QuestionnaireResponse", params={"subject": f"Patient/{ADULT}"}
                )
                .json()
                .get("entry", [])
            )
            if r["questionnaire"].startswith(ECR_R)
        ]
        assert response["status"] == "completed"
        closed = world.task(task["id"])
        assert closed["status"] == "completed"
        assert closed["output"] == response_output(response["id"])
        # An instant, compared as one: the app writes it with its own UTC offset, so that it is
        # not before an ``authoredOn`` the EHR wrote as its local day (R4 Task inv-1).
        assert before <= dt.datetime.fromisoformat(closed["lastModified"]) <= after
        assert closed["note"] == [{"text": "Moved the session to Thursday"}]  # theirs kept
        assert closed["meta"]["versionId"] != noted[0]
        assert transport.count("PUT", task_url) == 2  # refused once (412), then written

        # Submitting the same form again, and delivering again after the app forgot it had
        # closed the Task: the Task is read, found completed with this response, left alone.
        version = closed["meta"]["versionId"]
        transport.clear()
        again = patient.follow(patient.submit(fields))
        assert again.status_code == 303 and "/patient/?sid=" in again.headers["location"]
        app = world.server.app
        sid = fields["submission_id"]
        with app.app_context():
            store = app.extensions["attach_fhir"].store
            record = store.get("assess-submission", sid)
            assert record["task_outcome"]["state"] == "completed"
            del record["task_outcome"]
            store.put("assess-submission", sid, record, 3600)
        shown = patient.get(f"/assess/submissions/{sid}")  # a GET reads no Task, writes none
        assert shown.status_code == 200 and transport.count("GET", task_url) == 0
        assert "Update the record now" in shown.text
        redelivered = patient.update_the_record(sid, hidden(shown.text, "csrf_token"))
        assert redelivered.status_code == 303
        assert redelivered.headers["location"].endswith(f"/assess/submissions/{sid}")
        assert transport.count("GET", task_url) == 1  # read again once ...
        assert transport.count("PUT", task_url) == 0  # ... and not written
        assert world.task(task["id"])["meta"]["versionId"] == version

        # The patient's page no longer lists it.
        home = patient.get("/patient/")
        assert f'data-source="Task/{task["id"]}"' not in home.text
    finally:
        patient.close()


def test_a_task_the_server_keeps_refusing_is_said_and_shown_as_sent(open_ehr: World) -> None:
    world, transport = open_ehr, open_ehr.server.transport
    task = world.assign()
    patient = Patient(world)
    task_url = f"{world.fhir_base}/Task/{task['id']}"
    edits: list[str] = []

    def clinic_edits_at_every_read(
        request: httpx.Request, response: httpx.Response
    ) -> httpx.Response:
        if request.method == "GET" and str(request.url) == task_url:
            edits.append(world.note(task["id"], f"Edit {len(edits) + 1}"))
        return response

    try:
        fields = patient.fill(patient.assignment_link(task["id"]))
        transport.clear()
        transport.tamper = clinic_edits_at_every_read
        page = patient.follow(patient.submit(fields))
        transport.tamper = None
        assert page.status_code == 200, page.text  # delivered, but not straight on: it says why
        assert 'data-state="delivered"' in page.text
        assert 'id="task-not-updated"' in page.text
        assert "The task kept changing in the EHR while the app tried to close it." in page.text
        assert transport.count("PUT", task_url) == 2  # 412, read again, 412: reported
        same = world.task(task["id"])
        assert same["meta"]["versionId"] == edits[-1]  # the clinic's last edit, nothing after
        assert (same["status"], same["note"]) == ("requested", [{"text": "Edit 2"}])
        assert "output" not in same

        # The patient's page does not pretend: sent, waiting for the clinic, not still to do.
        home = patient.get("/patient/")
        item = re.search(rf'<li data-source="Task/{task["id"]}"[^>]*>.*?</li>', home.text, re.S)
        assert item, home.text
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert f'data-sent="{today}"' in item.group(0)
        assert "Waiting for your clinic to mark this as done." in item.group(0)
        assert f"/assess/submissions/{fields['submission_id']}" in item.group(0)
        assert world.task(task["id"])["meta"]["versionId"] == edits[-1]  # tried once only
    finally:
        transport.tamper = None
        patient.close()


@pytest.mark.timed_thread_wait
def test_a_submission_queued_while_the_server_is_down_closes_its_task_with_no_page_view(
    open_ehr: World,
) -> None:
    world, transport = open_ehr, open_ehr.server.transport
    app = world.server.app
    task = world.assign()
    patient = Patient(world)
    try:
        fields = patient.fill(patient.assignment_link(task["id"]))
        sid = fields["submission_id"]
        real = transport.inner
        transport.inner = Down(real, world.fhir_base)  # type: ignore[assignment]
        try:
            page = patient.follow(patient.submit(fields))
        finally:
            transport.inner = real
        assert page.status_code == 303  # the patient's home says where the answers are
        page = patient.follow(page)
        assert page.status_code == 200, page.text
        assert "Saved here, waiting to reach your clinic" in page.text
        outbox = delivery.outbox_services(app).outbox
        assert outbox.store.get(sid).status == "queued"
        assert world.task(task["id"])["status"] == "requested"

        # The worker delivers it; nobody opens a page of the app meanwhile or afterwards.
        pages_seen = len(patient.browser.visited)
        worker = Worker(app, outbox, poll=0.1, after=after_delivery)
        worker.start()
        try:
            deadline = time.time() + 20
            while world.task(task["id"])["status"] != "completed" and time.time() < deadline:
                time.sleep(0.2)
        finally:
            worker.stop()
        assert len(patient.browser.visited) == pages_seen
        assert outbox.store.get(sid).status == "delivered"

        identifier = f"{SUBMISSION_SYSTEM}|{identifier_value(sid, 'QuestionnaireResponse')}"
        found = world.clinic.get("QuestionnaireResponse", params={"identifier": identifier})
        (response,) = [e["resource"] for e in found.json().get("entry", [])]
        assert response["status"] == "completed"
        closed = world.task(task["id"])
        assert closed["status"] == "completed"
        assert [o["valueReference"] for o in closed["output"]] == [
            {"reference": f"QuestionnaireResponse/{response['id']}"}
        ]
        with app.app_context():
            record = app.extensions["attach_fhir"].store.get("assess-submission", sid)
        assert record["task_outcome"] == {
            "state": "completed",
            "task": f"Task/{task['id']}",
            "response": f"QuestionnaireResponse/{response['id']}",
        }

        # The page opened later finds it done: it reads nothing and writes nothing again.
        transport.clear()
        shown = patient.get(f"/assess/submissions/{sid}")
        assert shown.status_code == 303 and "/patient/?sid=" in shown.headers["location"]
        assert transport.count("PUT", f"{world.fhir_base}/Task/") == 0
        assert transport.count("GET", f"{world.fhir_base}/Task/") == 0
    finally:
        patient.close()
