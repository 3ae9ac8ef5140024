"""Logs carry events, never secrets or PHI: a real launch, a submission and the review, with
every logger of the process (app, library, sandbox, httpx) recording at DEBUG, and none of the
launch's tokens, the patient's name or birth date, or a bearer header in any record; the JSON
lines production writes carry the request and launch ids instead."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from smart_app.web.request_ids import JsonLines, RequestContext
from tests.e2e.test_assess_e2e import (
    ADULT,
    PER_INSTRUMENT,
    Clinician,
    clinician,  # noqa: F401  (fixture)
    env,  # noqa: F401  (fixture)
    fields,
    outbox_item,
    submit,
)
from tests.fixtures.seed import seeded_patient

pytestmark = pytest.mark.e2e


def test_a_launch_submit_and_review_log_no_token_name_or_birth_date(
    clinician: Clinician,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    lines = io.StringIO()  # what production writes (smart_app.wsgi): JSON, with the ids
    production = logging.StreamHandler(lines)
    production.addFilter(RequestContext())
    production.setFormatter(JsonLines())
    logging.getLogger().addHandler(production)
    try:
        run_the_flow(clinician)
    finally:
        logging.getLogger().removeHandler(production)
    check_the_logs(clinician, [r.getMessage() for r in caplog.records])
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    check_the_logs(clinician, [json.dumps(record) for record in records])
    in_requests = [r for r in records if r["request_id"] is not None]
    assert in_requests and all(re.fullmatch(r"[0-9a-f]{32}", r["request_id"]) for r in in_requests)
    assert any(r["launch_id"] == clinician.ctx for r in in_requests)  # ties events to the launch


def run_the_flow(clinician: Clinician) -> None:  # noqa: F811
    clinician.launch(ADULT)
    sid, page = submit(clinician, "ecr-r", fields(PER_INSTRUMENT["ecr-r"]))
    assert page.status_code in (200, 303), page.text
    item = outbox_item(clinician.env, sid)
    assert item.status == "delivered", item.last_error
    review = clinician.browser.request(
        "GET", f"{clinician.env.server.url}/app/{clinician.ctx}/review/"
    )
    assert review.status_code == 200


def check_the_logs(clinician: Clinician, logged: list[str]) -> None:  # noqa: F811
    app = clinician.env.server.app
    with app.app_context():
        record = app.extensions["attach_fhir"].store.get("launch", clinician.ctx)
    assert record is not None
    token = record["token"]
    secrets = {
        k: str(token[k]) for k in ("access_token", "refresh_token", "id_token") if token.get(k)
    }
    assert "access_token" in secrets and "refresh_token" in secrets  # the launch did get them
    patient = seeded_patient(ADULT)
    name = patient["name"][0]
    phi = {
        "family name": name["family"],
        "given name": name["given"][0],
        "birth date": patient["birthDate"],
    }

    assert len(logged) > 5  # the flow did log its events
    for what, value in {**secrets, **phi}.items():
        leaks = [line for line in logged if value in line]
        assert leaks == [], f"{what} appears in the log"
    # A bearer credential (not a WWW-Authenticate challenge such as 'Bearer error="..."').
    assert not [line for line in logged if re.search(r"Bearer [A-Za-z0-9._~+/-]{20,}", line)]
