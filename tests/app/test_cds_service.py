"""The CDS Hooks service over Flask's test client: discovery, schema, JWT authentication, CORS."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from smart_app import create_app
from smart_app.web.errors import ConfigurationError

PUBLIC_URL = "https://cds.example.org"
SERVICE_URL = f"{PUBLIC_URL}/cds-services/attach-fhir-patient-view"
EHR_ISS = "https://ehr.example.com"
EHR_ORIGIN = "https://ehr.example.com"
FHIR = "https://ehr.example.com/fhir"
HOOK = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"


def _key(kind: str) -> RSAKey | ECKey:
    key: RSAKey | ECKey = (
        RSAKey.generate_key(2048, private=True)
        if kind == "RSA"
        else ECKey.generate_key("P-384", private=True)
    )
    key.ensure_kid()
    return key


EHR_KEY = _key("RSA")
EHR_EC_KEY = _key("EC")
OTHER_KEY = _key("RSA")


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def token(
    key: RSAKey | ECKey | OctKey = EHR_KEY,
    alg: str = "RS384",
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": EHR_ISS,
        "aud": SERVICE_URL,
        "exp": now + 300,
        "iat": now,
        "jti": secrets.token_hex(16),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    head: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": key.kid}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, body, key, algorithms=[alg])


def hook_request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": HOOK,
        "context": {"userId": "Practitioner/pr-1", "patientId": "pat-1"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "pat-1", "birthDate": "1990-05-01"},
            "scores": None,
            "drafts": None,
        },
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


class Recording(httpx.BaseTransport):
    """Records outbound requests and answers none: tests assert that nothing was sent."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        raise httpx.ConnectError("no network in this test", request=request)


def make_app(tmp_path: Path, **config: Any) -> Flask:
    settings: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "DATA_DIR": str(tmp_path),
        "PUBLIC_URL": PUBLIC_URL,
        "CDS_CLIENTS_DATA": {
            "cds_clients": [
                {
                    "name": "Example EHR",
                    "iss": EHR_ISS,
                    "jwks": public_jwks(EHR_KEY, EHR_EC_KEY),
                    "fhir_servers": [FHIR],
                    "origins": [EHR_ORIGIN],
                }
            ]
        },
    }
    settings.update(config)
    return create_app(settings)


@pytest.fixture
def transport() -> Recording:
    return Recording()


@pytest.fixture
def client(tmp_path: Path, transport: Recording) -> Iterator[FlaskClient]:
    yield make_app(tmp_path, HTTP_TRANSPORT=transport).test_client()


def call(client: FlaskClient, body: Any = None, bearer: str | None = None, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}))
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return client.post(
        "/cds-services/attach-fhir-patient-view",
        json=hook_request() if body is None else body,
        headers=headers,
        **kw,
    )


def test_discovery_lists_the_patient_view_service(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    (service,) = response.json["services"]
    assert service["id"] == "attach-fhir-patient-view"
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert service["prefetch"]["scores"].startswith("Observation?patient={{context.patientId}}&")


def test_a_good_token_gets_cards(client: FlaskClient) -> None:
    response = call(client, bearer=token())
    assert response.status_code == 200, response.json
    (card,) = response.json["cards"]
    assert card["summary"] == "No attachment assessment on record"
    assert card["links"][0] == {
        "label": "Start an assessment in attach-fhir",
        "url": f"{PUBLIC_URL}/launch",
        "type": "smart",
    }


def test_the_never_done_card_offers_what_fits_the_patients_age_with_restrictions(
    client: FlaskClient,
) -> None:
    (card,) = call(client, bearer=token()).json["cards"]
    # Born 1990-05-01: an adult. The RQ is offered with its author's restriction beside it.
    assert (
        "- Experiences in Close Relationships - Revised (ECR-R): Validated for 18+ years "
        "(Fraley, Waller" in (card["detail"])
    )
    assert "- Relationship Questionnaire (RQ): Validated for 18+ years" in card["detail"]
    assert "are not appropriate for use in individual assessments" in card["detail"]
    child = hook_request()
    four = dt.date.today().replace(year=dt.date.today().year - 4, day=1).isoformat()
    child["prefetch"]["patient"]["birthDate"] = four
    (card,) = call(client, child, bearer=token()).json["cards"]
    assert "(ECR-R)" not in card["detail"]
    assert "(RQ)" not in card["detail"]


def test_es384_and_aud_as_an_array_are_accepted(client: FlaskClient) -> None:
    signed = token(EHR_EC_KEY, "ES384", aud=["https://other.example", SERVICE_URL])
    assert call(client, bearer=signed).status_code == 200


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "no bearer JWT"),
        (lambda: "not-a-jwt", "not a signed JWT"),
        (lambda: token(OTHER_KEY), "kid is not in the issuer's JWK Set"),
        (lambda: token(OTHER_KEY, header={"kid": EHR_KEY.kid}), "signature not verified"),
        (lambda: token(aud=f"{PUBLIC_URL}/cds-services"), "aud is not this CDS Service"),
        (lambda: token(aud=SERVICE_URL + "/"), "aud is not this CDS Service"),
        (lambda: token(iss="https://evil.example"), "iss is not a registered CDS Client"),
        (lambda: token(exp=int(time.time()) - 120), "expired"),
        (lambda: token(exp=None), "expired or without exp"),
        (lambda: token(exp=int(time.time()) + 7200), "more than 3600 seconds ahead"),
        (lambda: token(iat=None), "iat is missing"),
        (lambda: token(jti=None), "jti is required"),
        (lambda: token(header={"typ": "at+jwt"}), "typ must be JWT"),
        (lambda: token(header={"kid": None}), "kid is required"),
        (lambda: token(header={"jku": "https://evil.example/jwks"}), "jku is not the JWK Set"),
        (
            lambda: token(OctKey.generate_key(256), "HS256", header={"kid": EHR_KEY.kid}),
            "alg must be an asymmetric",
        ),
    ],
)
def test_calls_without_an_acceptable_jwt_get_401(
    client: FlaskClient, transport: Recording, make: Any, reason: str
) -> None:
    bearer = make()
    response = call(client, bearer=bearer)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["code"] == "invalid_token"
    assert reason in response.json["description"]
    assert transport.requests == []


def test_alg_none_is_refused(client: FlaskClient) -> None:
    import base64
    import json

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": EHR_ISS, "aud": SERVICE_URL, "exp": now + 60, "iat": now, "jti": "x1"}
    unsigned = f"{part({'alg': 'none', 'typ': 'JWT', 'kid': EHR_KEY.kid})}.{part(claims)}."
    response = call(client, bearer=unsigned)
    assert response.status_code == 401
    assert "alg must be an asymmetric" in response.json["description"]


def test_a_replayed_jti_is_refused(client: FlaskClient) -> None:
    signed = token()
    assert call(client, bearer=signed).status_code == 200
    again = call(client, bearer=signed)
    assert again.status_code == 401
    assert "jti was already used" in again.json["description"]
    # The same jti from a fresh JWT is a replay too.
    jti = secrets.token_hex(8)
    assert call(client, bearer=token(jti=jti)).status_code == 200
    assert call(client, bearer=token(jti=jti)).status_code == 401


def test_tenant_must_match_when_registered(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        CDS_CLIENTS_DATA={
            "cds_clients": [
                {"name": "T", "iss": EHR_ISS, "jwks": public_jwks(EHR_KEY), "tenant": "org-1"}
            ]
        },
    )
    test = app.test_client()
    assert call(test, bearer=token(tenant="org-2")).status_code == 401
    assert call(test, bearer=token()).status_code == 401
    assert call(test, bearer=token(tenant="org-1")).status_code == 200


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (hook_request(hookInstance=None), "'hookInstance' is a required property"),
        (hook_request(hookInstance="123"), "$.hookInstance"),
        (hook_request(hook="order-select"), "$.hook"),
        (hook_request(context={"patientId": "pat-1"}), "'userId' is a required property"),
        (hook_request(context={"userId": "Device/1", "patientId": "p"}), "$.context.userId"),
        (
            hook_request(context={"userId": "Practitioner/1", "patientId": "a/b"}),
            "$.context.patientId",
        ),
        (hook_request(prefetch={"scores": "text"}), "$.prefetch.scores"),
        (
            hook_request(
                fhirAuthorization={
                    "access_token": "secret-token-value",
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/Observation.rs",
                    "subject": "attach-fhir",
                }
            ),
            "'fhirServer' is a dependency of 'fhirAuthorization'",
        ),
        (
            hook_request(
                fhirServer=FHIR,
                fhirAuthorization={
                    "access_token": "secret-token-value",
                    "token_type": "mac",
                    "expires_in": 300,
                    "scope": "s",
                    "subject": "c",
                },
            ),
            "$.fhirAuthorization.token_type",
        ),
        ([1, 2], '$: must satisfy type "object"'),
        (
            hook_request(fhirServer=FHIR, fhirAuthorization="secret-token-value"),
            '$.fhirAuthorization: must satisfy type "object"',
        ),
    ],
)
def test_malformed_requests_get_400_naming_the_problem(
    client: FlaskClient, body: Any, where: str
) -> None:
    response = call(client, body, bearer=token())
    assert response.status_code == 400
    assert response.json["code"] == "invalid_request"
    assert where in response.json["description"]
    assert "secret-token-value" not in response.get_data(as_text=True)


def test_not_json_is_415_and_broken_json_400(client: FlaskClient) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    url = "/cds-services/attach-fhir-patient-view"
    response = client.post(url, data="x=1", headers=headers)
    assert response.status_code == 415
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    response = client.post(url, data="{not json", headers=headers)
    assert response.status_code == 400
    assert response.json["description"] == "The request body is not valid JSON."


def test_unknown_service_is_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/other", json=hook_request())
    assert response.status_code == 404
    assert response.json["code"] == "unknown_service"


def test_missing_prefetch_without_a_token_is_412(client: FlaskClient) -> None:
    body = hook_request(prefetch={"patient": hook_request()["prefetch"]["patient"]})
    response = call(client, body, bearer=token())
    assert response.status_code == 412
    assert response.json["code"] == "precondition_failed"


def test_a_token_is_never_sent_to_an_unregistered_fhir_server(
    client: FlaskClient, transport: Recording
) -> None:
    auth = {
        "access_token": "secret-token-value",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Observation.rs",
        "subject": "attach-fhir",
    }
    body = hook_request(
        prefetch=None, fhirServer="https://evil.example/fhir", fhirAuthorization=auth
    )
    response = call(client, body, bearer=token())
    assert response.status_code == 403
    assert response.json["code"] == "fhir_server_not_allowed"
    assert transport.requests == []


def test_cors_preflight_and_response_only_for_registered_origins(client: FlaskClient) -> None:
    url = "/cds-services/attach-fhir-patient-view"
    preflight = client.options(
        url,
        headers={
            "Origin": EHR_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == EHR_ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Origin" in preflight.headers.get_all("Vary")
    refused = client.options(url, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    answered = call(client, bearer=token(), headers={"Origin": EHR_ORIGIN})
    assert answered.headers["Access-Control-Allow-Origin"] == EHR_ORIGIN
    other = call(client, bearer=token(), headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in answered.headers


def test_unauthenticated_calls_only_when_configured_and_only_from_loopback(
    tmp_path: Path,
) -> None:
    closed = make_app(tmp_path / "a").test_client()
    assert call(closed).status_code == 401
    sandbox = make_app(tmp_path / "b", CDS_ALLOW_UNAUTHENTICATED=True).test_client()
    assert call(sandbox, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert call(sandbox, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401
    # A JWT that is sent is still checked.
    assert call(sandbox, bearer=token(OTHER_KEY)).status_code == 401


def test_feedback_is_accepted_with_a_jwt_for_the_feedback_url(client: FlaskClient) -> None:
    url = "/cds-services/attach-fhir-patient-view/feedback"
    body = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2025-01-01"}]}
    signed = token(aud=f"{SERVICE_URL}/feedback")
    response = client.post(url, json=body, headers={"Authorization": f"Bearer {signed}"})
    assert response.status_code == 200
    assert response.data == b""
    accepted = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "x"}]}
    response = client.post(url, json=accepted, headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 400
    assert "'acceptedSuggestions' is a required property" in response.json["description"]
    assert client.post(url, json=body).status_code == 401


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        ({"cds_clients": [{"name": "x", "iss": EHR_ISS}]}, "$.cds_clients[0]"),
        ({"cds_clients": [{"name": "x", "iss": EHR_ISS, "jwks": {"keys": []}}]}, "jwks.keys"),
        ({"clients": []}, "'cds_clients' is a required property"),
        (
            {
                "cds_clients": [
                    {"name": "a", "iss": EHR_ISS, "jwks": public_jwks(EHR_KEY)},
                    {"name": "b", "iss": EHR_ISS, "jwks": public_jwks(EHR_KEY)},
                ]
            },
            "iss listed twice",
        ),
    ],
)
def test_bad_cds_client_configuration_stops_the_app(
    tmp_path: Path, clients: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_app(tmp_path, CDS_CLIENTS_DATA=clients)
    assert message in caught.value.description
