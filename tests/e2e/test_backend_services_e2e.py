"""SMART Backend Services against the real sandbox (auth-enabled FHIR server, authlib token
endpoint): system tokens with RS384 and ES384 keys, a wrong key refused, the token used to
search, ``outbox drain --backend`` delivering to the secured server, ``bulk-score`` writing the
missing score Observations once, and ``conformance`` against a SMART 2 and a v1-only sandbox.

Expected scores are the hand-computed examples of tests/lib/scoring_examples.py; token claims
are checked against the sandbox's published JWKS and the client's own public key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from attach_fhir.io.backend_services import (
    BackendConfig,
    BackendTokenError,
    BackendTokenSource,
    backend_fhir_client,
    load_backend_config,
)
from attach_fhir.io.bulk_scoring import submission_id
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import payload
from attach_fhir.io.outbox_store import SqliteOutboxStore
from attach_fhir.scoring import score_response
from attach_fhir.writeback import (
    SUBMISSION_SYSTEM,
    WritebackContext,
    build_transaction,
    identifier_value,
)
from ehr_sandbox.runner import Sandbox
from smart_app.records.delivery import CRED_MARK
from tests.fixtures.sandbox import SandboxFactory, signing_key
from tests.lib.instrument_data import packaged
from tests.lib.scoring_examples import EXAMPLES, Example, assert_scored
from tests.lib.scoring_responses import from_answers

pytestmark = pytest.mark.e2e

PATIENT = "Patient/sandbox-adult-29"
CLINICIAN = "Practitioner/sandbox-practitioner-rowan"
AUTHORED = "2024-05-01T10:15:00+02:00"
ONE_PER_INSTRUMENT = list({e.instrument: e for e in reversed(EXAMPLES)}.values())[::-1]
BULK_SCOPES = ["system/QuestionnaireResponse.rs", "system/Observation.cs", "system/Provenance.c"]
WRITE_SCOPES = ["system/QuestionnaireResponse.c", "system/Observation.c", "system/Provenance.c"]


KEYS = {"RS384": signing_key("RS384"), "ES384": signing_key("ES384")}
CLIENTS = {"RS384": "backend-rs384", "ES384": "backend-es384", "seed": "backend-seeder"}


def registration(client_id: str, alg: str) -> dict[str, Any]:
    public = KEYS[alg].as_dict(private=False)
    public.update({"alg": alg, "use": "sig"})
    return {
        "client_id": client_id,
        "type": "confidential-asymmetric",
        "backend_service": True,
        "jwks": {"keys": [public]},
    }


def backend_clients() -> list[dict[str, Any]]:
    """The sandbox's registrations: one backend client per key, and the seeding client."""
    clients = [registration(CLIENTS[alg], alg) for alg in KEYS]
    clients.append(registration(CLIENTS["seed"], "RS384"))
    return clients


def write_key_files(folder: Path) -> Path:
    """Each client's private key as ``ALG.json`` in ``folder``, and a key nobody registered
    as ``wrong.json``."""
    for alg, key in KEYS.items():
        (folder / f"{alg}.json").write_text(json.dumps(key.as_dict(private=True)))
    wrong = RSAKey.generate_key(2048, private=True)
    (folder / "wrong.json").write_text(json.dumps(wrong.as_dict(private=True)))
    return folder


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox of its own (nothing else writes QuestionnaireResponses to it)."""
    return sandbox_factory(clients=backend_clients())


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key_files(tmp_path_factory.mktemp("backend-keys"))


def config_file(folder: Path, iss: str, client: str, key: str, alg: str, scopes: list[str]) -> Path:
    path = folder / f"backend-{uuid.uuid4().hex[:8]}.json"
    entry = {"iss": iss, "client_id": client, "private_key": f"{key}.json", "alg": alg}
    path.write_text(json.dumps([{**entry, "scopes": scopes}]))
    return path


def config(folder: Path, sandbox: Sandbox, alg: str, scopes: list[str]) -> BackendConfig:
    assert sandbox.urls is not None
    path = config_file(folder, sandbox.urls.fhir_base, CLIENTS[alg], alg, alg, scopes)
    return load_backend_config(path)[0]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attach_fhir.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=os.environ)


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_system_token_from_a_signed_assertion(alg: str, sandbox: Sandbox, keys_dir: Path) -> None:
    assert sandbox.urls is not None
    sent: list[httpx.Request] = []
    scopes = ["system/Patient.rs", "system/Observation.rs"]
    with httpx.Client(timeout=30, event_hooks={"request": [sent.append]}) as http:
        source = BackendTokenSource(config(keys_dir, sandbox, alg, scopes), http)
        token = source.access_token()
        assert source(None) == token  # cached: no second token request
        token_requests = [r for r in sent if r.url.path == "/token"]
        assert len(token_requests) == 1
        fresh = source(token)  # the server refused it: one new token
        assert fresh is not None and fresh != token
    token_requests = [r for r in sent if r.url.path == "/token"]
    assert len(token_requests) == 2
    assertions = []
    for request in token_requests:
        form = dict(httpx.QueryParams(request.content.decode()))
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == " ".join(scopes)
        assert form["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        public = KEYS[alg].as_dict(private=False)
        keys = KeySet.import_key_set({"keys": [public]})
        decoded = jwt.decode(form["client_assertion"], keys, algorithms=[alg])
        assert decoded.header["alg"] == alg
        assert decoded.header["kid"] == KEYS[alg].kid
        claims = decoded.claims
        assert claims["iss"] == claims["sub"] == CLIENTS[alg]
        assert claims["aud"] == f"{sandbox.urls.issuer}/token"
        assert 0 < claims["exp"] - time.time() <= 300
        assertions.append(claims["jti"])
    assert len(set(assertions)) == 2  # a fresh jti per assertion

    published = httpx.get(f"{sandbox.urls.issuer}/jwks.json").json()
    access = jwt.decode(token, KeySet.import_key_set(published), algorithms=["RS256"]).claims
    assert access["aud"] == sandbox.urls.fhir_base
    assert access["sub"] == CLIENTS[alg]
    assert access["scope"] == " ".join(scopes)
    assert "patient" not in access and "fhirUser" not in access


def test_the_token_is_renewed_shortly_before_it_expires(sandbox: Sandbox, keys_dir: Path) -> None:
    now = [1_000_000.0]
    sent: list[httpx.Request] = []
    with httpx.Client(timeout=30, event_hooks={"request": [sent.append]}) as http:
        scopes = ["system/Patient.rs"]
        source = BackendTokenSource(
            config(keys_dir, sandbox, "RS384", scopes), http, clock=lambda: now[0]
        )
        first = source.access_token()
        # The sandbox issues tokens for 3600 s; renewal is due 60 s before that.
        now[0] += 3539
        assert source.access_token() == first
        now[0] += 1
        assert source.access_token() != first
    assert len([r for r in sent if r.url.path == "/token"]) == 2


def test_a_key_the_ehr_does_not_know_is_refused(sandbox: Sandbox, keys_dir: Path) -> None:
    assert sandbox.urls is not None
    path = config_file(
        keys_dir, sandbox.urls.fhir_base, CLIENTS["RS384"], "wrong", "RS384", ["system/Patient.rs"]
    )
    with httpx.Client(timeout=30) as http:
        source = BackendTokenSource(load_backend_config(path)[0], http)
        with pytest.raises(BackendTokenError) as caught:
            source.access_token()
    assert caught.value.oauth_error == "invalid_client"


def with_scopes(base: BackendConfig, client_id: str, scopes: tuple[str, ...]) -> BackendConfig:
    """The same server and key, another client id and scopes (past the file's schema)."""
    return BackendConfig(base.iss, client_id, base.key, scopes)


def test_patient_scopes_are_not_granted_to_a_backend_service(
    sandbox: Sandbox, keys_dir: Path, http: httpx.Client
) -> None:
    valid = config(keys_dir, sandbox, "ES384", ["system/Patient.rs"])
    patient_scoped = with_scopes(valid, valid.client_id, ("patient/Patient.rs",))
    with pytest.raises(BackendTokenError) as caught:
        BackendTokenSource(patient_scoped, http).access_token()
    assert caught.value.oauth_error == "invalid_scope"


def test_the_system_token_searches_across_patients(
    sandbox: Sandbox, keys_dir: Path, http: httpx.Client
) -> None:
    client = backend_fhir_client(config(keys_dir, sandbox, "RS384", ["system/Patient.rs"]), http)
    seed = json.loads((sandbox.data_dir / "seed.json").read_text())
    seeded = {
        e["resource"]["id"] for e in seed["entry"] if e["resource"]["resourceType"] == "Patient"
    }
    assert {p["id"] for p in client.search("Patient")} == seeded
    assert len(seeded) >= 5
    # The same request without the token is refused: the search above used it.
    assert http.get(f"{client.base_url}/Patient").status_code == 401


# -- outbox drain ---------------------------------------------------------------------------


def app_submission(
    example: Example, sid: str, authored: str = AUTHORED
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A worked example as the app would submit it: the response and its transaction."""
    questionnaire = packaged(example.instrument)
    response = from_answers(questionnaire, example.answers)
    ctx = WritebackContext(submission_id=sid, patient=PATIENT, author=CLINICIAN, authored=authored)
    result = score_response(questionnaire, response)
    return response, build_transaction(response, questionnaire, result, ctx)


def test_outbox_drain_delivers_the_apps_items_with_the_backend_token(
    sandbox: Sandbox, keys_dir: Path, tmp_path: Path, http: httpx.Client
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    sid = f"drain-{uuid.uuid4()}"
    # Authored before the bulk-scoring test's --since, so that test does not count it.
    _, bundle = app_submission(EXAMPLES[0], sid, authored="2020-01-01T09:00:00Z")
    # Queued as the web app queues a user's submission: the base, then whose session sends it.
    target = f"{base}{CRED_MARK}{'0' * 40}"
    for folder in ("open", "backend"):
        store = SqliteOutboxStore(tmp_path / folder / "outbox.sqlite3")
        store.enqueue(sid, target, payload(bundle, "transaction"), time.time())
        store.close()
    # Without credentials the secured server refuses: the item waits (EX_TEMPFAIL).
    unauthorized = cli("outbox", "drain", "--data-dir", str(tmp_path / "open"))
    assert unauthorized.returncode == 75, unauthorized.stderr
    assert "fhir_unauthorized http=401" in unauthorized.stderr
    backend = config_file(keys_dir, base, CLIENTS["ES384"], "ES384", "ES384", WRITE_SCOPES)
    drained = cli(
        "outbox", "drain", "--data-dir", str(tmp_path / "backend"), "--backend", str(backend)
    )
    assert drained.returncode == 0, drained.stderr
    assert f"delivered {sid}" in drained.stderr
    reader = backend_fhir_client(
        config(keys_dir, sandbox, "RS384", ["system/QuestionnaireResponse.rs"]), http
    )
    found = list(
        reader.search(
            "QuestionnaireResponse",
            {"identifier": f"{SUBMISSION_SYSTEM}|{identifier_value(sid, 'QuestionnaireResponse')}"},
        )
    )
    assert len(found) == 1
    assert found[0]["subject"] == {"reference": PATIENT}


# -- bulk scoring ---------------------------------------------------------------------------


def observations_by_response(client: FhirClient, qr_id: str) -> dict[str, dict[str, Any]]:
    found = client.search("Observation", {"derived-from": f"QuestionnaireResponse/{qr_id}"})
    return {o["code"]["coding"][0]["code"]: o for o in found}


def test_bulk_score_writes_the_missing_observations_once(
    sandbox: Sandbox, keys_dir: Path, http: httpx.Client
) -> None:
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    rs384 = config(keys_dir, sandbox, "RS384", ["system/*.cruds"])
    seeder = backend_fhir_client(with_scopes(rs384, CLIENTS["seed"], ("system/*.cruds",)), http)
    seeded: dict[str, Example] = {}
    for example in ONE_PER_INSTRUMENT:
        response, _ = app_submission(example, f"seed-{uuid.uuid4()}")
        response.update(subject={"reference": PATIENT}, authored=AUTHORED)
        response["author"] = {"reference": CLINICIAN}
        seeded[seeder.create(response)["id"]] = example
    ecr_r = ONE_PER_INSTRUMENT[0]
    draft, _ = app_submission(ecr_r, "draft")
    seeder.create({**draft, "status": "in-progress", "subject": {"reference": PATIENT}})
    broken, _ = app_submission(ecr_r, "broken")
    broken.update(subject={"reference": PATIENT}, authored=AUTHORED)
    broken["item"] = [*broken["item"], {"linkId": "no-such-item", "answer": [{"valueInteger": 1}]}]
    broken_id = seeder.create(broken)["id"]
    # A submission the app already wrote, with its score Observations: nothing to add.
    _, written = app_submission(ecr_r, f"app-{uuid.uuid4()}")
    location = seeder.transaction(written)["entry"][0]["response"]["location"]
    app_qr = location.split("/_history/")[0].split("/")[-1]

    backend = config_file(keys_dir, base, CLIENTS["RS384"], "RS384", "RS384", BULK_SCOPES)
    since = ("--since", "2024-01-01")
    dry = cli("bulk-score", "--backend", str(backend), "--iss", base, *since, "--json")
    assert dry.returncode == 1, dry.stderr  # one response cannot be scored
    assert "done: 7 responses" in dry.stderr
    report = json.loads(dry.stdout)
    assert (report["found"], report["scored"], report["already_scored"]) == (7, 6, 1)
    assert (report["missing"], report["written"]) == (5, 0)
    assert report["problems"] == [
        {
            "response": f"QuestionnaireResponse/{broken_id}",
            "code": "unknown-link-id",
            "path": "QuestionnaireResponse.item[36]",
        }
    ]
    assert all(observations_by_response(seeder, qr_id) == {} for qr_id in seeded)

    run = cli("bulk-score", "--backend", str(backend), "--iss", base, *since, "--write", "--json")
    report = json.loads(run.stdout)
    expected_count = sum(len(e.expected) for e in seeded.values())
    assert (report["written"], report["observations_written"]) == (5, expected_count)
    for qr_id, example in seeded.items():
        observations = observations_by_response(seeder, qr_id)
        assert set(observations) == set(example.expected)
        for code, obs in observations.items():
            assert_scored(obs, example.expected[code])
            assert obs["subject"] == {"reference": PATIENT}
            assert obs["identifier"][0]["value"] == identifier_value(submission_id(qr_id), code)
    assert len(observations_by_response(seeder, app_qr)) == 2  # untouched

    total = seeder.request("GET", "Observation", params={"_summary": "count"}).json()["total"]
    again = cli("bulk-score", "--backend", str(backend), "--iss", base, *since, "--write", "--json")
    rerun = json.loads(again.stdout)
    assert (rerun["already_scored"], rerun["missing"], rerun["written"]) == (6, 0, 0)
    after = seeder.request("GET", "Observation", params={"_summary": "count"}).json()["total"]
    assert after == total


# -- conformance ----------------------------------------------------------------------------


def test_conformance_of_the_sandbox(sandbox: Sandbox) -> None:
    assert sandbox.urls is not None
    run = cli("conformance", sandbox.urls.fhir_base, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    supports = report["supports"]
    # What ehr_sandbox/authz/discovery.py publishes and the FHIR server's CapabilityStatement.
    assert supports["discovery"] == ".well-known/smart-configuration"
    assert supports["launch modes"] == "EHR, standalone"
    assert supports["PKCE"] == "S256"
    assert supports["scope versions"] == "v1, v2"
    assert supports["refresh"] == "yes"
    assert supports["openid / fhirUser"] == "yes"
    assert supports["backend services"] == "yes"
    assert supports["FHIR version"].startswith("4.0.1")
    assert (supports["transaction"], supports["batch"]) == ("yes", "yes")
    assert report["resources"]["QuestionnaireResponse"][:5] == [
        "read",
        "vread",
        "search-type",
        "create",
        "update",
    ]
    assert report["adaptations"][0] == "transaction: each submission is written in one transaction"
    assert not any("v1 scopes" in line for line in report["adaptations"])
    text = cli("conformance", sandbox.urls.fhir_base)
    assert "  PKCE                   S256" in text.stdout.splitlines()


def test_conformance_of_a_v1_only_sandbox(sandbox_factory: SandboxFactory) -> None:
    v1 = sandbox_factory(v1_only=True)
    assert v1.urls is not None
    run = cli("conformance", v1.urls.fhir_base, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["supports"]["discovery"] == "CapabilityStatement oauth-uris (no .well-known)"
    assert "PKCE" not in report["supports"]
    assert (
        "SMART v1 scopes only: the app requests v1 scopes (.read/.write) instead of v2"
        in report["adaptations"]
    )
    assert "SMART oauth-uris declared: authorize, token" in report["adaptations"]
