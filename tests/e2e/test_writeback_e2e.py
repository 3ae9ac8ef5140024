"""Write-back against the real sandbox FHIR server over HTTP: every instrument end to end and
read back with its references, retries that write nothing twice (also after a connection dropped
once the server had committed), a server that is down for the submit, an outbox drained by a new
process, and the ordered conditional creates used where a server has no transaction."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Outbox, deliver, payload
from attach_fhir.io.outbox_store import SqliteOutboxStore
from attach_fhir.scoring import score_response
from attach_fhir.writeback import (
    SUBMISSION_SYSTEM,
    WritebackContext,
    build_transaction,
    identifier_value,
)
from tests.lib.instrument_data import packaged
from tests.lib.scoring_examples import EXAMPLES, Example, assert_scored
from tests.lib.scoring_responses import from_answers

pytestmark = pytest.mark.e2e

PATIENT = "Patient/sandbox-adult-29"
ENCOUNTER = "Encounter/sandbox-encounter-adult-29"
CLINICIAN = "Practitioner/sandbox-practitioner-rowan"
ORGANIZATION = "Organization/sandbox-clinic"
AUTHORED = "2024-05-01T10:15:00+02:00"
# One worked example per instrument (scores computed by hand in tests/lib/scoring_examples.py).
FIRST_PER_INSTRUMENT = list({e.instrument: e for e in reversed(EXAMPLES)}.values())[::-1]


@pytest.fixture
def client(fhir_server: Any, http: httpx.Client) -> FhirClient:
    return FhirClient(fhir_server.base_url, http)


def submission(
    example: Example, related: dict[str, str] | None = None, submission_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A fresh submission id and the transaction Bundle for a worked example."""
    questionnaire = packaged(example.instrument)
    response = from_answers(questionnaire, example.answers)
    result = score_response(questionnaire, response)
    sid = submission_id or f"e2e-{uuid.uuid4()}"
    ctx = WritebackContext(
        submission_id=sid,
        patient=PATIENT,
        author=CLINICIAN,
        authored=AUTHORED,
        encounter=ENCOUNTER,
        app={"display": "attach-fhir"},
        organization=ORGANIZATION,
        security_labels=True,
        related_persons=related or {},
    )
    return sid, build_transaction(response, questionnaire, result, ctx)


def count(client: FhirClient, kind: str, value: str) -> int:
    search = "_tag" if kind == "Provenance" else "identifier"
    return len(list(client.search(kind, {search: f"{SUBMISSION_SYSTEM}|{value}"})))


def assert_exactly_one_of_each(client: FhirClient, bundle: dict[str, Any]) -> None:
    for entry in bundle["entry"]:
        value = entry["fullUrl"].removeprefix("urn:uuid:")
        assert count(client, entry["resource"]["resourceType"], value) == 1, entry["fullUrl"]


@pytest.mark.parametrize("example", FIRST_PER_INSTRUMENT, ids=lambda e: e.instrument)
def test_each_instrument_is_written_and_read_back_with_its_references(
    example: Example, client: FhirClient, tmp_path: Path
) -> None:
    mother = client.create(
        {
            "resourceType": "RelatedPerson",
            "patient": {"reference": PATIENT},
            "relationship": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "MTH",
                        }
                    ]
                }
            ],
        }
    )
    mother_ref = f"RelatedPerson/{mother['id']}"
    sid, bundle = submission(example, {"mother": mother_ref})
    item_store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    try:
        item = Outbox(item_store, lambda base: client).submit(
            sid, client.base_url, payload(bundle, "transaction")
        )
    finally:
        item_store.close()
    assert item.status == "delivered"
    assert item.receipt is not None
    ref = item.receipt
    qr_url = bundle["entry"][0]["fullUrl"]

    qr = client.read_reference(ref[qr_url])
    assert qr["status"] == "completed"
    questionnaire = packaged(example.instrument)
    assert qr["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    assert qr["identifier"] == {
        "system": SUBMISSION_SYSTEM,
        "value": identifier_value(sid, "QuestionnaireResponse"),
    }
    assert (qr["subject"], qr["encounter"], qr["author"], qr["source"]) == (
        {"reference": PATIENT},
        {"reference": ENCOUNTER},
        {"reference": CLINICIAN},
        {"reference": PATIENT},
    )
    assert [s["code"] for s in qr["meta"]["security"]] == ["BH", "R"]

    observations = {}
    for entry in bundle["entry"][1:-1]:
        obs = client.read_reference(ref[entry["fullUrl"]])
        code = obs["code"]["coding"][0]["code"]
        observations[code] = obs
        assert obs["subject"] == {"reference": PATIENT}
        assert obs["encounter"] == {"reference": ENCOUNTER}
        assert obs["derivedFrom"][0] == {"reference": ref[qr_url]}
        assert obs["identifier"][0]["value"] == identifier_value(sid, code)
        assert_scored(obs, example.expected[code])
        if not isinstance(example.expected[code], str):
            assert obs["valueQuantity"]["unit"] == "{score}"
        if code.startswith("ecr-rs-mother"):
            assert obs["focus"] == [{"reference": mother_ref, "display": "mother"}]
    assert set(observations) == set(example.expected)
    for code in example.not_applicable:
        assert code not in observations

    provenance = client.read_reference(ref[bundle["entry"][-1]["fullUrl"]])
    assert provenance["target"] == [{"reference": ref[e["fullUrl"]]} for e in bundle["entry"][:-1]]
    assert [a["who"] for a in provenance["agent"]] == [
        {"reference": CLINICIAN},
        {"display": "attach-fhir"},
    ]
    assert provenance["agent"][1]["onBehalfOf"] == {"reference": ORGANIZATION}


def test_the_same_submission_retried_writes_one_of_each(client: FhirClient) -> None:
    _, bundle = submission(EXAMPLES[0])
    first = deliver(client, payload(bundle, "transaction"))
    second = deliver(client, payload(bundle, "transaction"))
    assert second == first
    assert_exactly_one_of_each(client, bundle)


class DropAfterCommit(httpx.BaseTransport):
    """Forwards to the real server, then loses the first POST's answer (the server committed)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and not self.dropped:
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.RemoteProtocolError("connection dropped after the server committed")
        return response

    def close(self) -> None:
        self.inner.close()


def test_connection_dropped_after_commit_then_retried_writes_one_of_each(
    fhir_server: Any, client: FhirClient, tmp_path: Path
) -> None:
    sid, bundle = submission(EXAMPLES[0])
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    now = [1_700_000_000.0]
    with httpx.Client(transport=DropAfterCommit()) as flaky:
        lossy = FhirClient(fhir_server.base_url, flaky)
        outbox = Outbox(store, lambda base: lossy, clock=lambda: now[0])
        item = outbox.submit(sid, fhir_server.base_url, payload(bundle, "transaction"))
        assert (item.status, item.last_error_code) == ("queued", "fhir_transport_error")
        # The server did commit: the resources are there although the answer was lost.
        assert_exactly_one_of_each(client, bundle)
        now[0] = item.next_attempt_at
        assert outbox.drain().delivered == [sid]
    store.close()
    assert_exactly_one_of_each(client, bundle)
    delivered = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    receipt = delivered.get(sid).receipt  # type: ignore[union-attr]
    delivered.close()
    qr_id = identifier_value(sid, "QuestionnaireResponse")
    found = next(
        client.search("QuestionnaireResponse", {"identifier": f"{SUBMISSION_SYSTEM}|{qr_id}"})
    )
    assert receipt[bundle["entry"][0]["fullUrl"]] == f"QuestionnaireResponse/{found['id']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_down_for_the_submit_then_delivered_when_it_returns(
    fhir_server_factory: Any, http: httpx.Client, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    now = [1_700_000_000.0]
    down_then_up = FhirClient(base, http)
    outbox = Outbox(store, lambda target: down_then_up, clock=lambda: now[0])
    sid, bundle = submission(EXAMPLES[0])
    item = outbox.submit(sid, base, payload(bundle, "transaction"))
    assert (item.status, item.last_error_code) == ("queued", "fhir_transport_error")

    server = fhir_server_factory(port=port)
    assert server.base_url == base
    now[0] = item.next_attempt_at
    assert outbox.drain().delivered == [sid]
    assert outbox.drain().delivered == []
    store.close()
    assert_exactly_one_of_each(FhirClient(base, http), bundle)


def test_a_new_process_drains_what_was_queued_once(client: FhirClient, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    sid, bundle = submission(EXAMPLES[0])
    store = SqliteOutboxStore(path)
    store.enqueue(sid, client.base_url, payload(bundle, "transaction"), 1_700_000_000.0)
    store.close()
    env = {**os.environ, "ATTACH_OUTBOX_DSN": f"sqlite:///{path}"}
    command = [sys.executable, "-m", "attach_fhir.cli", "outbox", "drain"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"delivered {sid}" in first.stderr
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "delivered 0, retrying 0, failed 0" in second.stderr
    assert_exactly_one_of_each(client, bundle)


def test_ordered_conditional_creates_resolve_references_and_write_once(
    client: FhirClient,
) -> None:
    ecr = next(e for e in EXAMPLES if e.instrument == "ecr")
    _, bundle = submission(ecr)
    receipt = deliver(client, payload(bundle, "ordered-creates"))
    assert deliver(client, payload(bundle, "ordered-creates")) == receipt
    assert_exactly_one_of_each(client, bundle)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    qr_ref = receipt[urls[0]]
    anxiety, avoidance, category = (client.read_reference(receipt[u]) for u in urls[1:4])
    assert anxiety["derivedFrom"] == [{"reference": qr_ref}]
    assert category["derivedFrom"] == [
        {"reference": qr_ref},
        {"reference": receipt[urls[1]]},
        {"reference": receipt[urls[2]]},
    ]
    assert avoidance["interpretation"][0]["coding"][0]["code"] == ecr.expected["ecr-category"]
    provenance = client.read_reference(receipt[urls[-1]])
    assert provenance["target"] == [{"reference": receipt[u]} for u in urls[:-1]]
