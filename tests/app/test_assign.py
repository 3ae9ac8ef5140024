"""Asking the patient to complete a questionnaire at home, from the Choose page (Flask's client).

Against the real (open) sandbox FHIR server, with launches put straight into the session store
(tests/fixtures/launched_app.py). What a real server will not do on demand comes from the
transport: a CapabilityStatement without Task create, a refusal quoting markup, a timeout, a
503, and a clinic's edit landing between the app's read and its write (the edit itself is a
real write to the server). tests/e2e/test_assign_e2e.py walks it with real launches.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from attach_fhir.assignment_request import identifier_value
from attach_fhir.instruments import library
from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import stop as stop_app
from tests.fixtures.launched_app import launched_app

pytestmark = pytest.mark.e2e  # starts the sandbox FHIR server process

ADULT = "sandbox-adult-29"
ROWAN = "Practitioner/sandbox-practitioner-rowan"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
ASSIGNMENT = "http://attach-fhir.org/fhir/identifier/assignment"
SCOPE = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs user/QuestionnaireResponse.crus "
    "user/Observation.crs user/Provenance.c user/Task.crus"
)
SUMMARY = "Ask the patient to complete this at home"
NO_GRANT = (
    "The EHR did not grant the app permission to create Task: questionnaires cannot be sent to "
    "the patient to complete at home from here."
)
NOT_DECLARED = (
    "This EHR does not declare that it accepts new Tasks: questionnaires cannot be sent to the "
    "patient to complete at home from here."
)


class Transport(httpx.BaseTransport):
    """Real HTTP, recorded (method, path); ``before`` may answer a request itself (a fault) or
    act first and let it through (None)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[tuple[str, str]] = []
        self.before: Callable[[httpx.Request], httpx.Response | None] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        answered = self.before(request) if self.before is not None else None
        return answered if answered is not None else self.inner.handle_request(request)

    def count(self, method: str, path_end: str) -> int:
        return sum(1 for m, p in self.sent if m == method and p.endswith(path_end))

    def close(self) -> None:
        """Kept open for the whole test (several app clients share it)."""


class Clinician:
    """A launch for the adult and the browser holding it."""

    def __init__(self, app: Flask, client: FlaskClient, ctx: str, csrf: str) -> None:
        self.app, self.client, self.ctx, self.csrf = app, client, ctx, csrf

    def choose(self) -> str:
        page = self.client.get(f"/app/{self.ctx}/assess/")
        assert page.status_code == 200, page.text
        return page.text

    def assign(
        self, request_id: str, due: str = "", note: str = "", instrument: str = "ecr-r"
    ) -> Any:
        return self.client.post(
            f"/app/{self.ctx}/assign/{instrument}",
            data={"request_id": request_id, "due": due, "note": note, "csrf_token": self.csrf},
        )

    def withdraw(self, task_id: str, version: str) -> Any:
        return self.client.post(
            f"/app/{self.ctx}/assign/tasks/{task_id}/withdraw",
            data={"version": version, "csrf_token": self.csrf},
        )


@pytest.fixture
def transport() -> Iterator[Transport]:
    wrapped = Transport()
    yield wrapped
    wrapped.inner.close()


@pytest.fixture
def launch_as(
    fhir_server: FhirServerProcess, tmp_path: Path, transport: Transport
) -> Iterator[Callable[..., Clinician]]:
    """``launch_as(scope=SCOPE, kind="ehr", user=ROWAN)``: an app and a launch for the adult."""
    apps: list[Flask] = []

    def launch(scope: str = SCOPE, kind: str = "ehr", user: str = ROWAN) -> Clinician:
        launched = launched_app(
            fhir_server.base_url,
            tmp_path / f"app-{len(apps)}",
            transport,
            client_id="assign-app-test",
            kind=kind,
            patient=ADULT,
            user=user,
            scope=scope,
        )
        apps.append(launched.app)
        return Clinician(launched.app, launched.client, launched.ctx, launched.csrf)

    yield launch
    for app in apps:
        stop_app(app)


def fhir(server: FhirServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url.rstrip("/") + "/", timeout=30)


def article(page: str, instrument: str) -> str:
    start = page.index(f'id="instrument-{instrument}"')
    return page[start : page.index("</article>", start)]


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name}"
    return html.unescape(found.group(1))


def tasks_of(server: FhirServerProcess, request_id_value: str) -> list[dict[str, Any]]:
    """Every Task on the server carrying this assignment identifier value."""
    with fhir(server) as client:
        found = client.get("Task", params={"identifier": f"{ASSIGNMENT}|{request_id_value}"})
        assert found.status_code == 200, found.text
        return [e["resource"] for e in found.json().get("entry", [])]


def test_each_instrument_the_patient_answers_gets_the_form_and_it_writes_the_task(
    launch_as: Callable[..., Clinician], fhir_server: FhirServerProcess
) -> None:
    clinician = launch_as()
    page = clinician.choose()
    ecr_r = article(page, "ecr-r")
    assert f"<summary>{SUMMARY}</summary>" in ecr_r
    assert 'action="/app/' + clinician.ctx + '/assign/ecr-r"' in ecr_r
    assert SUMMARY not in article(page, "prfq")  # answered by a caregiver, does not fit the adult
    assert NO_GRANT not in page and NOT_DECLARED not in page

    request_id = field(ecr_r, "request_id")
    due = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    note = "Before Thursday <i>please</i>\n[link](javascript:alert(1))"
    posted = clinician.assign(request_id, due, note)
    assert posted.status_code == 303, posted.text
    task_id = re.search(r"assigned=([A-Za-z0-9\-.]+)", posted.headers["Location"]).group(1)  # type: ignore[union-attr]

    with fhir(fhir_server) as client:
        task = client.get(f"Task/{task_id}").json()
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["for"] == task["owner"] == {"reference": f"Patient/{ADULT}"}
    assert task["requester"] == {"reference": ROWAN}
    version = library().questionnaire(ECR_R)["version"]  # the packaged one, assigned now
    assert task["input"][0]["valueCanonical"] == f"{ECR_R}|{version}"
    assert task["restriction"] == {"period": {"end": due}}
    assert task["note"][0]["text"] == (
        "Before Thursday \\<i\\>please\\</i\\>\n\\[link\\](javascript:alert(1))"
    )

    shown = clinician.client.get(posted.headers["Location"])
    assert f'<p class="notice" id="assigned" role="status" data-task="{task_id}">' in shown.text
    row = re.search(rf'<li class="sent-open" data-task="{task_id}".*?</li>', shown.text, re.S)
    assert row, shown.text
    assert f'; due <span class="due">{due}</span>' in row.group(0)
    assert (
        '<span class="note">Before Thursday &lt;i&gt;please&lt;/i&gt;\n'
        "[link](javascript:alert(1))</span>"
    ) in row.group(0)
    assert "<i>please" not in shown.text
    assert f'name="version" value="{task["meta"]["versionId"]}"' in row.group(0)


@pytest.mark.parametrize("missing", ["grant", "capability"])
def test_without_task_create_there_is_no_form_but_one_sentence_why(
    launch_as: Callable[..., Clinician], transport: Transport, missing: str
) -> None:
    if missing == "grant":
        clinician = launch_as(SCOPE.replace("user/Task.crus", "user/Task.rus"))
        sentence = NO_GRANT
    else:
        clinician = launch_as()
        sentence = NOT_DECLARED

        def no_task_create(request: httpx.Request) -> httpx.Response | None:
            if not request.url.path.endswith("/metadata"):
                return None
            statement = json.loads(transport.inner.handle_request(request).read())
            for resource in statement["rest"][0]["resource"]:
                if resource["type"] == "Task":
                    resource["interaction"] = [
                        i for i in resource["interaction"] if i["code"] != "create"
                    ]
            return httpx.Response(200, json=statement)

        transport.before = no_task_create
    page = clinician.choose()
    assert SUMMARY not in page
    assert re.search(r'action="[^"]*/assign/[a-z-]+"', page) is None  # no request form
    start = page.index('id="server-notices"')
    notices = page[start : page.index("</section>", start)]
    assert notices.count(html.escape(sentence, quote=True)) == 1
    assert 'id="sent"' in page  # the patient's assignments are still listed

    posted = clinician.assign("0f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5")
    assert posted.status_code == 403
    assert transport.count("POST", "/Task") == 0


def test_a_patients_own_launch_sees_nothing_of_it(
    launch_as: Callable[..., Clinician], transport: Transport
) -> None:
    patient = launch_as(SCOPE.replace("user/", "patient/"), kind="patient", user=f"Patient/{ADULT}")
    refused = patient.client.get(f"/app/{patient.ctx}/assess/")  # the clinician's Choose page
    assert refused.status_code == 403 and 'id="for-care-team"' in refused.text
    page = refused.text
    assert SUMMARY not in page and 'id="sent"' not in page
    assert NO_GRANT not in page and NOT_DECLARED not in page
    assert patient.assign("0f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5").status_code == 403
    assert transport.count("POST", "/Task") == 0


def test_a_form_that_cannot_be_used_comes_back_with_its_values_and_nothing_is_sent(
    launch_as: Callable[..., Clinician], transport: Transport
) -> None:
    clinician = launch_as()
    request_id = field(article(clinician.choose(), "ecr-r"), "request_id")
    forged = clinician.client.post(
        f"/app/{clinician.ctx}/assign/ecr-r", data={"request_id": request_id}
    )  # no CSRF token: another site's form
    assert forged.status_code == 400 and "csrf_failed" in forged.text
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    posted = clinician.assign(request_id, yesterday, "n" * 501)
    assert posted.status_code == 422
    form = article(posted.text, "ecr-r")
    assert "<details open>" in form
    assert "The due date is in the past: choose today or a later day." in form
    assert "The note is 501 characters long: shorten it to 500 or fewer." in form
    assert field(form, "request_id") == request_id and field(form, "due") == yesterday
    assert ">" + "n" * 501 + "</textarea>" in form
    assert transport.count("POST", "/Task") == 0


def test_a_refusal_is_shown_inert_and_a_fault_keeps_the_form_until_it_is_sent_once(
    launch_as: Callable[..., Clinician], transport: Transport, fhir_server: FhirServerProcess
) -> None:
    clinician = launch_as()
    request_id = field(article(clinician.choose(), "ecr-r"), "request_id")
    due = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "business-rule", "diagnostics": "<script>x()</script>"}
        ],
    }
    faults: list[Callable[[], httpx.Response]] = [
        lambda: httpx.Response(422, json=outcome),
        lambda: httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []}),
    ]

    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith("/Task"):
            if not faults:
                raise httpx.ReadTimeout("no answer", request=request)
            return faults.pop(0)()
        return None

    transport.before = fault
    refused = clinician.assign(request_id, due, "See you soon")
    assert refused.status_code == 502
    form = article(refused.text, "ecr-r")
    assert "The EHR refused the request, so the patient was not asked." in form
    assert "error: &lt;script&gt;x()&lt;/script&gt;" in form
    assert "<script>x()" not in refused.text

    for _ in range(2):  # a 503, then no answer at all
        failed = clinician.assign(request_id, due, "See you soon")
        assert failed.status_code == 502
        form = article(failed.text, "ecr-r")
        assert 'id="assign-not-sent"' in form
        assert "Your due date and note are still here; try again." in form
        assert (field(form, "request_id"), field(form, "due")) == (request_id, due)
        assert ">See you soon</textarea>" in form

    transport.before = None
    for _ in range(2):  # sent, then the same form again (a retry after a lost answer)
        assert clinician.assign(request_id, due, "See you soon").status_code == 303
    (task,) = tasks_of(fhir_server, identifier_value(request_id))
    assert task["restriction"]["period"]["end"] == due


def test_withdraw_writes_only_over_the_version_seen_and_says_what_changed(
    launch_as: Callable[..., Clinician], transport: Transport, fhir_server: FhirServerProcess
) -> None:
    clinician = launch_as()
    request_id = field(article(clinician.choose(), "ecr-r"), "request_id")
    posted = clinician.assign(request_id, note="Please")
    task_id = re.search(r"assigned=([A-Za-z0-9\-.]+)", posted.headers["Location"]).group(1)  # type: ignore[union-attr]
    seen = field(_row(clinician.choose(), task_id), "version")

    def clinic_edit(change: dict[str, Any]) -> str:
        with fhir(fhir_server) as client:
            current = client.get(f"Task/{task_id}").json()
            changed = client.put(f"Task/{task_id}", json={**current, **change})
            assert changed.status_code == 200, changed.text
            version: str = changed.json()["meta"]["versionId"]
            return version

    # The clinic set a due date after the page was shown: nothing is written, the change said.
    due = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    theirs = clinic_edit({"restriction": {"period": {"end": due}}})
    stale = clinician.withdraw(task_id, seen)
    assert stale.status_code == 409
    said = stale.text[stale.text.index('id="withdraw-outcome"') :]
    assert "Not withdrawn: the request was changed in the EHR after this page was shown" in said
    assert f"<li>A due date was set: {due}.</li>" in said
    assert transport.count("PUT", f"/Task/{task_id}") == 0
    assert field(_row(stale.text, task_id), "version") == theirs  # offered again as it is now

    # The clinic edits between the app's read and its write: the 412 is reported, not retried.
    edits: list[str] = []

    def edit_first(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and not edits:
            edits.append(clinic_edit({"restriction": {"period": {"end": "2099-01-01"}}}))
        return None

    transport.before = edit_first
    raced = clinician.withdraw(task_id, theirs)
    transport.before = None
    assert raced.status_code == 409
    assert f"<li>Its due date changed from {due} to 2099-01-01.</li>" in raced.text
    with fhir(fhir_server) as client:
        kept = client.get(f"Task/{task_id}").json()
    assert (kept["status"], kept["meta"]["versionId"]) == ("requested", edits[0])

    done = clinician.withdraw(task_id, edits[0])
    assert done.status_code == 303
    page = clinician.client.get(done.headers["Location"]).text
    assert 'id="withdrawn"' in page and f'data-task="{task_id}"' not in page
    with fhir(fhir_server) as client:
        cancelled = client.get(f"Task/{task_id}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["statusReason"] == {"text": "Withdrawn by the clinician who asked for it."}
    assert cancelled["restriction"] == {"period": {"end": "2099-01-01"}}  # the clinic's kept

    again = clinician.withdraw(task_id, cancelled["meta"]["versionId"])
    assert again.status_code == 409
    assert "Not withdrawn: The EHR already shows this request as cancelled." in again.text


def _row(page: str, task_id: str) -> str:
    row = re.search(rf'<li class="sent-open" data-task="{task_id}".*?</li>', page, re.S)
    assert row, page
    return row.group(0)
