"""The sandbox FHIR server's search index answers every search exactly as Medplum's own search
(ehr_sandbox/fhir_server/search-index-check.mjs), and over HTTP a write is found at once."""

from __future__ import annotations

import json
import subprocess
import uuid

import httpx
import pytest

from ehr_sandbox.fhir_process import NODE_BINARY, SERVER_DIR, FhirServerProcess

pytestmark = pytest.mark.e2e


def test_the_index_changes_no_answer_of_medplums_search() -> None:
    run = subprocess.run(
        [str(NODE_BINARY), "search-index-check.mjs", "--seed", "3"],
        cwd=SERVER_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0 and summary["ok"], summary
    assert summary["indexed"] > 500  # the index was used, not bypassed
    assert summary["nonEmpty"] > 100  # and searches found something to compare


def test_a_written_identifier_is_found_at_once_and_an_update_moves_it(
    fhir_server: FhirServerProcess,
) -> None:
    system, first, second = "urn:test", uuid.uuid4().hex, uuid.uuid4().hex
    with httpx.Client(base_url=fhir_server.base_url + "/", timeout=30) as fhir:
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "probe"},
            "identifier": [{"system": system, "value": first}],
        }

        def found(value: str) -> list[str]:
            bundle = fhir.get("Observation", params={"identifier": f"{system}|{value}"}).json()
            return [e["resource"]["id"] for e in bundle.get("entry", [])]

        assert found(first) == []  # the index is built before the write
        made = fhir.post("Observation", json=obs).json()
        assert found(first) == [made["id"]]
        fhir.put(
            f"Observation/{made['id']}",
            json={**made, "identifier": [{"system": system, "value": second}]},
        ).raise_for_status()
        assert found(first) == []
        assert found(second) == [made["id"]]
        fhir.delete(f"Observation/{made['id']}").raise_for_status()
        assert found(second) == []
