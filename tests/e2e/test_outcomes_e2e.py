"""``attach-fhir outcomes --iss`` against the real sandbox, as a SMART Backend Services client.

The hand-computed population of tests/lib/test_outcomes.py is written to a sandbox of its own
(its goals and plans carry the app's care-plan identifier, as the app writes them). Read from
the server, restricted to a Group of the population's patients, the report must hold exactly
the rows the same resources give when read from NDJSON, and the hand-computed figures.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from attach_fhir.careplan_fhir import CAREPLAN_SYSTEM
from attach_fhir.io.backend_services import backend_fhir_client, load_backend_config
from ehr_sandbox.runner import Sandbox
from tests.fixtures import system_audit as trail
from tests.fixtures.sandbox import SandboxFactory
from tests.lib.test_outcomes import population

pytestmark = pytest.mark.e2e

KEY = RSAKey.generate_key(2048, private=True)
KEY.ensure_kid()
READER, SEEDER = "outcomes-reader", "outcomes-seeder"
READ_SCOPES = [
    f"system/{kind}.rs" for kind in ("Observation", "Goal", "CarePlan", "QuestionnaireResponse")
] + ["system/Group.r"]
PATIENTS = "ABCDEFG"


def registration(client_id: str) -> dict[str, Any]:
    public = KEY.as_dict(private=False) | {"alg": "RS384", "use": "sig"}
    return {
        "client_id": client_id,
        "type": "confidential-asymmetric",
        "backend_service": True,
        "jwks": {"keys": [public]},
    }


def backend_file(folder: Path, iss: str, client: str, scopes: list[str]) -> Path:
    (folder / "key.json").write_text(json.dumps(KEY.as_dict(private=True)))
    path = folder / f"backend-{client}.json"
    entry = {"iss": iss, "client_id": client, "private_key": "key.json", "alg": "RS384"}
    path.write_text(json.dumps([entry | {"scopes": scopes}]))
    return path


def as_the_app_writes(resources: list[object]) -> list[dict[str, Any]]:
    """The population's resources, with ids, and goals and plans under the app's identifier."""
    kept: list[dict[str, Any]] = []
    for n, resource in enumerate(resources):
        if not isinstance(resource, dict) or resource.get("id") in {"x", "A"}:
            continue  # what the server would refuse or never hold for these patients
        resource = dict(resource)
        resource.setdefault("id", f"outcomes-{n}")
        if resource["resourceType"] in {"Goal", "CarePlan"}:
            resource["identifier"] = [{"system": CAREPLAN_SYSTEM, "value": f"outcomes-{n}"}]
            # What R4 requires and the pure tests leave out; the report reads neither.
            if resource["resourceType"] == "Goal":
                resource.setdefault("description", {"text": "Feel safer in relationships"})
            else:
                resource.setdefault("intent", "plan")
                resource["activity"] = [
                    {"detail": {"status": "scheduled"} | a["detail"]} for a in resource["activity"]
                ]
        kept.append(resource)
    return kept


def outcomes(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attach_fhir.cli", "outcomes", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=os.environ, check=False
    )


def csv_rows(folder: Path) -> list[dict[str, str]]:
    text = (folder / "patients.csv").read_text(encoding="utf-8")
    return sorted(csv.DictReader(io.StringIO(text)), key=lambda r: (r["patient"], r["score"]))


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    return sandbox_factory(clients=[registration(READER), registration(SEEDER)])


def test_the_report_read_from_the_server_matches_the_same_resources_as_ndjson(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    seeded = as_the_app_writes(population())
    seed_file = backend_file(tmp_path, base, SEEDER, ["system/*.cruds"])
    with httpx.Client(timeout=30) as http:
        seeder = backend_fhir_client(load_backend_config(seed_file)[0], http)
        for letter in PATIENTS:
            seeder.update({"resourceType": "Patient", "id": letter, "active": True})
        for resource in seeded:
            seeder.update(resource)
        group = f"outcomes-{uuid.uuid4().hex[:8]}"
        members = [{"entity": {"reference": f"Patient/{p}"}} for p in PATIENTS]
        seeder.update(
            {"resourceType": "Group", "id": group, "type": "person", "actual": True}
            | {"member": members}
        )

    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"clinic secret")
    common = ["--as-of", "2026-04-01", "--pseudonym-key-file", str(key)]
    backend = backend_file(tmp_path, base, READER, READ_SCOPES)
    from_server = outcomes(
        "--iss", base, "--backend", str(backend), "--group", group, "--out", str(tmp_path / "s"),
        *common,
    )  # fmt: skip
    assert from_server.returncode == 0, from_server.stderr
    ndjson = tmp_path / "population.ndjson"
    ndjson.write_text("".join(json.dumps(r) + "\n" for r in seeded), encoding="utf-8")
    from_files = outcomes("--ndjson", str(ndjson), "--out", str(tmp_path / "f"), *common)
    assert from_files.returncode == 0, from_files.stderr

    server_rows, file_rows = csv_rows(tmp_path / "s"), csv_rows(tmp_path / "f")
    assert server_rows == file_rows
    # Hand-computed (tests/lib/test_outcomes.py): A-F have ECR anxiety Observations and G two
    # scored ECR-R responses (anxiety and avoidance each): 6 + 2 rows, 7 patients.
    assert len(server_rows) == 8
    assert len({r["patient"] for r in server_rows}) == 7
    summary = json.loads(from_server.stdout)
    assert summary["patients"] == 7
    page = (tmp_path / "s" / "report.html").read_text(encoding="utf-8")
    assert "Patient/" not in page and "clinic secret" not in page
    # Goals, plans and schedules come from the server too: the whole report is the same.
    assert page == (tmp_path / "f" / "report.html").read_text(encoding="utf-8")
    assert "Bearer" not in from_server.stderr + from_server.stdout

    # Each request is audited where the app keeps its trail, the reader as the agent: the
    # Group read first (this run's own Group), then one search per kind of resource.
    events = trail.records(Path(os.environ["ATTACH_DATA_DIR"]))
    start = [n for n, e in enumerate(events) if trail.resource(e) == f"Group/{group}"]
    assert len(start) == 1
    ours = [e for e in events[start[0] :] if trail.agent_client(e) == READER]
    assert trail.codes(ours[0]) == ["read"]
    searched = {str(trail.resource(e)) for e in ours if trail.codes(e) == ["search-type"]}
    assert searched == {"Observation", "Goal", "CarePlan", "QuestionnaireResponse"}
    assert {e["outcome"] for e in ours} == {"0"}
