"""The audit trail end to end: a real EHR launch, the ECR-R form and its submission against the
sandbox, a refused ``iss`` and a denied authorization, each recorded as BALP AuditEvents in the
app's store; the export command's NDJSON; and no token, name or answer anywhere in the store.

The app's read cache is off here, so each FHIR interaction the app records is one request on
the wire (the recording transport sees it): the count is checked against those requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from attach_fhir.fhir_models import AuditEvent
from ehr_sandbox.authz.config import Knobs
from smart_app.records.delivery import outbox_services
from tests.e2e.test_assess_e2e import (
    ADULT,
    PER_INSTRUMENT,
    ROWAN,
    SCOPES,
    Clinician,
    Env,
    app_env,
    fields,
    outbox_item,
    submit,
)
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.seed import seeded_patient
from tests.fixtures.smart_app_server import Browser, ehr_launch_url

pytestmark = pytest.mark.e2e

#: The trail's injected clock: a fixed instant, not today's date.
NOW = dt.datetime(2031, 5, 17, 8, 30, tzinfo=dt.UTC).timestamp()
RECORDED = "2031-05-17T08:30:00.000+00:00"


@pytest.fixture(scope="module")
def env(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("audit-app")
    config = {"READ_CACHE_SECONDS": 0, "AUDIT_CLOCK": lambda: NOW}
    with app_env(sandbox, data_dir, "audit-e2e", SCOPES, **config) as found:
        yield found


@pytest.fixture
def clinician(env: Env) -> Iterator[Clinician]:
    c = Clinician(env)
    yield c
    c.close()


def store(env: Env) -> Any:
    return env.server.app.extensions["attach_audit"].store


def recorded(env: Env) -> list[dict[str, Any]]:
    return list(store(env).since(0.0))


def app_data(env: Env) -> Path:
    return Path(env.server.app.config["DATA_DIR"])


def subtypes(event: dict[str, Any]) -> list[str]:
    return [c["code"] for c in event.get("subtype", [])]


def entity(event: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((e for e in event.get("entity", []) if e.get("role", {}).get("code") == role), None)


def on_the_wire(env: Env, start: int) -> list[tuple[str, str]]:
    """(method, path under the FHIR base) of each FHIR request sent since ``start``."""
    base = env.fhir_base.rstrip("/")
    out = []
    for method, url in env.transport.requests[start:]:
        plain = url.split("?")[0]
        if plain == base or plain.startswith(base + "/"):
            path = plain[len(base) :].lstrip("/")
            if not path.startswith(".well-known"):
                out.append((method, path))
    return out


def test_a_launch_the_form_and_a_submission_record_each_fhir_request_and_the_launch(
    env: Env, clinician: Clinician
) -> None:
    before, sent_before = len(recorded(env)), len(env.transport.requests)
    clinician.launch(ADULT)
    sid, page = submit(clinician, "ecr-r", fields(PER_INSTRUMENT["ecr-r"]))
    assert page.status_code in (200, 303), page.text
    assert outbox_item(env, sid).status == "delivered"

    events = recorded(env)[before:]
    for event in events:
        AuditEvent.model_validate(event)
    launches = [e for e in events if "launch" in subtypes(e)]
    rest = [e for e in events if e["type"]["code"] == "rest"]
    assert len(launches) == 1
    assert len(events) == len(rest) + 1  # nothing else happened: no refresh, no failure

    # One record per FHIR request the flow sent, interaction by interaction.
    wire = on_the_wire(env, sent_before)
    assert len(rest) == len(wire)
    by_hand: Counter[tuple[str, str | None]] = Counter()
    for method, path in wire:
        parts = path.split("/")
        if method == "POST" and path == "":
            by_hand["transaction", "Bundle"] += 1
        elif method == "GET" and path == "metadata":
            by_hand["capabilities", None] += 1
        elif method == "GET" and len(parts) == 2:
            by_hand["read", path] += 1
        elif method == "GET" and len(parts) == 1:
            by_hand["search-type", parts[0]] += 1
        else:
            by_hand[method, path] += 1  # a kind this test does not expect: fails below
    seen: Counter[tuple[str, str | None]] = Counter()
    for event in rest:
        (code,) = subtypes(event)
        data = entity(event, "4") or entity(event, "24") or {"what": {}}
        seen[code, data["what"].get("reference") or data["what"].get("type")] += 1
    assert seen == by_hand
    assert by_hand["transaction", "Bundle"] == 1  # the submission, delivered at once
    assert by_hand["read", f"Patient/{ADULT}"] >= 1  # the banner

    # Who, which patient, when, and a request id of its own for each request.
    user = f"{env.fhir_base.rstrip('/')}/{ROWAN}"
    for event in [*launches, *rest]:
        assert event["recorded"] == RECORDED
        data = entity(event, "4")
        # SCOPES grant no Practitioner read: the landing page's read of the user is refused.
        refused = data is not None and data["what"] == {"reference": ROWAN}
        assert event["outcome"] == ("4" if refused else "0")
        assert event["agent"][0]["who"] == {"reference": user}
        assert event["agent"][1]["who"]["identifier"]["value"] == "audit-e2e"
        patient = entity(event, "1")
        assert patient is not None and patient["what"] == {"reference": f"Patient/{ADULT}"}
    request_ids = [
        e["what"]["identifier"]["value"]
        for event in rest
        for e in event["entity"]
        if e["type"]["code"] == "XrequestId"
    ]
    assert len(request_ids) == len(rest) == len(set(request_ids))
    transaction = next(e for e in rest if subtypes(e) == ["transaction"])
    assert transaction["action"] == "E"


def test_a_refused_iss_is_recorded_before_any_request(env: Env) -> None:
    before, sent = len(recorded(env)), len(env.transport.requests)
    browser = Browser()
    try:
        page = browser.request(
            "GET", f"{env.server.url}/launch?iss=https://ehr.invalid/fhir&launch=abc"
        )
    finally:
        browser.close()
    assert page.status_code == 403
    assert len(env.transport.requests) == sent
    (event,) = recorded(env)[before:]
    AuditEvent.model_validate(event)
    assert event["type"]["code"] == "110113"
    assert subtypes(event) == ["iss-refused"]
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "unknown_issuer")
    assert "ehr.invalid" not in json.dumps(event)


def test_a_denied_authorization_is_recorded(env: Env) -> None:
    before = len(recorded(env))
    browser = Browser()
    try:
        url = ehr_launch_url(env.sandbox, env.server.client_id, ADULT)
        stopped = browser.go(url, stop_at=f"{env.server.url}/callback")
        callback = httpx.URL(stopped.headers["location"])
        denied = callback.copy_with(
            params={
                "error": "access_denied",
                "state": callback.params["state"],
                "iss": callback.params.get("iss", ""),
            }
        )
        page = browser.request("GET", str(denied))
    finally:
        browser.close()
    assert page.status_code == 403 or page.status_code == 400, page.text
    events = recorded(env)[before:]
    (event,) = [e for e in events if "authorize-failed" in subtypes(e)]
    AuditEvent.model_validate(event)
    assert subtypes(event) == ["ITI-71", "authorize-failed"]
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "authorization_denied")
    assert event["agent"][-1]["network"]["address"] == env.fhir_base
    assert [e for e in events if "launch" in subtypes(e)] == []


def test_the_export_writes_every_record_since_the_date_as_auditevents(
    env: Env, clinician: Clinician
) -> None:
    clinician.launch(ADULT)
    assert clinician.get().status_code == 200
    total = store(env).count()
    command = [sys.executable, "-m", "attach_fhir.cli", "audit", "export"]
    environment = {**os.environ, "ATTACH_DATA_DIR": str(app_data(env))}
    environment.pop("ATTACH_AUDIT_STORE", None)
    done = subprocess.run(
        [*command, "--since", "2031-05-17"], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == total
    for line in lines:
        assert AuditEvent.model_validate(json.loads(line)).recorded == dt.datetime(
            2031, 5, 17, 8, 30, tzinfo=dt.UTC
        )
    later = subprocess.run(
        [*command, "--since", "2031-05-17T08:30:00.001Z"],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert later.returncode == 0 and later.stdout == ""


def test_the_store_holds_no_token_name_birth_date_or_answer(env: Env, clinician: Clinician) -> None:
    clinician.launch(ADULT)
    sid, _ = submit(clinician, "ecr-r", fields(PER_INSTRUMENT["ecr-r"]))
    assert outbox_item(env, sid).status == "delivered"
    app = env.server.app
    with app.app_context():
        launch = app.extensions["attach_fhir"].store.get("launch", clinician.ctx)
    token = launch["token"]
    patient = seeded_patient(ADULT)
    name = patient["name"][0]
    forbidden = {
        "access token": token["access_token"],
        "refresh token": token["refresh_token"],
        "family name": name["family"],
        "given name": name["given"][0],
        "birth date": patient["birthDate"],
        "an answer's field": "q:",
        "an answer": '"answer"',
        "a response item": '"linkId"',
    }
    files = sorted(app_data(env).glob("audit.sqlite3*"))
    assert files  # the database and its WAL
    raw = b"".join(path.read_bytes() for path in files)
    decoded = "\n".join(
        base64.b64decode(e["query"]).decode()
        for event in recorded(env)
        for e in event.get("entity", [])
        if "query" in e
    )
    for label, value in forbidden.items():
        assert value.encode() not in raw, label
        assert value not in decoded, label
    assert urlsplit(env.fhir_base).hostname  # the store does name the server, by URL


@pytest.fixture(scope="module")
def to_ehr(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A second app on the same sandbox sending copies to the EHR, granted AuditEvent.cr."""
    data_dir: Path = tmp_path_factory.mktemp("audit-to-ehr")
    scopes = SCOPES + " user/AuditEvent.crs"
    config = {"READ_CACHE_SECONDS": 0, "AUDIT_CLOCK": lambda: NOW, "AUDIT_TO_EHR": True}
    with app_env(env.sandbox, data_dir, "audit-e2e-to-ehr", scopes, **config) as found:
        yield found


def test_copies_wait_in_the_outbox_and_reach_the_ehr_with_the_launchs_token(
    to_ehr: Env,
) -> None:
    clinician = Clinician(to_ehr)
    try:
        clinician.launch(ADULT)
        assert clinician.get().status_code == 200  # the Choose page
        app = to_ehr.server.app
        outbox = outbox_services(app).outbox
        counts = outbox.store.counts()
        assert counts["delivered"] == 0 and counts["queued"] >= 1  # queued, not sent yet
        ours = [e for e in recorded(to_ehr) if e["type"]["code"] == "rest"]
        request_ids = {
            e["what"]["identifier"]["value"]
            for event in ours
            for e in event["entity"]
            if e["type"]["code"] == "XrequestId"
        }
        with app.app_context():
            report = outbox.drain()
        assert report.failed == [] and report.retrying == []
        with clinician.fhir() as client:
            response = client.get("AuditEvent", params={"_count": "200"})
            assert response.status_code == 200, response.text
            copies = [e["resource"] for e in response.json().get("entry") or []]
        copied_ids = {
            e["what"]["identifier"]["value"]
            for copy in copies
            for e in copy.get("entity", [])
            if e.get("type", {}).get("code") == "XrequestId"
        }
        assert request_ids and request_ids <= copied_ids
        # Delivering the copies was not audited (it would copy itself for ever).
        assert [e for e in recorded(to_ehr) if e["type"]["code"] == "rest"] == ours
    finally:
        clinician.close()


@pytest.fixture
def knobs(env: Env) -> Iterator[Knobs]:
    found = env.sandbox.state.config.knobs
    yield found
    found.update(vars(Knobs()))


def test_a_token_refresh_is_recorded_with_the_launchs_user_and_patient(
    env: Env, clinician: Clinician, knobs: Knobs
) -> None:
    knobs.access_token_lifetime = 2  # expired by the next page: the app refreshes first
    clinician.launch(ADULT)
    before = len(recorded(env))
    time.sleep(2.5)
    assert clinician.get().status_code == 200
    refreshes = [e for e in recorded(env)[before:] if "token-refresh" in subtypes(e)]
    assert len(refreshes) == 1
    (event,) = refreshes
    AuditEvent.model_validate(event)
    assert subtypes(event) == ["ITI-71", "token-refresh"]
    assert event["outcome"] == "0"
    assert event["agent"][0]["who"] == {"reference": f"{env.fhir_base.rstrip('/')}/{ROWAN}"}
    patient = entity(event, "1")
    assert patient is not None and patient["what"] == {"reference": f"Patient/{ADULT}"}


def ehr_copies(clinician: Clinician, subtype: str) -> list[dict[str, Any]]:
    """The EHR's AuditEvents (copies) whose app subtype is ``subtype``."""
    with clinician.fhir() as client:
        response = client.get("AuditEvent", params={"_count": "500"})
        assert response.status_code == 200, response.text
        found = [e["resource"] for e in response.json().get("entry") or []]
    return [e for e in found if subtypes(e)[-1:] == [subtype]]


def without_server_fields(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("id", "meta")}


def test_launch_events_reach_the_ehr_and_a_refused_iss_stays_local(to_ehr: Env) -> None:
    app = to_ehr.server.app
    outbox = outbox_services(app).outbox
    clinician = Clinician(to_ehr)
    try:
        clinician.launch(ADULT)  # a first launch, to read the EHR's AuditEvents with
        with app.app_context():
            outbox.drain()
        before = {k: len(ehr_copies(clinician, k)) for k in ("launch", "authorize-failed")}
        start = len(recorded(to_ehr))

        # The same browser: an iss the app does not know, a denied sign-in, then a launch.
        refused = clinician.browser.request(
            "GET", f"{to_ehr.server.url}/launch?iss=https://ehr.invalid/fhir&launch=x"
        )
        assert refused.status_code == 403
        url = ehr_launch_url(to_ehr.sandbox, to_ehr.server.client_id, ADULT)
        stopped = clinician.browser.go(url, stop_at=f"{to_ehr.server.url}/callback")
        callback = httpx.URL(stopped.headers["location"])
        denied = callback.copy_with(
            params={"error": "access_denied", "state": callback.params["state"]}
            | ({"iss": callback.params["iss"]} if "iss" in callback.params else {})
        )
        assert clinician.browser.request("GET", str(denied)).status_code in (400, 403)
        with app.app_context():
            assert outbox.store.counts()["queued"] == 0  # held: no launch token to send it with
        clinician.launch(ADULT)
        local = recorded(to_ehr)[start:]
        kinds = [subtypes(e)[-1] for e in local if e["type"]["code"] != "rest"]
        assert kinds == ["iss-refused", "authorize-failed", "launch"]
        with app.app_context():
            assert outbox.store.counts()["queued"] >= 1  # queued by the launch's request
            report = outbox.drain()
        assert report.failed == [] and report.retrying == []

        for kind in ("launch", "authorize-failed"):
            copies = ehr_copies(clinician, kind)
            assert len(copies) == before[kind] + 1, kind
            (mine,) = [e for e in local if subtypes(e)[-1] == kind]
            assert without_server_fields(copies[-1]) == mine
        # Sent nowhere: the refused server is not the EHR's to hear of, nor is this EHR.
        assert ehr_copies(clinician, "iss-refused") == []
    finally:
        clinician.close()


def test_a_token_refresh_reaches_the_ehr_with_the_refreshed_token(
    to_ehr: Env, knobs: Knobs
) -> None:
    app = to_ehr.server.app
    outbox = outbox_services(app).outbox
    clinician = Clinician(to_ehr)
    try:
        clinician.launch(ADULT)
        with app.app_context():
            outbox.drain()
        before = len(ehr_copies(clinician, "token-refresh"))
        knobs.access_token_lifetime = 2  # expired by the next page: the app refreshes first
        clinician.launch(ADULT)
        start = len(recorded(to_ehr))
        time.sleep(2.5)
        assert clinician.get().status_code == 200
        (mine,) = [e for e in recorded(to_ehr)[start:] if "token-refresh" in subtypes(e)]
        with app.app_context():
            report = outbox.drain()
        assert report.failed == [] and report.retrying == []
        copies = ehr_copies(clinician, "token-refresh")
        assert len(copies) == before + 1
        assert without_server_fields(copies[-1]) == mine
    finally:
        clinician.close()
