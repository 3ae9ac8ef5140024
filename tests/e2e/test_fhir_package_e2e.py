"""The FHIR package against things we did not write: loaded into the real sandbox FHIR server
(Medplum's router) by ``attach-fhir questionnaires load``, and validated by Medplum's
``validateResource`` with its shipped R4 definitions (``ehr_sandbox/fhir_server/validate.mjs``).

The server is this module's own, unseeded: the loaded Questionnaires must not reach other tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from attach_fhir.fhir_package import loadable, package_files
from attach_fhir.instruments import library, read_packaged
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.package_loader import DuplicateCanonical, load_resource
from attach_fhir.questionnaire_copy import differences
from ehr_sandbox.fhir_process import NODE_BINARY, SERVER_DIR, FhirServerProcess
from tests.fixtures.fhir_server import FhirServerFactory
from tests.lib.test_codings import written

pytestmark = pytest.mark.e2e

Json = dict[str, Any]
VALIDATOR = SERVER_DIR / "validate.mjs"


@pytest.fixture(scope="module")
def server(fhir_server_factory: FhirServerFactory) -> FhirServerProcess:
    return fhir_server_factory(seed=None)


def load(base_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ATTACH_FHIR_TOKEN",)}
    return subprocess.run(
        [sys.executable, "-m", "attach_fhir.cli", "questionnaires", "load", "--iss", base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def on_server(client: FhirClient, resource: Json) -> list[Json]:
    found = client.search(resource["resourceType"], {"url": resource["url"]})
    return [r for r in found if r.get("version") == resource["version"]]


def package_resources() -> list[Json]:
    return [
        json.loads(data)
        for name, data in package_files(read_packaged()).items()
        if not name.endswith(("/package.json", "/.index.json"))
    ]


def test_load_twice_puts_one_exact_copy_and_the_second_load_changes_nothing(
    server: FhirServerProcess,
) -> None:
    ours = list(loadable(package_resources()))
    first = load(server.base_url)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"loaded": len(ours), "created": len(ours)}
    assert first.stderr.count("load: created ") == len(ours)  # progress, one line each
    with httpx.Client(timeout=30) as http:
        client = FhirClient(server.base_url, http)
        versions = {}
        for resource in ours:
            (copy,) = on_server(client, resource)
            stripped = {k: v for k, v in copy.items() if k not in ("id", "meta", "text")}
            assert stripped == {k: v for k, v in resource.items() if k not in ("id", "meta")}
            assert copy["meta"].get("profile") == resource.get("meta", {}).get("profile")
            versions[resource["url"]] = copy["meta"]["versionId"]
        second = load(server.base_url)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout) == {"loaded": len(ours), "unchanged": len(ours)}
        for resource in ours:
            (copy,) = on_server(client, resource)
            assert copy["meta"]["versionId"] == versions[resource["url"]]
        # The app's copy check takes every loaded Questionnaire for the packaged one.
        lib = library()
        for inst in [*lib.instruments()]:
            (copy,) = on_server(client, dict(lib.questionnaire(f"{inst.url}|{inst.version}")))
            assert list(differences(copy, lib.questionnaire(f"{inst.url}|{inst.version}"))) == []


def test_a_changed_copy_is_put_back_and_a_duplicate_is_refused(
    server: FhirServerProcess,
) -> None:
    rq = dict(library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/rq"))
    with httpx.Client(timeout=30) as http:
        client = FhirClient(server.base_url, http)
        load_resource(client, rq)
        (copy,) = on_server(client, rq)
        edited = copy | {"item": [dict(copy["item"][0]) | {"text": "Edited in the EHR"}]}
        client.update(edited)
        assert list(differences(on_server(client, rq)[0], rq)) != []
        assert load_resource(client, rq).action == "updated"
        (restored,) = on_server(client, rq)
        assert restored["id"] == copy["id"] and list(differences(restored, rq)) == []
        client.create({k: v for k, v in rq.items() if k != "id"})  # a second copy, by hand
        with pytest.raises(DuplicateCanonical):
            load_resource(client, rq)


def medplum_issues(resources: list[Json], tmp_path: Path) -> dict[str, list[Json]]:
    paths = []
    for n, resource in enumerate(resources):
        path = tmp_path / f"{n}.json"
        path.write_text(json.dumps(resource), encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run(
        [str(NODE_BINARY), str(VALIDATOR), *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(resources)
    return {f"{n}:{line['resource']}": line["issues"] for n, line in enumerate(lines)}


def test_medplum_finds_nothing_wrong_with_the_package_or_what_the_app_writes(
    tmp_path: Path,
) -> None:
    resources = package_resources() + [resource for _, resource in written()]
    found = medplum_issues(resources, tmp_path)
    # Out of their transaction, the app's resources still point at each other by the Bundle's
    # urn:uuid placeholders, which the server rewrites to Type/id before it validates (the
    # sandbox validates every write with this same validator): only that warning is set aside.
    placeholder = re.compile(r'^Invalid reference: got "urn:uuid:[0-9a-f-]{36}", expected ')
    kept = {
        name: [i for i in issues if not placeholder.match(i["details"]["text"])]
        for name, issues in found.items()
    }
    assert {name: issues for name, issues in kept.items() if issues} == {}
    # The validator is awake: a broken Questionnaire is reported.
    broken = dict(library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/rq"))
    broken["item"] = [dict(broken["item"][0]) | {"type": "display", "answerOption": [
        {"valueCoding": {"code": "x"}}]}]  # fmt: skip
    (issues,) = medplum_issues([broken], tmp_path).values()
    assert [i["severity"] for i in issues] == ["error"]
