"""An EHR launch's ``fhirContext``: what the app keeps of it, and the Task it offers on landing.

The entries kept are checked against SMART App Launch 2.x by hand: an object with a relative
``reference`` ``Type/id`` (``canonical`` and ``identifier`` are legal but give the app nothing
to read by), an optional ``type`` that must agree, an optional ``role`` (a URI; absent means
``launch``), no Patient or Encounter in the launch role. The callback test uses the small real
HTTP server of tests/app/test_launch.py as the token endpoint; the landing tests use the
session's open sandbox FHIR server with a clinician's EHR launch put straight into the store
(tests/fixtures/launched_app.py). tests/e2e/test_ehr_task_launch_e2e.py walks it end to end.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import stop as stop_app
from smart_app.launch.authorization import fhir_context
from smart_app.web.context import LaunchContext
from smart_app.web.scopes import default_scopes
from tests.app.test_launch import StubServer, authorize_query, launch, make_app
from tests.app.test_task_updates import Recording
from tests.fixtures.launched_app import LaunchedApp, launched_app

ADULT = "sandbox-adult-29"
OTHER = "sandbox-parent-41"
ROWAN = "sandbox-practitioner-rowan"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
ECR_R_TITLE = "Experiences in Close Relationships - Revised (ECR-R)"  # questionnaires/ecr-r.json
EHR_SCOPES = " ".join([*default_scopes("ehr"), "patient/Task.ru"])


# -- what is kept of fhirContext ------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ("Task/t1", "not_an_object"),
        (
            {"canonical": "http://example.org/Questionnaire/q", "type": "Questionnaire"},
            "no_reference",
        ),
        ({"identifier": {"system": "urn:x", "value": "1"}, "type": "Task"}, "no_reference"),
        ({"reference": "https://ehr.example.org/fhir/Task/t1"}, "bad_reference"),
        ({"reference": "Task/t1/_history/2"}, "bad_reference"),
        ({"reference": "#contained-1"}, "bad_reference"),
        ({"reference": "task/t1"}, "bad_reference"),
        ({"reference": "Task/"}, "bad_reference"),
        ({"reference": "Task/" + "a" * 65}, "bad_reference"),
        ({"reference": "Task/t 1"}, "bad_reference"),
        ({"reference": "Task/.."}, "bad_reference"),  # read as the FHIR base itself
        ({"reference": "Task/."}, "bad_reference"),  # read as a search of every Task
        ({"reference": 12}, "bad_reference"),
        ({"reference": "Task/t1", "type": "Appointment"}, "type_mismatch"),
        ({"reference": "Task/t1", "role": 7}, "bad_role"),
        ({"reference": "Task/t1", "role": ""}, "bad_role"),
        ({"reference": "Task/t1", "role": "two words"}, "bad_role"),
        ({"reference": "Task/t1", "role": "https://x.example/" + "r" * 190}, "bad_role"),
        ({"reference": "Patient/p1"}, "patient_or_encounter"),
        ({"reference": "Encounter/e1", "role": "launch"}, "patient_or_encounter"),
    ],
)
def test_a_malformed_entry_is_dropped_and_logged_by_its_code_only(
    entry: Any, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smart_app.launch.authorization"):
        kept = fhir_context([entry, {"reference": "Appointment/a1"}])
    assert kept == [{"reference": "Appointment/a1"}]
    assert caplog.messages == [f"launch.fhir_context kept=1 dropped={code}:1"]


def test_well_formed_entries_keep_reference_and_role_only_once_each() -> None:
    other_parent = "https://example.org/fhir-context-role/other-parent"
    value = [
        {"reference": "Task/t1", "type": "Task", "display": "Fill in the ECR-R"},
        {"reference": "Task/t1"},  # the same entry again
        {"reference": "Task/t2", "role": "launch"},
        {"reference": "Patient/p2", "role": other_parent},  # a Patient in another role: allowed
        {"reference": "Task/t3", "role": other_parent},
    ]
    assert fhir_context(value) == [
        {"reference": "Task/t1"},
        {"reference": "Task/t2", "role": "launch"},
        {"reference": "Patient/p2", "role": other_parent},
        {"reference": "Task/t3", "role": other_parent},
    ]


def test_at_most_twenty_entries_are_looked_at(caplog: pytest.LogCaptureFixture) -> None:
    value = [{"reference": f"Task/t{n}"} for n in range(25)]
    with caplog.at_level(logging.INFO, logger="smart_app.launch.authorization"):
        kept = fhir_context(value)
    assert kept == [{"reference": f"Task/t{n}"} for n in range(20)]
    assert caplog.messages == ["launch.fhir_context kept=20 dropped=over_limit:5"]


@pytest.mark.parametrize("value", [{"reference": "Task/t1"}, "Task/t1", None, 3])
def test_a_fhir_context_that_is_not_a_list_keeps_nothing(
    value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smart_app.launch.authorization"):
        assert fhir_context(value) == []
    assert caplog.messages == ["launch.fhir_context kept=0 dropped=not_a_list:1"]


def test_the_log_never_carries_a_value(caplog: pytest.LogCaptureFixture) -> None:
    value = [
        {"reference": "Task/secret-id-1"},
        {"reference": "Task/secret id 2"},
        {"reference": "Task/secret-id-3", "role": "secret role"},
        "secret-string",
    ]
    with caplog.at_level(logging.INFO, logger="smart_app.launch.authorization"):
        fhir_context(value)
    assert caplog.messages == [
        "launch.fhir_context kept=1 dropped=bad_reference:1,bad_role:1,not_an_object:1"
    ]


def test_context_references_by_type_and_role() -> None:
    record = {
        "fhir_context": [
            {"reference": "Task/t1"},
            {"reference": "Appointment/a1"},
            {"reference": "Task/t2", "role": "launch"},
            {"reference": "Task/t3", "role": "https://example.org/role/source"},
        ]
    }
    launch_ = LaunchContext(id="c", record=record, services=None)  # type: ignore[arg-type]
    assert launch_.context_references("Task") == ["Task/t1", "Task/t2"]
    assert launch_.context_references("Task", role="https://example.org/role/source") == ["Task/t3"]
    assert launch_.context_references("Appointment") == ["Appointment/a1"]
    assert LaunchContext(id="c", record={}, services=None).context_references("Task") == []  # type: ignore[arg-type]


def test_ehr_and_clinician_defaults_ask_for_no_task_scope() -> None:
    """Least privilege: a registration whose EHR launches from Tasks adds the Task scope."""
    for kind in ("ehr", "clinician"):
        assert [s for s in default_scopes(kind) if "/Task." in s] == []


# -- the callback keeps it in the launch record ---------------------------------------------


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.thread.stop()


def test_the_callback_keeps_the_checked_fhir_context(stub: StubServer, tmp_path: Path) -> None:
    stub.routes.clear()
    stub.smart_configuration()
    stub.routes["/auth/token"] = (
        200,
        {
            "access_token": "at",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "launch patient/Patient.r patient/Task.ru",
            "patient": "p1",
            "fhirContext": [
                {"reference": "Task/t1"},
                {"reference": "https://elsewhere.example/Task/t2"},
                {"canonical": "http://example.org/Questionnaire/q"},
            ],
        },
    )
    app = make_app(stub, tmp_path)
    client = app.test_client()
    query = authorize_query(launch(client, f"{stub.base}/fhir"))
    done = client.get(
        "/callback", query_string={"code": "c", "state": query["state"], "iss": f"{stub.base}/auth"}
    )
    assert done.status_code == 303, done.get_data(as_text=True)
    ctx = done.headers["Location"].split("/")[2]
    record = app.extensions["attach_fhir"].store.get("launch", ctx)
    assert record["patient"] == "p1"
    assert record["fhir_context"] == [{"reference": "Task/t1"}]


# -- the landing page offers the Task -------------------------------------------------------


def make_task(fhir: str, patient: str = ADULT, status: str = "requested", **changes: Any) -> str:
    """An SDC-style Task on the open server asking ``patient`` to fill in the ECR-R; its id."""
    task = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "description": "Please fill in the ECR-R",
        "for": {"reference": f"Patient/{patient}"},
        "authoredOn": dt.date.today().isoformat(),
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": f"{ECR_R}|1.0.0"}],
        **changes,
    }
    with httpx.Client(base_url=fhir.rstrip("/") + "/", timeout=30) as client:
        made = client.post("Task", json=task)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


class Landing:
    """A clinician's EHR launch for the adult; ``show(context)`` is its landing page with that
    ``fhirContext`` kept in the launch record."""

    def __init__(self, launched: LaunchedApp, transport: Recording) -> None:
        self.launched, self.transport = launched, transport

    def show(self, context: list[dict[str, str]]) -> str:
        app, ctx = self.launched.app, self.launched.ctx
        store = app.extensions["attach_fhir"].store
        store.put("launch", ctx, {**store.get("launch", ctx), "fhir_context": context}, 3600)
        self.transport.sent.clear()
        page = self.launched.client.get(f"/app/{ctx}/")
        assert page.status_code == 200, page.text
        return page.text


@pytest.fixture
def landing(fhir_server: FhirServerProcess, tmp_path: Path) -> Iterator[Callable[..., Landing]]:
    apps: list[LaunchedApp] = []
    transport = Recording()

    def make(scope: str = EHR_SCOPES) -> Landing:
        launched = launched_app(
            fhir_server.base_url,
            tmp_path / f"app-{len(apps)}",
            transport,
            client_id="ehr-task-test",
            kind="ehr",
            patient=ADULT,
            user=f"Practitioner/{ROWAN}",
            scope=scope,
        )
        apps.append(launched)
        return Landing(launched, transport)

    yield make
    for launched in apps:
        stop_app(launched.app)
    transport.inner.close()


def offers(page: str) -> list[tuple[str, str, str]]:
    """(task id, title text, Start href) of each assignment the landing page offers."""
    return [
        (m.group(1), m.group(2), m.group(3).replace("&amp;", "&"))
        for m in re.finditer(
            r'<p class="ehr-assignment" data-task="([^"]+)">\s*'
            r'<span class="ehr-assignment-title">([^<]*)</span>\s*<a class="button" href="([^"]+)"',
            page,
        )
    ]


def notes(page: str) -> list[str]:
    return re.findall(r"<p class=\"notice\" data-task-note>([^<]*)</p>", page)


@pytest.mark.e2e
def test_an_open_task_for_this_patient_is_offered_and_its_start_binds_it(
    landing: Callable[..., Landing], fhir_server: FhirServerProcess
) -> None:
    task_id = make_task(fhir_server.base_url, description="<script>alert('x')</script>")
    clinician = landing()
    page = clinician.show([{"reference": f"Task/{task_id}"}])
    ctx = clinician.launched.ctx
    start = f"/app/{ctx}/assess/ecr-r/?task={task_id}"
    assert offers(page) == [(task_id, f"Assigned in your EHR: {ECR_R_TITLE}", start)]
    assert notes(page) == []
    assert "alert(" not in page  # the Task's own text is never shown
    assert ("GET", f"/fhir/Task/{task_id}") in clinician.transport.sent

    form = clinician.launched.client.get(start)
    assert form.status_code == 200, form.text
    sid = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert sid
    bound = clinician.launched.app.extensions["attach_fhir"].store.get("assess-task", sid.group(1))
    assert (bound["task"], bound["questionnaire"]) == (f"Task/{task_id}", ECR_R)


@pytest.mark.e2e
def test_a_task_not_to_offer_is_said_in_one_plain_sentence(
    landing: Callable[..., Landing], fhir_server: FhirServerProcess
) -> None:
    base = fhir_server.base_url
    rq_only = [
        {
            "type": {"text": "questionnaire"},
            "valueCanonical": "http://example.org/Questionnaire/phq-9",
        }
    ]
    cases = {
        make_task(
            base, patient=OTHER
        ): "The task the EHR opened the app for is not this patient's.",
        make_task(base, status="cancelled"): (
            "The task the EHR opened the app for is already closed in the EHR."
        ),
        make_task(base, input=rq_only): (
            "The task the EHR opened the app for asks for no questionnaire this app offers."
        ),
        "no-such-task": "The task the EHR opened the app for could not be read from the EHR.",
    }
    clinician = landing()
    for task_id, sentence in cases.items():
        page = clinician.show([{"reference": f"Task/{task_id}"}])
        assert offers(page) == [], task_id
        assert notes(page) == [sentence.replace("'", "&#39;")], task_id
        assert f"task={task_id}" not in page


@pytest.mark.e2e
def test_without_task_read_in_the_grant_the_task_is_not_read(
    landing: Callable[..., Landing], fhir_server: FhirServerProcess
) -> None:
    task_id = make_task(fhir_server.base_url)
    clinician = landing(" ".join(default_scopes("ehr")))
    page = clinician.show([{"reference": f"Task/{task_id}"}])
    assert offers(page) == []
    assert notes(page) == [
        "The EHR opened the app for a task, but has not allowed the app to read tasks."
    ]
    assert not [p for _, p in clinician.transport.sent if "/Task" in p]


@pytest.mark.e2e
def test_no_task_in_context_no_assignment_section(
    landing: Callable[..., Landing], fhir_server: FhirServerProcess
) -> None:
    task_id = make_task(fhir_server.base_url)
    clinician = landing()
    for context in ([], [{"reference": f"Task/{task_id}", "role": "https://example.org/r/x"}]):
        page = clinician.show(context)
        assert 'id="ehr-assignments"' not in page
        assert not [p for _, p in clinician.transport.sent if "/Task" in p]


@pytest.mark.e2e
def test_a_task_whose_status_is_no_string_is_said_closed_not_a_500(
    landing: Callable[..., Landing], fhir_server: FhirServerProcess
) -> None:
    task_id = make_task(fhir_server.base_url)
    clinician = landing()
    with httpx.Client(base_url=fhir_server.base_url.rstrip("/") + "/", timeout=30) as fhir:
        malformed = {**fhir.get(f"Task/{task_id}").json(), "status": {"code": "requested"}}

    def answer_malformed(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith(f"/Task/{task_id}"):
            return httpx.Response(200, json=malformed)  # a real server refuses to store it
        return None

    clinician.transport.refuse = answer_malformed
    page = clinician.show([{"reference": f"Task/{task_id}"}])
    clinician.transport.refuse = None
    assert offers(page) == []
    assert notes(page) == ["The task the EHR opened the app for is already closed in the EHR."]
