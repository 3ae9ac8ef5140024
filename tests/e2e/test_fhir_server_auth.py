"""SMART access control of the sandbox FHIR server: bearer tokens, scopes, patient compartment,
and v1-only discovery. Tokens are signed here with keys whose public halves the server trusts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from ehr_sandbox.fhir_process import FhirServerProcess
from tests.fixtures.fhir_server import FhirServerFactory

pytestmark = pytest.mark.e2e

CHILD, SIBLING = "sandbox-child-4", "sandbox-child-9"
SMART_CONFIG = {
    "issuer": "http://127.0.0.1:1/authz",
    "authorization_endpoint": "http://127.0.0.1:1/authz/authorize",
    "token_endpoint": "http://127.0.0.1:1/authz/token",
    "capabilities": ["launch-ehr", "launch-standalone", "permission-v2"],
}

Token = Callable[..., str]


class Keys:
    """A trusted RSA and EC key pair plus an untrusted one."""

    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-384", parameters={"kid": "ec-1", "use": "sig"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.rsa.as_dict(private=False), self.ec.as_dict(private=False)]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def auth_server(
    fhir_server_factory: FhirServerFactory, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> FhirServerProcess:
    """A seeded server that requires tokens signed by ``keys``."""
    folder = tmp_path_factory.mktemp("fhir-auth")
    jwks, smart = folder / "jwks.json", folder / "smart.json"
    jwks.write_text(json.dumps(keys.jwks()))
    smart.write_text(json.dumps(SMART_CONFIG))
    return fhir_server_factory(auth_jwks=jwks, smart_config=smart)


@pytest.fixture
def token(auth_server: FhirServerProcess, keys: Keys) -> Token:
    """Make a token: ``token(scope, patient=None, aud=..., exp_in=300, key='rsa')``."""

    def make(scope: str, patient: str | None = None, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": SMART_CONFIG["issuer"],
            "sub": "test-user",
            "aud": overrides.get("aud", auth_server.base_url),
            "exp": int(time.time()) + overrides.get("exp_in", 300),
            "scope": scope,
        }
        if patient:
            claims["patient"] = patient
        which = overrides.get("key", "rsa")
        key = {"rsa": keys.rsa, "ec": keys.ec, "stranger": keys.stranger}[which]
        alg = "ES384" if which == "ec" else "RS256"
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])

    return make


def _get(server: FhirServerProcess, path: str, tok: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.get(f"{server.base_url}/{path}", headers=headers, timeout=30, **kw)


def _post(server: FhirServerProcess, path: str, tok: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/fhir+json"}
    return httpx.post(f"{server.base_url}/{path}", headers=headers, json=body, timeout=30)


def _observation(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "probe"},
        "subject": {"reference": f"Patient/{patient}"},
    }


def test_discovery_is_public(auth_server: FhirServerProcess) -> None:
    assert _get(auth_server, ".well-known/smart-configuration").json() == SMART_CONFIG
    cap = _get(auth_server, "metadata").json()
    service = cap["rest"][0]["security"]["service"][0]["coding"][0]
    assert service["code"] == "SMART-on-FHIR"
    assert "extension" not in cap["rest"][0]["security"]


def test_missing_token_is_401_with_challenge(auth_server: FhirServerProcess) -> None:
    r = _get(auth_server, f"Patient/{CHILD}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "http://127.0.0.1:9/fhir"}, "aud"),
        ({"exp_in": -60}, "expired"),
        ({"key": "stranger"}, "signature"),
    ],
)
def test_bad_tokens_are_401(
    auth_server: FhirServerProcess, token: Token, overrides: dict[str, Any], reason: str
) -> None:
    r = _get(auth_server, f"Patient/{CHILD}", token("user/*.cruds", **overrides))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert reason in r.headers["www-authenticate"]


@pytest.mark.parametrize("key", ["rsa", "ec"])
def test_valid_tokens_rs256_and_es384(
    auth_server: FhirServerProcess, token: Token, key: str
) -> None:
    r = _get(auth_server, f"Patient/{SIBLING}", token("user/*.cruds", key=key))
    assert r.status_code == 200
    assert r.json()["id"] == SIBLING


@pytest.mark.parametrize("scope", ["patient/Observation.rs", "patient/Observation.read"])
def test_scopes_limit_types_and_interactions(
    auth_server: FhirServerProcess, token: Token, scope: str
) -> None:
    tok = token(scope, patient=CHILD)
    assert _get(auth_server, "Observation", tok).status_code == 200
    assert _get(auth_server, f"Patient/{CHILD}", tok).status_code == 403
    created = _post(auth_server, "Observation", tok, _observation(CHILD))
    assert created.status_code == 403
    assert "insufficient_scope" in created.headers["www-authenticate"]


def test_v1_write_scope_allows_create(auth_server: FhirServerProcess, token: Token) -> None:
    tok = token("patient/Observation.write patient/Observation.read", patient=CHILD)
    created = _post(auth_server, "Observation", tok, _observation(CHILD))
    assert created.status_code == 201
    assert _get(auth_server, f"Observation/{created.json()['id']}", tok).status_code == 200


def test_patient_scope_confines_reads_and_searches(
    auth_server: FhirServerProcess, token: Token
) -> None:
    tok = token("patient/*.rs", patient=CHILD)
    assert _get(auth_server, f"Patient/{CHILD}", tok).status_code == 200
    assert _get(auth_server, f"Patient/{SIBLING}", tok).status_code == 403
    assert _get(auth_server, "Encounter/sandbox-encounter-child-9", tok).status_code == 403
    encounters = _get(auth_server, "Encounter", tok).json()
    assert {e["resource"]["id"] for e in encounters["entry"]} == {"sandbox-encounter-child-4"}
    asked_for_sibling = _get(auth_server, "Encounter", tok, params={"patient": SIBLING}).json()
    assert asked_for_sibling["total"] == 0
    patients = _get(auth_server, "Patient", tok).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == [CHILD]


def test_patient_scope_confines_writes(auth_server: FhirServerProcess, token: Token) -> None:
    tok = token("patient/Observation.crus", patient=CHILD)
    assert _post(auth_server, "Observation", tok, _observation(SIBLING)).status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _observation(CHILD), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": _observation(SIBLING),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    assert _post(auth_server, "", tok, bundle).status_code == 403
    bundle["entry"].pop()
    done = _post(auth_server, "", tok, bundle)
    assert done.status_code == 200
    assert done.json()["entry"][0]["response"]["status"] == "201"


def test_patient_scope_without_patient_claim_is_refused(
    auth_server: FhirServerProcess, token: Token
) -> None:
    assert _get(auth_server, "Observation", token("patient/Observation.rs")).status_code == 403


def test_v1_only_discovery(fhir_server_factory: FhirServerFactory, tmp_path: Path) -> None:
    smart = tmp_path / "smart.json"
    smart.write_text(json.dumps(SMART_CONFIG))
    server = fhir_server_factory(smart_config=smart, v1_only=True)
    assert _get(server, ".well-known/smart-configuration").status_code == 404
    security = _get(server, "metadata").json()["rest"][0]["security"]
    (oauth,) = security["extension"]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris == {
        "authorize": SMART_CONFIG["authorization_endpoint"],
        "token": SMART_CONFIG["token_endpoint"],
    }


def _provenance(*targets: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "recorded": "2024-05-01T10:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/sandbox-practitioner-rowan"}}],
    }


def _stored_observation(server: FhirServerProcess, token: Token, patient: str) -> str:
    """``Observation/<id>`` of an Observation stored for ``patient`` with a user/ token."""
    created = _post(server, "Observation", token("user/*.cruds"), _observation(patient))
    assert created.status_code == 201, created.text
    return f"Observation/{created.json()['id']}"


PROVENANCE_SCOPE = "patient/Observation.crus patient/Provenance.c"


def test_patient_scope_provenance_of_new_resources_in_one_transaction(
    auth_server: FhirServerProcess, token: Token
) -> None:
    tok = token(PROVENANCE_SCOPE, patient=CHILD)
    obs_url = "urn:uuid:0b6f4a34-0d8a-4f0c-9a6e-3c2a1d7e5f10"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": obs_url,
                "resource": _observation(CHILD),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": _provenance(obs_url),
                "request": {"method": "POST", "url": "Provenance"},
            },
        ],
    }
    done = _post(auth_server, "", tok, bundle)
    assert done.status_code == 200, done.text
    statuses = [e["response"]["status"] for e in done.json()["entry"]]
    assert statuses == ["201", "201"]
    obs_ref = done.json()["entry"][0]["response"]["location"].split("/_history")[0]
    prov_id = done.json()["entry"][1]["resource"]["id"]
    stored = _get(auth_server, f"Provenance/{prov_id}", token("user/*.cruds")).json()
    assert [t["reference"] for t in stored["target"]] == [obs_ref]


def test_patient_scope_provenance_of_stored_resources(
    auth_server: FhirServerProcess, token: Token
) -> None:
    tok = token(PROVENANCE_SCOPE, patient=CHILD)
    own = _stored_observation(auth_server, token, CHILD)
    theirs = _stored_observation(auth_server, token, SIBLING)
    absolute = f"{auth_server.base_url}/{own}"
    assert _post(auth_server, "Provenance", tok, _provenance(own)).status_code == 201
    assert _post(auth_server, "Provenance", tok, _provenance(absolute)).status_code == 201
    assert _post(auth_server, "Provenance", tok, _provenance(f"Patient/{CHILD}")).status_code == 201
    refused = [
        _provenance(theirs),
        _provenance(own, theirs),  # one foreign target is enough
        _provenance(f"Patient/{SIBLING}"),
        _provenance("Observation/no-such-observation"),  # cannot be placed: refused
        _provenance("Questionnaire/anything"),  # no target in the patient's compartment
    ]
    for body in refused:
        r = _post(auth_server, "Provenance", tok, body)
        assert r.status_code == 403, (body["target"], r.text)
        assert "insufficient_scope" in r.headers["www-authenticate"]


def test_patient_scope_provenance_of_another_patients_resources_in_a_transaction(
    auth_server: FhirServerProcess, token: Token
) -> None:
    tok = token(PROVENANCE_SCOPE, patient=CHILD)
    theirs = _stored_observation(auth_server, token, SIBLING)
    obs_url = "urn:uuid:6d1f0c2e-8a4b-4f5e-9c3d-2b1a0e9f8d7c"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": obs_url,
                "resource": _observation(CHILD),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": _provenance(obs_url, theirs),
                "request": {"method": "POST", "url": "Provenance"},
            },
        ],
    }
    before = _get(auth_server, "Observation", token("user/*.cruds"), params={"_summary": "count"})
    r = _post(auth_server, "", tok, bundle)
    assert r.status_code == 403, r.text
    after = _get(auth_server, "Observation", token("user/*.cruds"), params={"_summary": "count"})
    assert after.json()["total"] == before.json()["total"]  # nothing of the bundle was written
    bundle["entry"][1]["resource"] = _provenance("urn:uuid:not-in-this-bundle")
    assert _post(auth_server, "", tok, bundle).status_code == 403


def test_patient_scope_conditions_matching_another_patients_resources_are_refused(
    auth_server: FhirServerProcess, token: Token
) -> None:
    """A conditional create's fullUrl stands for what its condition matches, so a Provenance
    could otherwise reach a sibling's record through it; a conditional delete likewise."""
    identifier = "urn:ietf:rfc:3986|urn:uuid:4c8e2f1a-7b3d-4e9a-8f6c-1d2e3f4a5b6c"
    system, value = identifier.split("|")
    theirs = {**_observation(SIBLING), "identifier": [{"system": system, "value": value}]}
    created = _post(auth_server, "Observation", token("user/*.cruds"), theirs)
    assert created.status_code == 201
    obs_url = "urn:uuid:9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
    mine = {**_observation(CHILD), "identifier": theirs["identifier"]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": obs_url,
                "resource": mine,
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier={identifier}",
                },
            },
            {"resource": _provenance(obs_url), "request": {"method": "POST", "url": "Provenance"}},
        ],
    }
    tok = token(PROVENANCE_SCOPE + " patient/Observation.d", patient=CHILD)
    assert _post(auth_server, "", tok, bundle).status_code == 403
    r = httpx.delete(
        f"{auth_server.base_url}/Observation",
        params={"identifier": identifier},
        headers={"Authorization": f"Bearer {tok}"},
        timeout=30,
    )
    assert r.status_code == 403
    still = _get(auth_server, f"Observation/{created.json()['id']}", token("user/*.cruds"))
    assert still.status_code == 200
