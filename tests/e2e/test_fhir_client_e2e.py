"""FhirClient against the real sandbox FHIR server (faults: tests/lib/test_fhir_client.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from attach_fhir.capabilities import CapabilityCache
from attach_fhir.fhir_errors import FhirNotFound, FhirPreconditionFailed, FhirUnprocessable
from attach_fhir.io.fhir_client import FhirClient
from tests.fixtures.seed import seeded_patient

pytestmark = pytest.mark.e2e

PATIENT = "Patient/sandbox-adult-29"


@pytest.fixture
def client(fhir_server: Any) -> Iterator[FhirClient]:
    with httpx.Client(timeout=30) as http:
        yield FhirClient(fhir_server.base_url, http)


def observation(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "urn:test", "code": code}]},
        "subject": {"reference": PATIENT},
        **extra,
    }


def test_capabilities_of_the_sandbox(client: FhirClient) -> None:
    caps = CapabilityCache().get(client)
    assert (caps.transaction, caps.batch, caps.write_mode) == (True, True, "transaction")
    assert caps.can_conditional_create("QuestionnaireResponse")


def test_read_and_missing(client: FhirClient) -> None:
    assert client.read("Patient", "sandbox-adult-29")["id"] == "sandbox-adult-29"
    with pytest.raises(FhirNotFound) as caught:
        client.read("Patient", "no-such-patient")
    assert caught.value.http_status == 404
    assert caught.value.outcome.codes() == ["not-found"]


def test_create_update_with_if_match_and_vread(client: FhirClient) -> None:
    created = client.create(observation("v"))
    first_version = created["meta"]["versionId"]
    updated = client.update({**created, "status": "amended"}, if_match=first_version)
    assert updated["status"] == "amended"
    assert updated["meta"]["versionId"] != first_version
    with pytest.raises(FhirPreconditionFailed):
        client.update({**created, "status": "cancelled"}, if_match=first_version)
    old = client.vread("Observation", created["id"], first_version)
    assert old["status"] == "final"


def test_a_resource_the_server_refuses_carries_its_outcome(client: FhirClient) -> None:
    invalid = observation("x")
    del invalid["status"]
    with pytest.raises(FhirUnprocessable) as caught:
        client.create(invalid)
    issue = caught.value.outcome.issues[0]
    assert (issue.severity, issue.code, issue.expression) == (
        "error",
        "structure",
        ("Observation.status",),
    )


def test_conditional_create_returns_the_existing_resource(client: FhirClient) -> None:
    value = str(uuid.uuid4())
    resource = observation("c", identifier=[{"system": "urn:test:id", "value": value}])
    first = client.create(resource, if_none_exist=f"identifier=urn:test:id|{value}")
    second = client.create(resource, if_none_exist=f"identifier=urn:test:id|{value}")
    assert second["id"] == first["id"]
    assert len(list(client.search("Observation", {"identifier": f"urn:test:id|{value}"}))) == 1


def test_search_follows_next_links_over_pages(client: FhirClient) -> None:
    code = f"page-{uuid.uuid4()}"
    ids = {client.create(observation(code))["id"] for _ in range(5)}
    params = {"code": f"urn:test|{code}", "_count": "2"}
    pages = list(client.search_pages("Observation", params))
    assert len(pages) == 3
    assert {r["id"] for r in client.search("Observation", params)} == ids


def test_batch(client: FhirClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient/sandbox-adult-29"}},
            {"request": {"method": "GET", "url": "Patient/no-such-patient"}},
        ],
    }
    response = client.batch(bundle)
    statuses = [e["response"]["status"][:3] for e in response["entry"]]
    assert statuses == ["200", "404"]


def test_patient_search_by_post_finds_what_get_finds(client: FhirClient) -> None:
    # The seed's adult: Alex Synthetic, MRN SANDBOX-ADULT-29, born on the day the seed gives.
    born = dt.date.fromisoformat(seeded_patient("sandbox-adult-29")["birthDate"])
    by_name = {"name": "alex", "birthdate": born.isoformat()}
    page, method = client.search_first_page("Patient", by_name)
    assert method == "POST"
    assert [e["resource"]["id"] for e in page["entry"]] == ["sandbox-adult-29"]
    got, _ = client.search_first_page("Patient", by_name, by_post=False)
    assert [e["resource"]["id"] for e in got["entry"]] == ["sandbox-adult-29"]
    by_mrn, _ = client.search_first_page("Patient", {"identifier": "SANDBOX-PARENT-41"})
    assert [e["resource"]["id"] for e in by_mrn["entry"]] == ["sandbox-parent-41"]
    next_day = (born + dt.timedelta(days=1)).isoformat()
    none, _ = client.search_first_page("Patient", {"name": "alex", "birthdate": next_day})
    assert none.get("entry", []) == []
