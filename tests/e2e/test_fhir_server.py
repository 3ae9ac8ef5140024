"""The sandbox FHIR server (Medplum's router behind our Node adapter) over real HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_sandbox import fhir_process
from ehr_sandbox.fhir_process import FhirServerError, FhirServerProcess
from ehr_sandbox.seed import PATIENTS, years_before

pytestmark = pytest.mark.e2e

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def fhir(fhir_server: FhirServerProcess) -> Iterator[httpx.Client]:
    """An httpx client on the seeded open-mode server's base URL."""
    with httpx.Client(
        base_url=fhir_server.base_url + "/", headers={"Content-Type": FHIR_JSON}, timeout=30
    ) as client:
        yield client


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


def _new_patient(fhir: httpx.Client) -> str:
    r = fhir.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Probe"}]})
    assert r.status_code == 201
    return str(r.json()["id"])


def _age(birth: str, today: dt.date) -> int:
    born = dt.date.fromisoformat(birth)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def test_seeded_patients_have_the_ages_they_were_given(fhir: httpx.Client) -> None:
    today = dt.date.today()
    for pid, age in PATIENTS.values():
        patient = fhir.get(f"Patient/{pid}").json()
        assert _age(patient["birthDate"], today) == age
        assert patient["name"][0]["family"] == "Synthetic"


def test_years_before_handles_leap_day() -> None:
    assert years_before(dt.date(2024, 2, 29), 1) == dt.date(2023, 2, 28)
    assert years_before(dt.date(2024, 2, 29), 4) == dt.date(2020, 2, 29)


def test_parent_is_linked_to_child_by_related_person(fhir: httpx.Client) -> None:
    bundle = fhir.get("RelatedPerson", params={"patient": "Patient/sandbox-child-4"}).json()
    assert _ids(bundle) == {"sandbox-parent-of-child-4"}
    parent = fhir.get("Patient/sandbox-parent-41").json()
    assert {
        "other": {"reference": "RelatedPerson/sandbox-parent-of-child-4"},
        "type": "seealso",
    } in (parent["link"])


def test_create_read_vread_update_and_history(
    fhir: httpx.Client, fhir_server: FhirServerProcess
) -> None:
    r = fhir.post(
        "Patient", json={"resourceType": "Patient", "id": "client-chosen", "gender": "male"}
    )
    assert r.status_code == 201
    assert r.headers["content-type"].startswith(FHIR_JSON)
    created = r.json()
    pid, v1 = created["id"], created["meta"]["versionId"]
    assert pid != "client-chosen"  # the server assigns ids on create
    assert r.headers["etag"] == f'W/"{v1}"'
    assert r.headers["location"] == f"{fhir_server.base_url}/Patient/{pid}/_history/{v1}"

    assert fhir.get(f"Patient/{pid}").json()["gender"] == "male"
    updated = fhir.put(f"Patient/{pid}", json={**created, "gender": "female"})
    assert updated.status_code == 200
    v2 = updated.json()["meta"]["versionId"]
    assert v2 != v1
    assert fhir.get(f"Patient/{pid}/_history/{v1}").json()["gender"] == "male"
    assert fhir.get(f"Patient/{pid}/_history/{v2}").json()["gender"] == "female"

    for _ in range(2):  # reading history twice must not reorder it
        history = fhir.get(f"Patient/{pid}/_history").json()
        assert history["type"] == "history"
        assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == [v2, v1]


def test_update_with_if_match(fhir: httpx.Client) -> None:
    created = fhir.post("Patient", json={"resourceType": "Patient", "gender": "male"}).json()
    v1 = created["meta"]["versionId"]
    ok = fhir.put(f"Patient/{created['id']}", json=created, headers={"If-Match": f'W/"{v1}"'})
    assert ok.status_code == 200
    stale = fhir.put(f"Patient/{created['id']}", json=created, headers={"If-Match": f'W/"{v1}"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"


def test_update_as_create_returns_201(fhir: httpx.Client) -> None:
    pid = f"upsert-{uuid.uuid4().hex[:12]}"
    r = fhir.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid})
    assert r.status_code == 201
    assert fhir.get(f"Patient/{pid}").status_code == 200


def test_delete_then_read_is_gone(fhir: httpx.Client) -> None:
    pid = _new_patient(fhir)
    assert fhir.delete(f"Patient/{pid}").status_code == 200
    assert fhir.get(f"Patient/{pid}").status_code == 410


def test_errors_are_operation_outcomes(fhir: httpx.Client) -> None:
    missing = fhir.get("Patient/does-not-exist")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("NotAType/1").status_code == 404
    invalid = fhir.post("Patient", json={"resourceType": "Patient", "gender": 3})
    assert invalid.status_code == 422
    assert invalid.json()["issue"][0]["severity"] == "error"
    wrong_type = fhir.post("Patient", json={"resourceType": "Observation"})
    assert wrong_type.status_code == 400
    not_json = fhir.post("Patient", content=b"{", headers={"Content-Type": FHIR_JSON})
    assert not_json.status_code == 400


def test_conditional_create_is_idempotent(fhir: httpx.Client) -> None:
    ident = uuid.uuid4().hex
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:conditional", "value": ident}],
    }
    header = {"If-None-Exist": f"identifier=urn:test:conditional|{ident}"}
    first = fhir.post("Patient", json=body, headers=header)
    second = fhir.post("Patient", json=body, headers=header)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    found = fhir.get("Patient", params={"identifier": f"urn:test:conditional|{ident}"}).json()
    assert found["total"] == 1


def _write_back(patient_id: str, key: str) -> dict[str, Any]:
    qr = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": qr,
                "resource": {
                    "resourceType": "QuestionnaireResponse",
                    "identifier": {"system": "urn:test:qr", "value": key},
                    "status": "completed",
                    "subject": {"reference": f"Patient/{patient_id}"},
                },
                "request": {
                    "method": "POST",
                    "url": "QuestionnaireResponse",
                    "ifNoneExist": f"identifier=urn:test:qr|{key}",
                },
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "identifier": [{"system": "urn:test:obs", "value": key}],
                    "status": "final",
                    "code": {"text": "probe score"},
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "derivedFrom": [{"reference": qr}],
                },
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier=urn:test:obs|{key}",
                },
            },
        ],
    }


def test_transaction_with_if_none_exist_twice_creates_once(fhir: httpx.Client) -> None:
    pid, key = _new_patient(fhir), uuid.uuid4().hex
    first = fhir.post("", json=_write_back(pid, key))
    second = fhir.post("", json=_write_back(pid, key))
    assert first.status_code == second.status_code == 200
    assert first.json()["type"] == "transaction-response"
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201", "201"]
    assert [e["response"]["status"] for e in second.json()["entry"]] == ["200", "200"]
    qr_id = first.json()["entry"][0]["resource"]["id"]
    assert first.json()["entry"][0]["response"]["location"].startswith(
        f"QuestionnaireResponse/{qr_id}/"
    )
    obs = fhir.get("Observation", params={"patient": pid}).json()
    assert obs["total"] == 1
    derived = obs["entry"][0]["resource"]["derivedFrom"][0]["reference"]
    assert derived == f"QuestionnaireResponse/{qr_id}"  # urn:uuid rewritten
    assert fhir.get("QuestionnaireResponse", params={"patient": pid}).json()["total"] == 1


def test_large_conditional_transaction_is_accepted(fhir: httpx.Client) -> None:
    # Medplum itself refuses more than 8 entries when any is conditional; the sandbox lifts it.
    pid, key = _new_patient(fhir), uuid.uuid4().hex
    entries = _write_back(pid, key)["entry"][1:] * 10
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    for n, entry in enumerate(entries):
        obs = {
            **entry["resource"],
            "identifier": [{"system": "urn:test:obs", "value": f"{key}-{n}"}],
        }
        del obs["derivedFrom"]
        request = {**entry["request"], "ifNoneExist": f"identifier=urn:test:obs|{key}-{n}"}
        bundle["entry"].append({"resource": obs, "request": request})
    assert fhir.post("", json=bundle).status_code == 200
    assert fhir.post("", json=bundle).status_code == 200
    assert fhir.get("Observation", params={"patient": pid}).json()["total"] == 10


def test_failed_transaction_leaves_nothing_behind(fhir: httpx.Client) -> None:
    pid, key = _new_patient(fhir), uuid.uuid4().hex
    bundle = _write_back(pid, key)
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Patient", "id": "nope"},
            "request": {"method": "PUT", "url": "Patient/nope", "ifMatch": 'W/"no-such-version"'},
        }
    )
    r = fhir.post("", json=bundle)
    assert r.status_code >= 400
    assert r.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("QuestionnaireResponse", params={"patient": pid}).json()["total"] == 0


def test_batch_reports_each_entry(fhir: httpx.Client) -> None:
    pid = _new_patient(fhir)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        ],
    }
    r = fhir.post("", json=batch).json()
    assert r["type"] == "batch-response"
    assert [e["response"]["status"] for e in r["entry"]] == ["200", "404"]


@pytest.mark.parametrize(
    ("resource_type", "reference_field", "body"),
    [
        ("QuestionnaireResponse", "subject", {"status": "completed"}),
        ("Observation", "subject", {"status": "final", "code": {"text": "x"}}),
        ("Goal", "subject", {"lifecycleStatus": "active", "description": {"text": "x"}}),
        ("CarePlan", "subject", {"status": "active", "intent": "plan"}),
        ("Encounter", "subject", {"status": "finished", "class": {"code": "AMB"}}),
        (
            "Provenance",
            "target",
            {"recorded": "2024-01-01T00:00:00Z", "agent": [{"who": {"display": "x"}}]},
        ),
    ],
)
def test_patient_search_params_filter(
    fhir: httpx.Client, resource_type: str, reference_field: str, body: dict[str, Any]
) -> None:
    mine, other = _new_patient(fhir), _new_patient(fhir)
    created = {}
    for pid in (mine, other):
        ref = {"reference": f"Patient/{pid}"}
        resource = {"resourceType": resource_type, **body}
        resource[reference_field] = [ref] if reference_field == "target" else ref
        r = fhir.post(resource_type, json=resource)
        assert r.status_code == 201, r.text
        created[pid] = r.json()["id"]
    for value in (mine, f"Patient/{mine}"):
        bundle = fhir.get(resource_type, params={"patient": value}).json()
        assert _ids(bundle) == {created[mine]}
        assert bundle["total"] == 1


def test_questionnaire_search_by_url_and_version_is_exact(fhir: httpx.Client) -> None:
    base = f"http://example.org/test/{uuid.uuid4().hex}/Questionnaire/ecr-r"
    ids = {}
    for url, version in ((base, "1.0.0"), (base, "2.0.0"), (base + "s", "1.0.0")):
        q = {"resourceType": "Questionnaire", "url": url, "version": version, "status": "active"}
        ids[(url, version)] = fhir.post("Questionnaire", json=q).json()["id"]
    by_url = fhir.get("Questionnaire", params={"url": base}).json()
    assert _ids(by_url) == {ids[(base, "1.0.0")], ids[(base, "2.0.0")]}
    both = fhir.get("Questionnaire", params={"url": base, "version": "2.0.0"}).json()
    assert _ids(both) == {ids[(base, "2.0.0")]}


def test_paging_follows_next_links_on_the_public_base(
    fhir: httpx.Client, fhir_server: FhirServerProcess
) -> None:
    pid = _new_patient(fhir)
    made = set()
    for n in range(7):
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": f"paging {n}"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        made.add(fhir.post("Observation", json=obs).json()["id"])
    url: str | None = f"{fhir_server.base_url}/Observation?patient={pid}&_count=3"
    seen: list[str] = []
    pages = 0
    while url:
        assert url.startswith(fhir_server.base_url + "/")
        page = fhir.get(url).json()
        assert page["total"] == 7
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        assert all(
            e["fullUrl"].startswith(fhir_server.base_url + "/Observation/") for e in page["entry"]
        )
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(made)
    counted = fhir.get("Observation", params={"patient": pid, "_summary": "count"}).json()
    assert (counted["total"], counted.get("entry", [])) == (7, [])


def test_capability_statement(fhir: httpx.Client) -> None:
    r = fhir.get("metadata")
    assert r.status_code == 200
    cap = r.json()
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"] == "4.0.1"
    types = {res["type"]: res for res in cap["rest"][0]["resource"]}
    assert {"Patient", "QuestionnaireResponse", "Goal", "CarePlan"} <= set(types)
    assert "patient" in {p["name"] for p in types["QuestionnaireResponse"]["searchParam"]}
    assert "security" not in cap["rest"][0]  # open mode


def test_questionnaire_response_search_by_canonical_with_and_without_version(
    fhir: httpx.Client,
) -> None:
    pid = _new_patient(fhir)
    base = f"http://example.org/test/{uuid.uuid4().hex}/Questionnaire/ecr-r"
    ids = {}
    for canonical in (f"{base}|1.0.0", f"{base}|2.0.0", f"{base}s|1.0.0"):
        qr = {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "questionnaire": canonical,
            "subject": {"reference": f"Patient/{pid}"},
        }
        ids[canonical] = fhir.post("QuestionnaireResponse", json=qr).json()["id"]
    any_version = fhir.get("QuestionnaireResponse", params={"questionnaire": base}).json()
    assert _ids(any_version) == {ids[f"{base}|1.0.0"], ids[f"{base}|2.0.0"]}
    one_version = fhir.get("QuestionnaireResponse", params={"questionnaire": f"{base}|2.0.0"})
    assert _ids(one_version.json()) == {ids[f"{base}|2.0.0"]}


def test_missing_npm_packages_tell_to_run_bootstrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fhir_process, "NODE_BINARY", tmp_path / "no-node")
    with pytest.raises(FhirServerError, match="run scripts/bootstrap"):
        FhirServerProcess().start()
