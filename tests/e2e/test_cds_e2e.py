"""CDS Hooks against the real sandbox: the service fetches what was not prefetched from the
sandbox FHIR server with the token the EHR supplied, and checks the EHR's JWT against the
sandbox EHR's published JWKS (over HTTP); the sandbox EHR's record page calls the app's
service and shows the cards, whose SMART link launches the app."""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from attach_fhir.io.fhir_client import FhirClient
from ehr_sandbox.authz import create_authz_app
from ehr_sandbox.authz.cds_client import CardView, LinkView
from ehr_sandbox.authz.directory import Person
from ehr_sandbox.runner import Sandbox, ServerThread
from smart_app import create_app
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.smart_app_server import RecordingTransport

pytestmark = pytest.mark.e2e

SCORES = "http://attach-fhir.org/fhir/CodeSystem/attach-scores"
PATTERNS = "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern"
Q = "http://attach-fhir.org/fhir/Questionnaire"
PATIENT = "sandbox-adult-29"
OTHER = "sandbox-parent-41"
APP_URL = "http://localhost:5999"
SERVICE_URL = f"{APP_URL}/cds-services/attach-fhir-patient-view"
READ_SCOPE = "patient/Patient.rs patient/Observation.rs patient/QuestionnaireResponse.rs"


def access_token(sandbox: Sandbox, scope: str, patient: str | None = None, ttl: int = 300) -> str:
    """An access token of the sandbox's authorization server (what the EHR hands the service)."""
    assert sandbox.urls is not None
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": sandbox.urls.issuer,
        "aud": sandbox.urls.fhir_base,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
        "scope": scope,
        "client_id": "attach-fhir-cds",
        "sub": "Practitioner/sandbox-practitioner-rowan",
    }
    if patient:
        claims["patient"] = patient
    key = sandbox.state.key
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key)


def cds_jwt(sandbox: Sandbox) -> str:
    """The sandbox EHR's CDS Hooks JWT for the service URL, signed with its published key."""
    assert sandbox.urls is not None
    now = int(time.time())
    claims = {
        "iss": sandbox.urls.issuer,
        "aud": SERVICE_URL,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_hex(16),
    }
    key = sandbox.state.key
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)


def score(code: str, value: float | str, when: str, qr: str, patient: str) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": SCORES, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{qr}"}],
    }
    if isinstance(value, str):
        obs["valueCodeableConcept"] = {"coding": [{"system": PATTERNS, "code": value}]}
    else:
        obs["valueQuantity"] = {"value": value, "unit": "{score}"}
    return obs


def response(fhir: FhirClient, instrument: str, status: str, when: str, patient: str) -> str:
    written = fhir.create(
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": f"{Q}/{instrument}|1.0.0",
            "status": status,
            "subject": {"reference": f"Patient/{patient}"},
            "authored": when,
        }
    )
    return str(written["id"])


@pytest.fixture(scope="module")
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox of its own (with the app) and this module's records on its FHIR server."""
    box = sandbox_factory(with_app=True)
    assert box.urls is not None
    writer = access_token(box, "user/Observation.cruds user/QuestionnaireResponse.cruds")
    with httpx.Client(timeout=15) as http:
        fhir = FhirClient(box.urls.fhir_base, http, token_source=lambda _r: writer)
        old = response(fhir, "ecr-r", "completed", "2025-02-01T09:00:00Z", PATIENT)
        new = response(fhir, "ecr-r", "completed", "2025-06-15T14:30:00Z", PATIENT)
        ecr = response(fhir, "ecr", "completed", "2025-03-03T10:00:00Z", PATIENT)
        other = response(fhir, "ecr-r", "completed", "2025-09-01T10:00:00Z", OTHER)
        response(fhir, "rq", "in-progress", "2025-07-20T16:00:00Z", PATIENT)
        # ECR-R: 75/18 and 55.5/18 (newest), 6.0 and 5.0 (older); ECR: 2.5, 5.25, fearful.
        for resource in (
            score("ecr-r-anxiety", 6.0, "2025-02-01T09:00:00Z", old, PATIENT),
            score("ecr-r-avoidance", 5.0, "2025-02-01T09:00:00Z", old, PATIENT),
            score("ecr-r-anxiety", 75 / 18, "2025-06-15T14:30:00Z", new, PATIENT),
            score("ecr-r-avoidance", 55.5 / 18, "2025-06-15T14:30:00Z", new, PATIENT),
            score("ecr-anxiety", 2.5, "2025-03-03T10:00:00Z", ecr, PATIENT),
            score("ecr-avoidance", 5.25, "2025-03-03T10:00:00Z", ecr, PATIENT),
            score("ecr-category", "fearful", "2025-03-03T10:00:00Z", ecr, PATIENT),
            # Another patient's newer ECR-R must never show.
            score("ecr-r-anxiety", 1.0, "2025-09-01T10:00:00Z", other, OTHER),
            score("ecr-r-avoidance", 1.0, "2025-09-01T10:00:00Z", other, OTHER),
        ):
            fhir.create(resource)
    return box


@pytest.fixture
def transport() -> Iterator[RecordingTransport]:
    recording = RecordingTransport()
    yield recording
    recording.shutdown()


@pytest.fixture
def service(sandbox: Sandbox, transport: RecordingTransport, tmp_path: Path) -> FlaskClient:
    """The app with the sandbox EHR registered as a CDS Client (keys from its jwks URL)."""
    assert sandbox.urls is not None
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATA_DIR": str(tmp_path),
            "PUBLIC_URL": APP_URL,
            "HTTP_TRANSPORT": transport,
            "CDS_CLIENTS_DATA": {
                "cds_clients": [
                    {
                        "name": "sandbox EHR",
                        "iss": sandbox.urls.issuer,
                        "jwks_url": f"{sandbox.urls.issuer}/jwks.json",
                        "fhir_servers": [sandbox.urls.fhir_base],
                        "allow_addresses": ["loopback"],
                    }
                ]
            },
        }
    )
    return app.test_client()


def hook(sandbox: Sandbox, token: str, prefetch: dict[str, Any] | None = None) -> dict[str, Any]:
    assert sandbox.urls is not None
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "0b8a5c43-2b5b-4c57-9d3c-0b3f9bd7f0a1",
        "fhirServer": sandbox.urls.fhir_base,
        "fhirAuthorization": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": READ_SCOPE,
            "subject": "attach-fhir-cds",
        },
        "context": {"userId": "Practitioner/sandbox-practitioner-rowan", "patientId": PATIENT},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def post(service: FlaskClient, sandbox: Sandbox, body: dict[str, Any]) -> Any:
    return service.post(
        "/cds-services/attach-fhir-patient-view",
        json=body,
        headers={"Authorization": f"Bearer {cds_jwt(sandbox)}"},
    )


def test_without_prefetch_the_service_reads_the_record_with_the_supplied_token(
    sandbox: Sandbox, service: FlaskClient, transport: RecordingTransport
) -> None:
    assert sandbox.urls is not None
    token = access_token(sandbox, READ_SCOPE, patient=PATIENT)
    answer = post(service, sandbox, hook(sandbox, token))
    assert answer.status_code == 200, answer.json
    summaries = [c["summary"] for c in answer.json["cards"]]
    assert summaries == [
        # 75/18 = 4.1666... and 55.5/18 = 3.0833...: the newest ECR-R, not the 6.0/5.0 one.
        "Latest ECR-R (2025-06-15): attachment anxiety 4.17, attachment avoidance 3.08",
        "Latest ECR (2025-03-03): attachment anxiety 2.50, attachment avoidance 5.25, "
        "attachment category Fearful",
        "Unfinished RQ saved 2025-07-20",
    ]
    launch = f"{APP_URL}/launch"
    assert {c["links"][0]["url"] for c in answer.json["cards"]} == {launch}
    assert {c["links"][0]["type"] for c in answer.json["cards"]} == {"smart"}
    # The JWKS came from the EHR, everything else from the FHIR server named in the request.
    urls = [url for _method, url in transport.requests]
    assert urls[0] == f"{sandbox.urls.issuer}/jwks.json"
    assert all(u.startswith(sandbox.urls.fhir_base + "/") for u in urls[1:])
    paths = sorted(httpx.URL(u).path.rsplit("/", 1)[-1] for u in urls[1:])
    assert paths == ["Observation", "QuestionnaireResponse", PATIENT]


def test_only_missing_keys_are_fetched(
    sandbox: Sandbox, service: FlaskClient, transport: RecordingTransport
) -> None:
    token = access_token(sandbox, READ_SCOPE, patient=PATIENT)
    prefetch = {"patient": {"resourceType": "Patient", "id": PATIENT, "birthDate": "1996-01-01"}}
    answer = post(service, sandbox, hook(sandbox, token, prefetch))
    assert answer.status_code == 200
    fetched = [httpx.URL(u).path.rsplit("/", 1)[-1] for _m, u in transport.requests[1:]]
    assert sorted(fetched) == ["Observation", "QuestionnaireResponse"]


def test_a_token_the_fhir_server_refuses_gives_412(sandbox: Sandbox, service: FlaskClient) -> None:
    no_observations = access_token(sandbox, "patient/Patient.rs", patient=PATIENT)
    answer = post(service, sandbox, hook(sandbox, no_observations))
    assert answer.status_code == 412
    assert answer.json["code"] == "precondition_failed"
    expired = access_token(sandbox, READ_SCOPE, patient=PATIENT, ttl=-60)
    answer = post(service, sandbox, hook(sandbox, expired))
    assert answer.status_code == 412
    assert expired not in answer.get_data(as_text=True)


def test_prefetch_in_the_request_is_used_without_any_fhir_call(
    sandbox: Sandbox, service: FlaskClient, transport: RecordingTransport
) -> None:
    prefetch: dict[str, Any] = {"patient": None, "scores": None, "drafts": None}
    answer = post(service, sandbox, hook(sandbox, "unused-token", prefetch))
    assert answer.status_code == 200
    assert [c["summary"] for c in answer.json["cards"]] == ["No attachment assessment on record"]
    assert len(transport.requests) == 1  # the EHR's JWKS only


def test_the_ehr_record_page_shows_the_cards_and_launches_the_app(sandbox: Sandbox) -> None:
    assert sandbox.urls is not None and sandbox.urls.app is not None
    issuer = sandbox.urls.issuer
    with httpx.Client(timeout=30) as http:
        opened = http.get(
            f"{issuer}/ehr/record",
            params={"patient": PATIENT, "practitioner": "sandbox-practitioner-rowan"},
        )
        assert opened.status_code == 303
        page = http.get(f"{issuer}{opened.headers['location']}")
        assert page.status_code == 200
        summaries = re.findall(r'<h3 class="summary">([^<]*)</h3>', page.text)
        assert [html.unescape(s) for s in summaries] == [
            "Latest ECR-R (2025-06-15): attachment anxiety 4.17, attachment avoidance 3.08",
            "Latest ECR (2025-03-03): attachment anxiety 2.50, attachment avoidance 5.25, "
            "attachment category Fearful",
            "Unfinished RQ saved 2025-07-20",
        ]
        assert "cds-problem" not in page.text
        forms = re.findall(
            r'<form method="post" action="/ehr/launch" class="smart-link">(.*?)</form>',
            page.text,
            re.S,
        )
        assert len(forms) == 3
        fields = dict(re.findall(r'name="([a-z]+)" value="([^"]*)"', forms[0]))
        assert fields == {
            "app": "attach-fhir",
            "patient": PATIENT,
            "practitioner": "sandbox-practitioner-rowan",
            "encounter": "latest",
            "mode": "iframe",
        }
        launched = http.post(
            f"{issuer}/ehr/launch", data=fields, headers={"Accept": "application/json"}
        )
        assert launched.status_code == 200
        launch_url = launched.json()["launch_url"]
        assert launch_url.startswith(f"{sandbox.urls.app}/launch?")
        query = parse_qs(urlsplit(launch_url).query)
        assert query["iss"] == [sandbox.urls.fhir_base]
        assert launched.json()["patient"] == PATIENT


def test_card_text_is_inert_on_the_ehr_page() -> None:
    hostile = CardView(
        service="<b>svc</b>",
        summary="<script>alert(1)</script>",
        indicator="info",
        detail='<img src=x onerror="alert(2)">',
        source_label="<i>src</i>",
        source_url="javascript:alert(3)",
        links=(LinkView("<u>go</u>", "javascript:alert(4)", "absolute"),),
    )
    authz_app = create_authz_app(
        {"issuer": "http://127.0.0.1:1", "fhir_base": "http://127.0.0.1:2"}
    )
    try:
        with authz_app.test_request_context():
            person = Person(ref=f"Patient/{PATIENT}", name="A <b>name</b>")
            user = Person(ref="Practitioner/x", name="Dr")
            page = render_template(
                "ehr/patient.html", patient=person, practitioner=user, cards=[hostile], problems=[]
            )
    finally:
        authz_app.extensions["smart_authz"].server.http.close()
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page


def test_a_rotated_key_is_fetched_again_from_the_jwks_url(tmp_path: Path) -> None:
    """The EHR publishes a new key: the cached JWK Set is fetched again once, over HTTP."""
    old, new, stranger = (RSAKey.generate_key(2048, private=True) for _ in range(3))
    for key in (old, new, stranger):
        key.ensure_kid()
    published = {"keys": [old.as_dict(private=False)]}
    fetches: list[str] = []
    jwks_app = Flask("ehr-jwks")

    @jwks_app.get("/jwks.json")
    def jwks() -> dict[str, Any]:
        fetches.append("jwks")
        return published

    server = ServerThread(0)
    server.start(jwks_app)
    try:
        iss = f"http://127.0.0.1:{server.port}"
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test",
                "DATA_DIR": str(tmp_path),
                "PUBLIC_URL": APP_URL,
                "CDS_CLIENTS_DATA": {
                    "cds_clients": [
                        {
                            "name": "rotating EHR",
                            "iss": iss,
                            "jwks_url": f"{iss}/jwks.json",
                            "allow_addresses": ["loopback"],
                        }
                    ]
                },
            }
        )
        client = app.test_client()

        def call(key: RSAKey, **header: str) -> int:
            now = int(time.time())
            claims = {
                "iss": iss,
                "aud": SERVICE_URL,
                "iat": now,
                "exp": now + 60,
                "jti": secrets.token_hex(8),
            }
            head = {"alg": "RS384", "kid": key.kid, "typ": "JWT", **header}
            signed = jwt.encode(head, claims, key, algorithms=["RS384"])
            body = {
                "hook": "patient-view",
                "hookInstance": "0b8a5c43-2b5b-4c57-9d3c-0b3f9bd7f0a1",
                "context": {"userId": "Practitioner/p", "patientId": PATIENT},
                "prefetch": {"patient": None, "scores": None, "drafts": None},
            }
            answer = client.post(
                "/cds-services/attach-fhir-patient-view",
                json=body,
                headers={"Authorization": f"Bearer {signed}"},
            )
            return answer.status_code

        assert call(old) == 200
        assert call(old, jku=f"{iss}/jwks.json") == 200
        assert fetches == ["jwks"]  # cached
        published = {"keys": [new.as_dict(private=False)]}
        assert call(new) == 200
        assert fetches == ["jwks", "jwks"]  # fetched again for the unknown kid
        assert call(stranger) == 401
        assert call(old) == 401  # the old key is gone from the set
    finally:
        server.stop()
