"""``attach-fhir questionnaires load`` into a FHIR server that wants a token: the real sandbox
(authorization server and auth-enabled FHIR server) refuses an unauthorized load, and takes the
package with a SMART Backend Services token or a plain bearer token, which never shows in the
command's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from attach_fhir.fhir_package import loadable, package_files
from attach_fhir.instruments import read_packaged
from attach_fhir.io.backend_services import BackendTokenSource, load_backend_config
from attach_fhir.io.fhir_client import FhirClient
from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import SandboxFactory

pytestmark = pytest.mark.e2e

Json = dict[str, Any]
CLIENT = "package-loader"
KEY = RSAKey.generate_key(2048, private=True)
KEY.ensure_kid()
KINDS = ("CodeSystem", "ValueSet", "StructureDefinition", "Questionnaire")
SCOPES = [f"system/{kind}.cruds" for kind in KINDS]


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    public = KEY.as_dict(private=False) | {"alg": "RS384", "use": "sig"}
    client = {
        "client_id": CLIENT,
        "type": "confidential-asymmetric",
        "backend_service": True,
        "jwks": {"keys": [public]},
    }
    return sandbox_factory(clients=[client])


@pytest.fixture(scope="module")
def backend_file(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert sandbox.urls is not None
    folder = tmp_path_factory.mktemp("loader")
    (folder / "key.json").write_text(json.dumps(KEY.as_dict(private=True)))
    entry = {
        "iss": sandbox.urls.fhir_base,
        "client_id": CLIENT,
        "private_key": "key.json",
        "alg": "RS384",
        "scopes": SCOPES,
    }
    path = folder / "backend.json"
    path.write_text(json.dumps([entry]))
    return path


def ours() -> list[Json]:
    resources = [json.loads(data) for data in package_files(read_packaged()).values()]
    return list(loadable(resources))


def load(iss: str, *extra: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATTACH_FHIR_TOKEN", "ATTACH_BACKEND_CONFIG")
    }
    if token is not None:
        env["ATTACH_FHIR_TOKEN"] = token
    command = [sys.executable, "-m", "attach_fhir.cli", "questionnaires", "load", "--iss", iss]
    return subprocess.run(
        [*command, *extra], capture_output=True, text=True, timeout=180, env=env, check=False
    )


def system_token(backend_file: Path) -> str:
    with httpx.Client(timeout=30) as http:
        return BackendTokenSource(load_backend_config(backend_file)[0], http).access_token()


def copies(client: FhirClient, resource: Json) -> list[Json]:
    found = client.search(resource["resourceType"], {"url": resource["url"]})
    return [r for r in found if r.get("version") == resource["version"]]


def test_a_load_without_a_token_is_refused_and_writes_nothing(
    sandbox: Sandbox, backend_file: Path
) -> None:
    assert sandbox.urls is not None
    before = {}
    with httpx.Client(timeout=30) as http:
        reader = FhirClient(sandbox.urls.fhir_base, http, token_source=_static(backend_file))
        for resource in ours():
            before[(resource["url"], resource["version"])] = len(copies(reader, resource))
    result = load(sandbox.urls.fhir_base)
    assert result.returncode == 2
    error = json.loads(result.stderr.split("error: ", 1)[1])
    assert (error["code"], error["http_status"]) == ("fhir_unauthorized", 401)
    assert "no token given" in result.stderr
    assert result.stdout == ""
    with httpx.Client(timeout=30) as http:
        reader = FhirClient(sandbox.urls.fhir_base, http, token_source=_static(backend_file))
        for resource in ours():
            assert len(copies(reader, resource)) == before[(resource["url"], resource["version"])]


def test_backend_services_load_once_then_a_bearer_token_finds_it_unchanged(
    sandbox: Sandbox, backend_file: Path
) -> None:
    assert sandbox.urls is not None
    resources = ours()
    first = load(sandbox.urls.fhir_base, "--backend", str(backend_file))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["loaded"] == len(resources)
    assert summary.get("created", 0) + summary.get("updated", 0) + summary.get("unchanged", 0) == (
        len(resources)
    )
    token = system_token(backend_file)
    with httpx.Client(timeout=30) as http:
        reader = FhirClient(sandbox.urls.fhir_base, http, token_source=lambda rejected: token)
        for resource in resources:
            (copy,) = copies(reader, resource)
            stripped = {k: v for k, v in copy.items() if k not in ("id", "meta", "text")}
            assert stripped == {k: v for k, v in resource.items() if k not in ("id", "meta")}

    again = load(sandbox.urls.fhir_base, token=token)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"loaded": len(resources), "unchanged": len(resources)}
    assert token not in again.stdout + again.stderr + first.stdout + first.stderr


def _static(backend_file: Path) -> Any:
    token = system_token(backend_file)
    return lambda rejected: None if rejected else token
