"""A server without transactions (``--no-transaction``): a resumed draft is completed in place.

The ordered path writes the completed QuestionnaireResponse as a conditional update on the
identifier its draft carries, then the Observations and the Provenance one by one: the server
ends with one QuestionnaireResponse (the draft's id, completed) and no draft left in progress,
also when the answer to that update was lost and the whole submission was sent again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from smart_app.records import delivery
from tests.e2e.test_assess_e2e import (
    QUICK_RETRIES,
    SCOPES,
    Clinician,
    Env,
    app_env,
    outbox_item,
    search,
)
from tests.fixtures.sandbox import SandboxFactory

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"  # the RQ is for adults (docs/instrument-fit.md)
QR = "QuestionnaireResponse"
RQ_CODES = (
    "rq-secure",
    "rq-fearful",
    "rq-preoccupied",
    "rq-dismissing",
    "rq-model-of-self",
    "rq-model-of-other",
)


@pytest.fixture(scope="module")
def ordered_env(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """A sandbox whose FHIR server declares (and enforces) no transaction, and an app."""
    sandbox = sandbox_factory(with_app=False, fhir_limits={"no_transaction": True})
    data_dir: Path = tmp_path_factory.mktemp("ordered-app")
    with app_env(sandbox, data_dir, "ordered-e2e", SCOPES, **QUICK_RETRIES) as found:
        yield found


def test_a_resumed_draft_is_completed_in_place_without_transactions(
    ordered_env: Env,
) -> None:
    first = Clinician(ordered_env)
    try:
        first.launch(ADULT)
        assert "takes no transactions" in first.get().text  # said before anyone starts
        _, csrf, sid = first.open_form("rq")
        saved = first.post("rq", {"q:secure": "6"}, "draft", sid, csrf)
        assert saved.status_code == 303, saved.text
        found = re.search(r"draft=([^&]+)", saved.headers["location"])
        assert found is not None
        draft_id = found.group(1)
    finally:
        first.close()

    later = Clinician(ordered_env)  # another browser, a new launch: resume the draft
    dropped: list[str] = []

    def drop_after_update(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == "PUT" and request.url.path.endswith(f"/{QR}") and not dropped:
            dropped.append(str(response.status_code))  # the server has updated the draft
            raise httpx.RemoteProtocolError("connection dropped", request=request)
        return response

    try:
        later.launch(ADULT)
        _, csrf2, sid2 = later.open_form("rq", f"?draft={draft_id}")
        assert sid2 == sid
        answers = {"q:secure": "6", "q:fearful": "2", "q:preoccupied": "3", "q:dismissing": "5"}
        ordered_env.transport.clear()
        ordered_env.transport.tamper = drop_after_update
        try:
            done = later.post("rq", answers, "submit", sid2, csrf2)
        finally:
            ordered_env.transport.tamper = None
        assert done.status_code == 303, done.text
        assert dropped == ["200"]  # an update of the one match answers 200, not 201
        assert outbox_item(ordered_env, sid).status == "queued"
        time.sleep(0.6)  # past the (test-sized) backoff
        with ordered_env.server.app.app_context():
            delivery.outbox_services(ordered_env.server.app).outbox.drain()
        item = outbox_item(ordered_env, sid)
        assert item.status == "delivered", item.last_error
        posts_to_base = [
            u
            for m, u in ordered_env.transport.requests
            if m == "POST" and u.rstrip("/") == ordered_env.fhir_base
        ]
        assert posts_to_base == []  # no transaction was tried
        assert item.receipt[f"urn:uuid:{identifier_value(sid, QR)}"] == f"{QR}/{draft_id}"

        with later.fhir() as client:
            value = identifier_value(sid, QR)
            responses = search(client, QR, identifier=f"{SUBMISSION_SYSTEM}|{value}")
            assert [r["id"] for r in responses] == [draft_id]
            assert responses[0]["status"] == "completed"
            assert search(client, QR, subject=f"Patient/{ADULT}", status="in-progress") == []
            observations = search(client, "Observation", **{"derived-from": f"{QR}/{draft_id}"})
            values = {
                o["code"]["coding"][0]["code"]: o["valueQuantity"]["value"] for o in observations
            }
            # By hand from the RQ key: prototypes are the ratings; self = (6 + 5) - (2 + 3) = 6;
            # other = (6 + 3) - (2 + 5) = 2. One each, despite the retry.
            assert values == dict(zip(RQ_CODES, (6, 2, 3, 5, 6, 2), strict=True))
            assert len(observations) == 6
            tag = f"{SUBMISSION_SYSTEM}|{identifier_value(sid, 'Provenance')}"
            assert len(search(client, "Provenance", _tag=tag)) == 1
    finally:
        later.close()
