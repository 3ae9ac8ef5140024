"""The launch's reading client against a hostile EHR: what it read with parts dropped it never
writes back, and a resource with nothing readable is an error (502), not a page built on it.

The record is real (the sandbox FHIR server); the malformation is added on the way back by the
loopback proxy of :mod:`tests.fixtures.malforming_proxy`, because the server refuses to store it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smart_app.records import delivery
from smart_app.web.record_reading import ReadingClient, UnreadableRecord
from tests.fixtures.fhir_server import FhirServerProcess
from tests.fixtures.launched_app import launched_app
from tests.fixtures.malforming_proxy import MalformingProxy

pytestmark = pytest.mark.e2e

JUNK_NAME = "Junk Name"
BIRTH_DATE = "1990-04-01"
NEW_BIRTH_DATE = "1991-05-06"


@pytest.fixture(scope="module")
def proxy(fhir_server: FhirServerProcess) -> Iterator[MalformingProxy]:
    served = MalformingProxy(fhir_server.base_url)
    yield served
    served.stop()


@pytest.fixture
def upstream(fhir_server: FhirServerProcess) -> Iterator[httpx.Client]:
    """Straight to the FHIR server, past the proxy: what the record really holds."""
    with httpx.Client(base_url=fhir_server.base_url.rstrip("/") + "/", timeout=30) as http:
        yield http


@pytest.fixture
def client(proxy: MalformingProxy) -> Iterator[ReadingClient]:
    with httpx.Client(timeout=30) as http:
        yield ReadingClient(proxy.base, http)
    proxy.mangle = lambda method, path, body: body


def new_patient(upstream: httpx.Client) -> dict[str, Any]:
    person = {
        "resourceType": "Patient",
        "name": [{"given": ["Ada"], "family": "Readingclient"}],
        "birthDate": BIRTH_DATE,
    }
    created = upstream.post("Patient", json=person)
    assert created.status_code == 201
    stored: dict[str, Any] = created.json()
    return stored


def junk_name_first(patient_id: str, seen: list[tuple[str, str]]) -> Any:
    """A proxy ``mangle`` that records every request and puts a name that is not a HumanName
    first in this patient's ``name``, whether it is read or found by a search."""

    def mangle(method: str, path: str, body: Any) -> Any:
        seen.append((method, path))
        if method != "GET" or not isinstance(body, dict):
            return body
        found = [body] + [e.get("resource") or {} for e in body.get("entry") or []]
        for resource in found:
            if resource.get("resourceType") == "Patient" and resource.get("id") == patient_id:
                resource["name"] = [JUNK_NAME, *resource["name"]]
        return body

    return mangle


def read_as(client: ReadingClient, how: str, patient_id: str) -> dict[str, Any]:
    if how == "read":
        return client.read("Patient", patient_id)
    (found,) = client.search("Patient", {"_id": patient_id})
    return found


@pytest.mark.parametrize("how", ["read", "search"])
def test_a_resource_read_with_parts_dropped_is_not_written_back(
    proxy: MalformingProxy, upstream: httpx.Client, client: ReadingClient, how: str
) -> None:
    patient = new_patient(upstream)
    seen: list[tuple[str, str]] = []
    proxy.mangle = junk_name_first(patient["id"], seen)
    read = read_as(client, how, patient["id"])
    assert read["name"] == patient["name"]  # the string was dropped, the HumanName kept
    changed = {**read, "birthDate": NEW_BIRTH_DATE}
    with pytest.raises(UnreadableRecord) as refused:
        client.update(changed, if_match=f'W/"{patient["meta"]["versionId"]}"')
    assert refused.value.code == "unreadable_record"
    assert refused.value.status_code == 502
    assert "not changed" in refused.value.description
    assert [m for m, _ in seen if m != "GET"] == []  # nothing was sent
    stored = upstream.get(f"Patient/{patient['id']}").json()
    assert stored["meta"]["versionId"] == patient["meta"]["versionId"]
    assert stored["birthDate"] == BIRTH_DATE


@pytest.mark.parametrize("how", ["read", "search"])
def test_a_resource_read_whole_is_written_back(
    proxy: MalformingProxy, upstream: httpx.Client, client: ReadingClient, how: str
) -> None:
    """The refusal above is about the dropped part: the same change to a whole read goes."""
    patient = new_patient(upstream)
    other = new_patient(upstream)
    seen: list[tuple[str, str]] = []
    proxy.mangle = junk_name_first(other["id"], seen)  # another patient is malformed
    read = read_as(client, how, patient["id"])
    assert read["name"] == patient["name"]
    client.update({**read, "birthDate": NEW_BIRTH_DATE})
    assert ("PUT", f"Patient/{patient['id']}") in seen
    stored = upstream.get(f"Patient/{patient['id']}").json()
    assert stored["birthDate"] == NEW_BIRTH_DATE
    assert stored["meta"]["versionId"] != patient["meta"]["versionId"]


def test_a_read_with_nothing_readable_raises_unreadable_record(
    proxy: MalformingProxy, upstream: httpx.Client, client: ReadingClient
) -> None:
    patient = new_patient(upstream)

    def two_deceased(method: str, path: str, body: Any) -> Any:
        # Two values of one choice element: a rule about the whole resource, nothing to drop.
        if path == f"Patient/{patient['id']}":
            return {**body, "deceasedBoolean": False, "deceasedDateTime": "2020-01-01"}
        return body

    proxy.mangle = two_deceased
    with pytest.raises(UnreadableRecord) as unreadable:
        client.read("Patient", patient["id"])
    assert unreadable.value.code == "unreadable_record"
    assert unreadable.value.status_code == 502
    proxy.mangle = lambda method, path, body: body
    assert client.read("Patient", patient["id"])["id"] == patient["id"]  # the record is fine


def test_a_page_reading_an_unreadable_record_answers_502(
    proxy: MalformingProxy, upstream: httpx.Client, tmp_path: Path
) -> None:
    """Through the app: the review of a response the EHR sends in a shape no R4 model has."""
    patient = new_patient(upstream)
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient['id']}"},
        "item": [{"linkId": "1", "answer": [{"valueInteger": 4}]}],
    }
    created = upstream.post("QuestionnaireResponse", json=response)
    assert created.status_code == 201
    qr_id = created.json()["id"]

    def dstu2_name(method: str, path: str, body: Any) -> Any:
        # The DSTU2 name of the resource: not a FHIR R4 resource type at all.
        if path == f"QuestionnaireResponse/{qr_id}":
            return {**body, "resourceType": "QuestionnaireAnswers"}
        return body

    transport = httpx.HTTPTransport()
    launched = launched_app(
        proxy.base,
        tmp_path,
        transport,
        client_id="reading-client-test",
        kind="ehr",
        patient=patient["id"],
        user="Practitioner/sandbox-practitioner-rowan",
        scope="launch openid fhirUser user/*.cruds",
    )
    try:
        proxy.mangle = dstu2_name
        page = launched.client.get(f"/app/{launched.ctx}/review/responses/{qr_id}")
        assert page.status_code == 502
        assert UnreadableRecord.description in page.get_data(as_text=True)
        proxy.mangle = lambda method, path, body: body
        # The same response sent as it is stored: the review page (no scores yet).
        page = launched.client.get(f"/app/{launched.ctx}/review/responses/{qr_id}")
        assert page.status_code == 200
        assert 'id="no-scores"' in page.get_data(as_text=True)
    finally:
        proxy.mangle = lambda method, path, body: body
        delivery.stop(launched.app)
        transport.close()
