"""A clinician launched from an EHR worklist Task: the landing page opens that assignment.

The clinic assigns the ECR-R to the adult with an SDC-style Task; the sandbox EHR launches the
app with that Task in the token response's ``fhirContext``. The landing page offers it
("Assigned in your EHR: ..."), Start opens the form bound to the Task, the submission is
delivered, and the Task read back from the server is ``completed`` with an ``output``
referencing the QuestionnaireResponse written. The app's default EHR request asks for no Task
scope (least privilege), so each registration here adds one in its ``scopes``: the narrow
``patient/Task.ru`` docs/ehr-registration.md recommends, and the broad ``user/Task.rus`` under
which the server hands over another patient's Task and only the app's own check keeps it out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser as Chromium

from ehr_sandbox.runner import Sandbox
from smart_app.web.scopes import default_scopes
from smart_app.web.security import COOKIE_NAME
from tests.app.test_launch_context_tasks import offers
from tests.e2e.test_careplan_e2e import ecr_r_answers, hidden
from tests.e2e.test_pages_a11y import WIDTHS, Launched, check, open_page
from tests.e2e.test_task_completion_e2e import ADULT, ECR_R, OTHER, ROWAN, World, response_output
from tests.fixtures.sandbox import (
    SANDBOX_CLIENTS,
    AuthzDriver,
    SandboxClient,
    SandboxFactory,
    clinician_fhir,
)
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    register_app,
    start_app,
)

pytestmark = pytest.mark.e2e

CLINIC_SCOPES = "launch user/Task.cruds user/QuestionnaireResponse.rs"
ECR_R_TITLE = "Experiences in Close Relationships - Revised (ECR-R)"  # questionnaires/ecr-r.json
NARROW = " ".join([*default_scopes("ehr"), "patient/Task.ru"])
BROAD = " ".join([*default_scopes("ehr"), "user/Task.rus"])


@dataclass
class Ehr:
    """A sandbox EHR, the clinic's client, and one app registration per Task scope."""

    world: World
    apps: dict[str, AppServer]


@pytest.fixture(scope="module")
def ehr(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ehr]:
    public = SANDBOX_CLIENTS["public"]
    sandbox: Sandbox = sandbox_factory(clients=[public.registration()])
    assert sandbox.urls is not None
    apps: dict[str, AppServer] = {}
    for name, scopes in (("narrow", NARROW), ("broad", BROAD)):
        data_dir = tmp_path_factory.mktemp(f"ehr-task-{name}")
        reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir, f"ehr-{name}")
        reg["scopes"] = scopes
        apps[name] = start_app(reg, data_dir)
        register_app(sandbox, apps[name], client)
    clinic = clinician_fhir(sandbox, public, ADULT, ROWAN, CLINIC_SCOPES)
    try:
        yield Ehr(World(sandbox, apps["narrow"], clinic), apps)
    finally:
        clinic.close()
        for server in apps.values():
            server.stop()


class Clinician:
    """Rowan, launched by the EHR for the adult with ``tasks`` in ``fhirContext``."""

    def __init__(self, ehr: Ehr, app: str, tasks: tuple[str, ...]) -> None:
        server = ehr.apps[app]
        driver = AuthzDriver(ehr.world.sandbox)
        try:
            launch = driver.launch(
                SandboxClient(server.client_id, "public"),
                ADULT,
                ROWAN,
                mode="window",
                fhir_context=tuple(f"Task/{t}" for t in tasks),
            )
        finally:
            driver.close()
        self.browser = Browser()
        self.landing = self.browser.go(launch["launch_url"])
        assert self.landing.status_code == 200, self.landing.text
        self.app = f"{server.url}/app/{urlsplit(self.browser.visited[-1]).path.split('/')[2]}"

    def get(self, url: str) -> httpx.Response:
        return self.browser.request("GET", str(httpx.URL(self.app + "/").join(url)))


def test_the_assigned_task_opens_from_the_landing_page_and_closes_on_delivery(ehr: Ehr) -> None:
    world = ehr.world
    task = world.assign()
    clinician = Clinician(ehr, "narrow", (task["id"],))
    try:
        ((task_id, title, start),) = offers(clinician.landing.text)
        assert (task_id, title) == (task["id"], f"Assigned in your EHR: {ECR_R_TITLE}")
        assert start == f"{urlsplit(clinician.app).path}/assess/ecr-r/?task={task['id']}"

        form = clinician.get(start)
        assert form.status_code == 200, form.text
        fields = {
            **ecr_r_answers(anxiety=3, avoidance=2),
            "submission_id": hidden(form.text, "submission_id"),
            "csrf_token": hidden(form.text, "csrf_token"),
            "action": "submit",
        }
        posted = clinician.browser.request("POST", f"{clinician.app}/assess/ecr-r/", data=fields)
        assert posted.status_code == 303, posted.text
        shown = clinician.get(posted.headers["location"])
        assert shown.status_code == 303  # delivered, Task closed: straight on to the review
        assert "/review/responses/" in shown.headers["location"]

        found = world.clinic.get("QuestionnaireResponse", params={"subject": f"Patient/{ADULT}"})
        (response,) = [
            e["resource"]
            for e in found.json().get("entry", [])
            if e["resource"]["questionnaire"].startswith(ECR_R)
        ]
        closed = world.task(task["id"])
        assert closed["status"] == "completed"
        assert closed["output"] == response_output(response["id"])

        again = Clinician(ehr, "narrow", (task["id"],))  # launched for it again: now closed
        try:
            assert offers(again.landing.text) == []
            assert "is already closed in the EHR." in again.landing.text
        finally:
            again.browser.close()
    finally:
        clinician.browser.close()


@pytest.mark.parametrize(
    ("app", "sentence"),
    [
        # patient/Task.ru: the EHR itself refuses another patient's Task
        ("narrow", "The task the EHR opened the app for could not be read from the EHR."),
        # user/Task.rus: the EHR hands it over; the app's own check keeps it out
        ("broad", "The task the EHR opened the app for is not this patient&#39;s."),
    ],
)
def test_another_patients_task_in_context_is_not_offered(ehr: Ehr, app: str, sentence: str) -> None:
    theirs = ehr.world.assign(patient=OTHER)
    clinician = Clinician(ehr, app, (theirs["id"],))
    try:
        page = clinician.landing.text
        assert offers(page) == []
        assert f'<p class="notice" data-task-note>{sentence}</p>' in page
        assert f"task={theirs['id']}" not in page
        assert ehr.world.task(theirs["id"])["status"] == "requested"
    finally:
        clinician.browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_the_offered_assignment_passes_axe(chromium: Chromium, ehr: Ehr, width: str) -> None:
    task = ehr.world.assign()
    clinician = Clinician(ehr, "narrow", (task["id"],))
    try:
        server = ehr.apps["narrow"]
        sid = clinician.browser.cookies[urlsplit(server.url).netloc][COOKIE_NAME]
        page = open_page(chromium, Launched(server, clinician.app, sid, ""), "/", width)
        assert page.locator(f'#ehr-assignments [data-task="{task["id"]}"] a').count() == 1
        check(page, width)  # WCAG 2.1 AA, and nothing wider than 320 px
    finally:
        clinician.browser.close()
