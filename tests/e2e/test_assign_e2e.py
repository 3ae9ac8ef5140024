"""A clinician asks the patient to complete the ECR-R at home; the patient does; it comes back.

Real launches against the sandbox EHR. The clinic's app registration adds ``patient/Task.crus``
to the EHR request (docs/ehr-registration.md); the portal's uses the default requests (the
patient's asks for ``patient/Task.rus``, the EHR launch for no Task scope at all). Rowan,
launched by the EHR for the adult, sends the ECR-R with a due date and a note from the Choose
page (clicked twice: one Task); the Task read back is the SDC Task written out by hand below.
The adult signs in from the portal, sees it with the note on their page, completes it; Rowan's
Choose page then lists it as completed with a link to the review of the response. A request
withdrawn is ``cancelled`` and leaves the patient's page. Without Task create in the grant the
Choose page has no request form. Failures and conflicts: tests/app/test_assign.py.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser as Chromium

from attach_fhir.instruments import library
from ehr_sandbox.runner import Sandbox
from smart_app.web.scopes import default_scopes
from smart_app.web.security import COOKIE_NAME
from tests.e2e.test_careplan_e2e import hidden
from tests.e2e.test_pages_a11y import WIDTHS, Launched, check, open_page
from tests.e2e.test_task_completion_e2e import ADULT, ECR_R, ROWAN, SDC_TEMP, Patient, World
from tests.fixtures.sandbox import SANDBOX_CLIENTS, SandboxFactory, clinician_fhir
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

CLINIC_SCOPES = " ".join([*default_scopes("ehr"), "patient/Task.crus"])
READER_SCOPES = "launch user/Task.rs user/CarePlan.cruds"
ECR_R_TITLE = "Experiences in Close Relationships - Revised (ECR-R)"  # questionnaires/ecr-r.json
RQ = "http://attach-fhir.org/fhir/Questionnaire/rq"
NOTE = "Before Thursday, <b>if you can</b> [see](javascript:alert(1))"
#: The Task identifier of a request form: uuid5 of "<form id>/Task" under the namespace named
#: by the identifier system's URL.
ASSIGNMENT = "http://attach-fhir.org/fhir/identifier/assignment"
NS = uuid.uuid5(uuid.NAMESPACE_URL, ASSIGNMENT)


@dataclass
class Clinic:
    """The sandbox, the app the clinic registered (with Task scopes), the portal's app (default
    requests) and a reader for what the server holds."""

    sandbox: Sandbox
    clinic_app: AppServer
    portal_app: AppServer
    reader: httpx.Client

    def patient_world(self) -> World:
        return World(self.sandbox, self.portal_app, self.reader)

    def task(self, task_id: str) -> dict[str, Any]:
        found = self.reader.get(f"Task/{task_id}")
        assert found.status_code == 200, found.text
        task: dict[str, Any] = found.json()
        return task


@pytest.fixture(scope="module")
def clinic(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    public = SANDBOX_CLIENTS["public"]
    sandbox = sandbox_factory(clients=[public.registration()])
    assert sandbox.urls is not None
    apps = {}
    for name, scopes in (("clinic", CLINIC_SCOPES), ("portal", None)):
        data_dir = tmp_path_factory.mktemp(f"assign-{name}")
        reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir, f"as-{name}")
        if scopes:
            reg["scopes"] = scopes
        apps[name] = start_app(reg, data_dir)
        register_app(sandbox, apps[name], client)
    reader = clinician_fhir(sandbox, public, ADULT, ROWAN, READER_SCOPES)
    try:
        yield Clinic(sandbox, apps["clinic"], apps["portal"], reader)
    finally:
        reader.close()
        for server in apps.values():
            server.stop()


class Rowan:
    """The clinician, launched by the EHR for the adult, using the app like a browser."""

    def __init__(self, sandbox: Sandbox, server: AppServer) -> None:
        self.browser = Browser()
        page = self.browser.go(ehr_launch_url(sandbox, server.client_id, ADULT))
        assert page.status_code == 200, page.text
        self.app = f"{server.url}/app/{urlsplit(self.browser.visited[-1]).path.split('/')[2]}"

    def get(self, path: str) -> httpx.Response:
        return self.browser.request("GET", str(httpx.URL(self.app + "/").join(path)))

    def choose(self) -> str:
        page = self.get("assess/")
        assert page.status_code == 200, page.text
        return page.text

    def request_form(self, instrument: str) -> dict[str, str]:
        """The fields of the instrument's "complete this at home" form on the Choose page."""
        page = self.choose()
        start = page.index(f'<form class="assign" id="assign-{instrument}"')
        form = page[start : page.index("</form>", start)]
        return {
            "request_id": hidden(form, "request_id"),
            "csrf_token": hidden(form, "csrf_token"),
        }

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.browser.request("POST", f"{self.app}/{path}", data=data)


def created_id(posted: httpx.Response) -> str:
    assert posted.status_code == 303, posted.text
    found = re.search(r"assigned=([A-Za-z0-9\-.]+)", posted.headers["location"])
    assert found, posted.headers["location"]
    return found.group(1)


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def test_the_patient_completes_at_home_what_the_clinician_asked_for(clinic: Clinic) -> None:
    made = clinic.reader.post(
        "CarePlan",
        json={
            "resourceType": "CarePlan",
            "identifier": [{"system": "http://attach-fhir.org/fhir/identifier/careplan",
                            "value": str(uuid.uuid4())}],
            "status": "active",
            "intent": "plan",
            "subject": {"reference": f"Patient/{ADULT}"},
        },
    )  # fmt: skip
    assert made.status_code == 201, made.text
    plan = made.json()["id"]
    rowan = Rowan(clinic.sandbox, clinic.clinic_app)
    patient = Patient(clinic.patient_world())
    try:
        due = (dt.date.today() + dt.timedelta(days=10)).isoformat()
        fields = {**rowan.request_form("ecr-r"), "due": due, "note": NOTE}
        before = now()
        first = created_id(rowan.post("assign/ecr-r", fields))
        again = created_id(rowan.post("assign/ecr-r", fields))  # a double click
        after = now()
        assert again == first
        value = str(uuid.uuid5(NS, f"{fields['request_id']}/Task"))
        found = clinic.reader.get("Task", params={"identifier": f"{ASSIGNMENT}|{value}"})
        assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [first]

        task = clinic.task(first)
        assert before <= task["authoredOn"] <= after
        assert {k: v for k, v in task.items() if k not in ("id", "meta", "authoredOn")} == {
            "resourceType": "Task",
            "identifier": [{"system": ASSIGNMENT, "value": value}],
            "basedOn": [{"reference": f"CarePlan/{plan}"}],
            "status": "requested",
            "intent": "order",
            "code": {
                "coding": [
                    {
                        "system": SDC_TEMP,
                        "code": "complete-questionnaire",
                        "display": "Complete Questionnaire",
                    }
                ]
            },
            "description": ECR_R_TITLE,
            "for": {"reference": f"Patient/{ADULT}"},
            "encounter": task["encounter"],  # the EHR launch's encounter, checked below
            "requester": {"reference": f"Practitioner/{ROWAN}"},
            "owner": {"reference": f"Patient/{ADULT}"},
            "restriction": {"period": {"end": due}},
            "input": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": SDC_TEMP,
                                "code": "questionnaire",
                                "display": "Questionnaire",
                            }
                        ]
                    },
                    # the packaged ECR-R at its version: what the app assigns now
                    "valueCanonical": f"{ECR_R}|{library().questionnaire(ECR_R)['version']}",
                }
            ],
            "note": [
                {
                    "authorReference": {"reference": f"Practitioner/{ROWAN}"},
                    "time": task["authoredOn"],
                    "text": "Before Thursday, \\<b\\>if you can\\</b\\> "
                    "\\[see\\](javascript:alert(1))",
                }
            ],
        }
        assert task["encounter"]["reference"].startswith("Encounter/")

        # The patient sees it on their page, with the note as typed and inert, and completes it.
        home = patient.get("/patient/")
        item = re.search(rf'<li data-source="Task/{first}"[^>]*>.*?</li>', home.text, re.S)
        assert item, home.text
        due_day = dt.date.fromisoformat(due)
        this_year = due_day.year == dt.date.today().year
        due_words = f"{due_day.day} {due_day:%b}" + ("" if this_year else f" {due_day.year}")
        # Named for the patient (the portal's default grant reads no Practitioner: no requester)
        assert f">ECR-R relationships questionnaire, due {due_words}</a>" in item.group(0)
        assert (
            "Note from your clinician: Before Thursday, &lt;b&gt;if you can&lt;/b&gt; "
            "[see](javascript:alert(1))"
        ) in item.group(0)
        assert "<b>if" not in home.text
        shown = patient.follow(patient.submit(patient.fill(patient.assignment_link(first))))
        # Delivered, Task closed: the patient lands on their home, not the clinician's review.
        assert shown.status_code == 303 and "/patient/?sid=" in shown.headers["location"]
        closed = clinic.task(first)
        assert closed["status"] == "completed"
        response = closed["output"][0]["valueReference"]["reference"].rpartition("/")[2]

        # Back on Rowan's Choose page: completed, with the review of that response.
        page = rowan.choose()
        assert f'<li class="sent-open" data-task="{first}"' not in page
        row = re.search(rf'<li class="sent-done" data-task="{first}".*?</li>', page, re.S)
        assert row, page
        assert f'data-response="QuestionnaireResponse/{response}"' in row.group(0)
        link = re.search(r'<a href="([^"]+)">Review the answers</a>', row.group(0))
        assert link and link.group(1).endswith(f"/review/responses/{response}")
        assert rowan.get(link.group(1)).status_code == 200
    finally:
        rowan.browser.close()
        patient.close()


def test_a_withdrawn_request_leaves_the_patients_page(clinic: Clinic) -> None:
    rowan = Rowan(clinic.sandbox, clinic.clinic_app)
    patient = Patient(clinic.patient_world())
    try:
        task_id = created_id(rowan.post("assign/rq", rowan.request_form("rq")))
        assert f'data-source="Task/{task_id}"' in patient.get("/patient/").text
        page = rowan.choose()
        row = re.search(rf'<li class="sent-open" data-task="{task_id}".*?</li>', page, re.S)
        assert row, page
        withdrawn = rowan.post(
            f"assign/tasks/{task_id}/withdraw",
            {"version": hidden(row.group(0), "version"), "csrf_token": hidden(page, "csrf_token")},
        )
        assert withdrawn.status_code == 303, withdrawn.text
        task = clinic.task(task_id)
        assert task["status"] == "cancelled"
        assert task["input"][0]["valueCanonical"].startswith(f"{RQ}|")
        assert f'data-source="Task/{task_id}"' not in patient.get("/patient/").text
        assert f'data-task="{task_id}"' not in rowan.choose()
    finally:
        rowan.browser.close()
        patient.close()


def test_without_task_create_in_the_grant_there_is_no_request_form(clinic: Clinic) -> None:
    rowan = Rowan(clinic.sandbox, clinic.portal_app)  # the EHR launch's default request
    try:
        page = rowan.choose()
        assert "Ask the patient to complete this at home" not in page
        assert '<form class="assign"' not in page
        assert (
            "The EHR did not grant the app permission to create Task: questionnaires cannot be "
            "sent to the patient to complete at home from here."
        ) in page
    finally:
        rowan.browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_the_request_form_and_the_list_pass_axe(
    chromium: Chromium, clinic: Clinic, width: str
) -> None:
    rowan = Rowan(clinic.sandbox, clinic.clinic_app)
    try:
        fields = {**rowan.request_form("ecr-r"), "due": "2000-01-01", "note": NOTE}
        assert rowan.post("assign/ecr-r", fields).status_code == 422  # a past due date
        created_id(rowan.post("assign/ecr-r", {**fields, "due": ""}))  # listed, with its note
        server = clinic.clinic_app
        sid = rowan.browser.cookies[urlsplit(server.url).netloc][COOKIE_NAME]
        page = open_page(chromium, Launched(server, rowan.app, sid, ""), "/assess/", width)
        assert page.locator("#sent li.sent-open").count() >= 1
        page.locator("#assign-ecr-r summary").click()  # the form open, as a clinician sees it
        assert page.locator("#due-ecr-r").is_visible()
        check(page, width)  # WCAG 2.1 AA, and nothing wider than 320 px
    finally:
        rowan.browser.close()
