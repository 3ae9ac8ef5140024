"""The sandbox FHIR server simulating a limited EHR: read-only types and no transactions.

``--read-only-types`` and ``--no-transaction`` change what the CapabilityStatement declares and
what the server accepts: a write it does not declare answers 405 with an OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from attach_fhir.capabilities import ServerCapabilities
from ehr_sandbox.fhir_process import FhirServerOptions
from tests.fixtures.fhir_server import FhirServerFactory

pytestmark = pytest.mark.e2e

READ_ONLY = ("QuestionnaireResponse", "Observation")
ADULT = "sandbox-adult-29"


def test_the_options_become_server_arguments() -> None:
    options = FhirServerOptions(read_only_types=READ_ONLY, no_transaction=True)
    args = options.argv()
    assert args[args.index("--read-only-types") + 1] == "QuestionnaireResponse,Observation"
    assert "--no-transaction" in args
    assert "--read-only-types" not in FhirServerOptions().argv()


@pytest.fixture(scope="module")
def limited(fhir_server_factory: FhirServerFactory) -> Iterator[httpx.Client]:
    """A seeded open server with QuestionnaireResponse and Observation read-only, no transaction."""
    server = fhir_server_factory(read_only_types=READ_ONLY, no_transaction=True)
    with httpx.Client(base_url=server.base_url + "/", timeout=30) as client:
        yield client


def observation(value: float) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "probe"},
        "subject": {"reference": f"Patient/{ADULT}"},
        "valueQuantity": {"value": value},
    }


def test_the_capability_statement_declares_the_limits(limited: httpx.Client) -> None:
    statement = limited.get("metadata").json()
    rest = statement["rest"][0]
    assert [i["code"] for i in rest["interaction"]] == ["batch", "search-system"]
    by_type = {r["type"]: r for r in rest["resource"]}
    for kind in READ_ONLY:
        codes = [i["code"] for i in by_type[kind]["interaction"]]
        assert codes == ["read", "vread", "history-instance", "search-type"]
        assert by_type[kind]["conditionalCreate"] is False
    assert "create" in [i["code"] for i in by_type["DocumentReference"]["interaction"]]
    caps = ServerCapabilities.from_statement(str(limited.base_url), statement)
    assert caps.write_mode == "document-reference"
    assert caps.transaction is False


def test_writes_to_a_read_only_type_answer_405(limited: httpx.Client) -> None:
    created = limited.post("Observation", json=observation(1))
    assert created.status_code == 405
    assert created.json()["issue"][0]["code"] == "not-supported"
    assert limited.put("Observation/x", json={**observation(1), "id": "x"}).status_code == 405
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": observation(2), "request": {"method": "POST", "url": "Observation"}}
        ],
    }
    assert limited.post("", json=batch).status_code == 405
    found = limited.get("Observation", params={"subject": f"Patient/{ADULT}"}).json()
    assert found["total"] == 0  # nothing was written by any of them
    # reading and searching still work, and other types are writable
    assert limited.get(f"Patient/{ADULT}").status_code == 200
    doc = {"resourceType": "Basic", "code": {"text": "probe"}}
    assert limited.post("Basic", json=doc).status_code == 201


def test_a_transaction_answers_405_and_writes_nothing(limited: httpx.Client) -> None:
    basic = {"resourceType": "Basic", "code": {"text": "transaction-probe"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": basic, "request": {"method": "POST", "url": "Basic"}}],
    }
    answer = limited.post("", json=bundle)
    assert answer.status_code == 405
    assert "transaction" in answer.json()["issue"][0]["details"]["text"]
    assert limited.get("Basic", params={"code:text": "transaction-probe"}).json()["total"] == 0
