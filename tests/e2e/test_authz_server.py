"""The sandbox's SMART authorization server, driven over real HTTP with authlib's client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from flask import Flask
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet, RSAKey

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox, ServerThread
from tests.fixtures.sandbox import SANDBOX_CLIENTS, AuthzDriver, SandboxClient

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ADULT_LATEST_ENCOUNTER = "sandbox-encounter-adult-29"  # today's visit; the intake was 28 days ago
ADOLESCENT = "sandbox-adolescent-15"
ROWAN = "sandbox-practitioner-rowan"
EHR_SCOPE = "launch openid fhirUser patient/Patient.rs patient/Observation.rs offline_access"
RS384 = SANDBOX_CLIENTS["rs384"]
PUBLIC = SANDBOX_CLIENTS["public"]
SYMMETRIC = SANDBOX_CLIENTS["symmetric"]


def published_keys(authz_server: Sandbox) -> KeySet:
    assert authz_server.urls is not None
    return KeySet.import_key_set(httpx.get(f"{authz_server.urls.issuer}/jwks.json").json())


def ehr_launch_token(
    driver: AuthzDriver, client: SandboxClient = RS384, scope: str = EHR_SCOPE, **extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """EHR launch of the adult as Dr Rowan: (token response, callback params)."""
    launch = driver.launch(client, ADULT, ROWAN)
    oauth = driver.oauth(client, scope)
    verifier = generate_token(48)
    extra.setdefault("nonce", generate_token(20))
    callback = driver.authorize(oauth, verifier, launch=launch["launch"], **extra)
    token = oauth.fetch_token(driver.token_url, code=callback.code, code_verifier=verifier)
    return dict(token), callback.params


def test_ehr_launch_issues_context_tokens_and_id_token(
    authz_driver: AuthzDriver, authz_server: Sandbox
) -> None:
    urls = authz_driver.urls
    nonce = generate_token(20)
    token, callback = ehr_launch_token(authz_driver, state="st-123", nonce=nonce)

    assert callback["state"] == "st-123"
    assert callback["iss"] == urls.issuer
    assert token["token_type"] == "Bearer"
    assert token["scope"] == EHR_SCOPE
    assert token["expires_in"] == 3600
    assert token["patient"] == ADULT
    assert token["encounter"] == ADULT_LATEST_ENCOUNTER
    assert token["need_patient_banner"] is False  # embedded: the EHR shows its own banner
    assert token["smart_style_url"] == f"{urls.issuer}/smart-style.json"
    assert token["refresh_token"]

    keys = published_keys(authz_server)
    access = jwt.decode(token["access_token"], keys, algorithms=["RS256"]).claims
    assert access["aud"] == urls.fhir_base
    assert access["iss"] == urls.issuer
    assert access["patient"] == ADULT
    assert access["scope"] == EHR_SCOPE
    assert access["client_id"] == RS384.client_id
    assert access["exp"] - access["iat"] == 3600

    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert id_token["iss"] == urls.issuer
    assert id_token["aud"] == RS384.client_id
    assert id_token["nonce"] == nonce
    assert id_token["fhirUser"] == f"{urls.fhir_base}/Practitioner/{ROWAN}"
    assert id_token["sub"] == f"Practitioner/{ROWAN}"
    assert id_token["exp"] > time.time()


def test_an_ehr_launch_names_its_tasks_in_fhir_context(authz_driver: AuthzDriver) -> None:
    named = ("Task/t-1", "Appointment/a.2")
    launch = authz_driver.launch(PUBLIC, ADULT, ROWAN, fhir_context=named)
    assert launch["fhir_context"] == list(named)
    oauth = authz_driver.oauth(PUBLIC, "launch patient/Task.rs")
    verifier = generate_token(48)
    callback = authz_driver.authorize(oauth, verifier, launch=launch["launch"])
    token = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert token["fhirContext"] == [{"reference": "Task/t-1"}, {"reference": "Appointment/a.2"}]
    assert "fhirContext" not in ehr_launch_token(authz_driver)[0]  # none named, none sent

    too_many = " ".join(f"Task/t{n}" for n in range(21))
    for bad in ("Patient/p1", "Encounter/e1", "Task/t1/_history/1", "http://x.example/Task/t1",
                "Task/" + "a" * 65, "task/t1", too_many):  # fmt: skip
        refused = authz_driver.http.post(
            f"{authz_driver.urls.issuer}/ehr/launch",
            data={"app": PUBLIC.client_id, "patient": ADULT, "practitioner": ROWAN,
                  "fhir_context": bad},
        )  # fmt: skip
        assert refused.status_code == 400, bad


def test_id_token_does_not_verify_with_another_key(authz_driver: AuthzDriver) -> None:
    token, _ = ehr_launch_token(authz_driver)
    kid = jwt.decode(token["id_token"], published_keys_for(authz_driver)).header["kid"]
    stranger = KeySet([RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)])
    with pytest.raises(BadSignatureError):
        jwt.decode(token["id_token"], stranger, algorithms=["RS256"])


def test_window_launch_asks_the_app_for_a_banner(authz_driver: AuthzDriver) -> None:
    launch = authz_driver.launch(RS384, ADULT, ROWAN, mode="window", encounter="none")
    oauth = authz_driver.oauth(RS384, "launch patient/Patient.rs")
    verifier = generate_token(48)
    callback = authz_driver.authorize(oauth, verifier, launch=launch["launch"])
    token = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert token["need_patient_banner"] is True
    assert token["patient"] == ADULT
    assert "encounter" not in token
    assert "refresh_token" not in token  # neither offline_access nor online_access asked


def test_standalone_patient_signs_in_as_themselves(authz_driver: AuthzDriver) -> None:
    scope = "launch/patient openid fhirUser patient/*.rs online_access"
    oauth = authz_driver.oauth(PUBLIC, scope)
    verifier = generate_token(48)
    callback = authz_driver.authorize(oauth, verifier, sign_in_as=f"Patient/{ADOLESCENT}")
    token = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert token["patient"] == ADOLESCENT
    assert token["need_patient_banner"] is True
    assert token["scope"] == scope
    claims = jwt.decode(token["id_token"], published_keys_for(authz_driver)).claims
    assert claims["fhirUser"] == f"{authz_driver.urls.fhir_base}/Patient/{ADOLESCENT}"


def published_keys_for(driver: AuthzDriver) -> KeySet:
    return KeySet.import_key_set(driver.http.get(f"{driver.urls.issuer}/jwks.json").json())


def test_standalone_practitioner_picks_a_patient(authz_driver: AuthzDriver) -> None:
    scope = "launch/patient openid fhirUser user/Patient.rs patient/Observation.rs"
    oauth = authz_driver.oauth(SYMMETRIC, scope)
    verifier = generate_token(48)
    callback = authz_driver.authorize(
        oauth, verifier, sign_in_as=f"Practitioner/{ROWAN}", patient=ADULT
    )
    token = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert token["patient"] == ADULT
    claims = jwt.decode(token["access_token"], published_keys_for(authz_driver)).claims
    assert claims["sub"] == f"Practitioner/{ROWAN}"
    assert claims["patient"] == ADULT


def test_without_a_standalone_picker_a_practitioner_gets_no_patient(
    authz_driver: AuthzDriver, authz_knobs: Knobs
) -> None:
    authz_knobs.update({"standalone_patient_picker": False})
    scope = "launch/patient openid fhirUser user/Patient.rs user/Observation.rs"
    oauth = authz_driver.oauth(SYMMETRIC, scope)
    verifier = generate_token(48)
    # No patient given: the driver fails if the sandbox shows its picker.
    callback = authz_driver.authorize(oauth, verifier, sign_in_as=f"Practitioner/{ROWAN}")
    token = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert "patient" not in token and "need_patient_banner" not in token
    assert token["scope"] == "openid fhirUser user/Patient.rs user/Observation.rs"
    claims = jwt.decode(token["access_token"], published_keys_for(authz_driver)).claims
    assert claims["sub"] == f"Practitioner/{ROWAN}" and "patient" not in claims


def test_wrong_pkce_verifier_is_rejected(authz_driver: AuthzDriver) -> None:
    launch = authz_driver.launch(PUBLIC, ADULT, ROWAN)
    oauth = authz_driver.oauth(PUBLIC, EHR_SCOPE)
    callback = authz_driver.authorize(oauth, generate_token(48), launch=launch["launch"])
    with pytest.raises(OAuthError) as caught:
        oauth.fetch_token(
            authz_driver.token_url, code=callback.code, code_verifier=generate_token(48)
        )
    assert caught.value.error == "invalid_grant"


def test_authorization_without_pkce_is_refused(authz_driver: AuthzDriver) -> None:
    launch = authz_driver.launch(SYMMETRIC, ADULT, ROWAN)
    response = authz_driver.http.get(
        f"{authz_driver.urls.issuer}/authorize",
        params={
            "response_type": "code",
            "client_id": SYMMETRIC.client_id,
            "redirect_uri": "http://localhost:1/callback",
            "scope": "launch patient/Patient.rs",
            "state": "s1",
            "aud": authz_driver.urls.fhir_base,
            "launch": launch["launch"],
        },
    )
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.params["error"] == "invalid_request"
    assert location.params["state"] == "s1"
    assert location.params["iss"] == authz_driver.urls.issuer
    assert "code" not in location.params


def test_wrong_aud_is_refused(authz_driver: AuthzDriver) -> None:
    launch = authz_driver.launch(PUBLIC, ADULT, ROWAN)
    oauth = authz_driver.oauth(PUBLIC, EHR_SCOPE)
    url, _ = oauth.create_authorization_url(
        f"{authz_driver.urls.issuer}/authorize",
        code_verifier=generate_token(48),
        aud="http://127.0.0.1:1/fhir",
        launch=launch["launch"],
    )
    response = authz_driver.http.get(url)
    assert response.status_code == 302
    assert httpx.URL(response.headers["location"]).params["error"] == "invalid_request"


def test_unknown_client_gets_an_error_page_not_a_redirect(authz_driver: AuthzDriver) -> None:
    response = authz_driver.http.get(
        f"{authz_driver.urls.issuer}/authorize",
        params={"response_type": "code", "client_id": "nobody", "redirect_uri": "http://evil/"},
    )
    assert response.status_code == 400
    assert "invalid_client" in response.text


def test_replayed_code_is_rejected_and_revokes_its_refresh_token(
    authz_driver: AuthzDriver,
) -> None:
    launch = authz_driver.launch(SYMMETRIC, ADULT, ROWAN)
    oauth = authz_driver.oauth(SYMMETRIC, EHR_SCOPE)
    verifier = generate_token(48)
    callback = authz_driver.authorize(oauth, verifier, launch=launch["launch"])
    first = oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    with pytest.raises(OAuthError) as replay:
        oauth.fetch_token(authz_driver.token_url, code=callback.code, code_verifier=verifier)
    assert replay.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as refresh:
        oauth.refresh_token(authz_driver.token_url, refresh_token=first["refresh_token"])
    assert refresh.value.error == "invalid_grant"


def test_refresh_rotates_the_refresh_token(authz_driver: AuthzDriver) -> None:
    token, _ = ehr_launch_token(authz_driver, client=SYMMETRIC)
    oauth = authz_driver.oauth(SYMMETRIC, EHR_SCOPE)
    renewed = oauth.refresh_token(authz_driver.token_url, refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"]
    assert renewed["access_token"] != token["access_token"]
    assert renewed["patient"] == ADULT
    assert renewed["scope"] == EHR_SCOPE
    with pytest.raises(OAuthError) as old:
        oauth.refresh_token(authz_driver.token_url, refresh_token=token["refresh_token"])
    assert old.value.error == "invalid_grant"
    again = oauth.refresh_token(authz_driver.token_url, refresh_token=renewed["refresh_token"])
    assert again["refresh_token"] not in (renewed["refresh_token"], token["refresh_token"])


def test_failing_refresh_knob(authz_driver: AuthzDriver, authz_knobs: Knobs) -> None:
    token, _ = ehr_launch_token(authz_driver, client=SYMMETRIC)
    authz_driver.http.post(
        f"{authz_driver.urls.issuer}/ehr/settings", json={"refresh_fails": True}
    ).raise_for_status()
    oauth = authz_driver.oauth(SYMMETRIC, EHR_SCOPE)
    with pytest.raises(OAuthError) as caught:
        oauth.refresh_token(authz_driver.token_url, refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"


def test_narrow_scope_knob_grants_a_subset(authz_driver: AuthzDriver, authz_knobs: Knobs) -> None:
    authz_knobs.update({"grant_only": ["patient/Patient.rs"]})
    token, _ = ehr_launch_token(authz_driver)
    assert token["scope"] == "launch openid fhirUser patient/Patient.rs offline_access"
    claims = jwt.decode(token["access_token"], published_keys_for(authz_driver)).claims
    assert claims["scope"] == token["scope"]


def test_short_token_lifetime_knob(authz_driver: AuthzDriver, authz_knobs: Knobs) -> None:
    authz_knobs.update({"access_token_lifetime": 5})
    token, _ = ehr_launch_token(authz_driver)
    assert token["expires_in"] == 5
    claims = jwt.decode(token["access_token"], published_keys_for(authz_driver)).claims
    assert claims["exp"] - claims["iat"] == 5


def test_approval_page_can_deny(authz_driver: AuthzDriver, authz_knobs: Knobs) -> None:
    authz_knobs.update({"auto_approve": False})
    launch = authz_driver.launch(PUBLIC, ADULT, ROWAN)
    oauth = authz_driver.oauth(PUBLIC, EHR_SCOPE)
    callback = authz_driver.authorize(
        oauth, generate_token(48), launch=launch["launch"], decision="deny", state="s9"
    )
    assert callback.params == {
        "error": "access_denied",
        "state": "s9",
        "iss": authz_driver.urls.issuer,
    }


@pytest.mark.parametrize("name", ["rs384", "es384"])
def test_private_key_jwt_is_accepted(authz_driver: AuthzDriver, name: str) -> None:
    token, _ = ehr_launch_token(authz_driver, client=SANDBOX_CLIENTS[name])
    assert token["patient"] == ADULT


def exchange_with_assertion(driver: AuthzDriver, assertion: str) -> httpx.Response:
    """A code exchange for RS384's client authenticated by the given assertion."""
    launch = driver.launch(RS384, ADULT, ROWAN)
    oauth = driver.oauth(RS384, "launch patient/Patient.rs")
    verifier = generate_token(48)
    callback = driver.authorize(oauth, verifier, launch=launch["launch"])
    return driver.http.post(
        driver.token_url,
        data={
            "grant_type": "authorization_code",
            "code": callback.code,
            "redirect_uri": "http://localhost:1/callback",
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def assertion(driver: AuthzDriver, key: Any, alg: str = "RS384", **kwargs: Any) -> str:
    return str(
        private_key_jwt_sign(
            key,
            client_id=RS384.client_id,
            token_endpoint=driver.token_url,
            alg=alg,
            header={"kid": key.kid},
            expires_in=kwargs.pop("expires_in", 120),
            **kwargs,
        )
    )


def test_private_key_jwt_signed_with_another_key_is_rejected(authz_driver: AuthzDriver) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": RS384.key.kid}, private=True)  # type: ignore[union-attr]
    response = exchange_with_assertion(authz_driver, assertion(authz_driver, impostor))
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


def test_private_key_jwt_jti_replay_is_rejected(authz_driver: AuthzDriver) -> None:
    signed = assertion(authz_driver, RS384.key)
    assert exchange_with_assertion(authz_driver, signed).status_code == 200
    replay = exchange_with_assertion(authz_driver, signed)
    assert replay.json()["error"] == "invalid_client"


def test_private_key_jwt_with_long_exp_or_rs256_is_rejected(authz_driver: AuthzDriver) -> None:
    long_lived = assertion(authz_driver, RS384.key, expires_in=3600)
    assert exchange_with_assertion(authz_driver, long_lived).json()["error"] == "invalid_client"
    rs256 = assertion(authz_driver, RS384.key, alg="RS256")
    assert exchange_with_assertion(authz_driver, rs256).json()["error"] == "invalid_client"


def test_discovery_documents(authz_server: Sandbox) -> None:
    assert authz_server.urls is not None
    issuer = authz_server.urls.issuer
    config = httpx.get(f"{authz_server.urls.fhir_base}/.well-known/smart-configuration").json()
    assert config["issuer"] == issuer
    assert config["authorization_endpoint"] == f"{issuer}/authorize"
    assert config["token_endpoint"] == f"{issuer}/token"
    assert config["jwks_uri"] == f"{issuer}/jwks.json"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {
        "launch-ehr",
        "launch-standalone",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "permission-v2",
        "sso-openid-connect",
    } <= set(config["capabilities"])
    oidc = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    assert oidc["issuer"] == issuer
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = httpx.get(f"{issuer}/jwks.json").json()
    private_members = {"d", "p", "q", "dp", "dq", "qi"}
    assert [sorted(private_members & set(k)) for k in jwks["keys"]] == [[]]


def test_access_token_is_accepted_by_the_fhir_server_within_its_patient(
    authz_driver: AuthzDriver,
) -> None:
    token, _ = ehr_launch_token(authz_driver, scope="launch patient/Patient.rs")
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    base = authz_driver.urls.fhir_base
    own = authz_driver.http.get(f"{base}/Patient/{ADULT}", headers=headers)
    assert own.status_code == 200
    assert own.json()["id"] == ADULT
    other = authz_driver.http.get(f"{base}/Patient/{ADOLESCENT}", headers=headers)
    assert other.status_code == 403
    no_scope = authz_driver.http.get(f"{base}/Observation?patient={ADULT}", headers=headers)
    assert no_scope.status_code == 403


def test_expired_access_token_is_refused_by_the_fhir_server(
    authz_driver: AuthzDriver, authz_knobs: Knobs
) -> None:
    authz_knobs.update({"access_token_lifetime": 1})
    token, _ = ehr_launch_token(authz_driver, scope="launch patient/Patient.rs")
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    url = f"{authz_driver.urls.fhir_base}/Patient/{ADULT}"
    claims = jwt.decode(token["access_token"], published_keys_for(authz_driver)).claims
    # the FHIR server allows some clock skew; wait it out past exp
    deadline = time.time() + 90
    while authz_driver.http.get(url, headers=headers).status_code == 200:
        assert time.time() < deadline, "token still accepted long after exp"
        time.sleep(1)
    assert time.time() > claims["exp"]
    assert authz_driver.http.get(url, headers=headers).status_code == 401


def test_client_keys_from_a_loopback_jwks_url(authz_server: Sandbox) -> None:
    key = ECKey.generate_key("P-384", private=True)
    key.ensure_kid()
    public = {**key.as_dict(private=False), "alg": "ES384", "use": "sig"}
    jwks_app = Flask("jwks")
    jwks_app.get("/jwks.json")(lambda: {"keys": [public]})
    jwks_server = ServerThread(0)
    jwks_server.start(jwks_app)
    try:
        client = SandboxClient("test-jwks-url", "confidential-asymmetric", key=key, alg="ES384")
        registration = client.registration()
        del registration["jwks"]
        registration["jwks_url"] = f"http://127.0.0.1:{jwks_server.port}/jwks.json"
        authz_server.register_client(registration)
        driver = AuthzDriver(authz_server)
        try:
            token, _ = ehr_launch_token(driver, client=client, scope="launch patient/Patient.rs")
        finally:
            driver.close()
        assert token["patient"] == ADULT
    finally:
        jwks_server.stop()


def test_v1_only_sandbox_has_no_well_known_and_accepts_v1_scopes(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sandbox = sandbox_factory(clients=[PUBLIC.registration()], v1_only=True)
    assert sandbox.urls is not None
    base = sandbox.urls.fhir_base
    assert httpx.get(f"{base}/.well-known/smart-configuration").status_code == 404
    driver = AuthzDriver(sandbox)
    try:
        launch = driver.launch(PUBLIC, ADULT, ROWAN)
        oauth = driver.oauth(PUBLIC, "launch patient/Patient.read")
        verifier = generate_token(48)
        callback = driver.authorize(oauth, verifier, launch=launch["launch"])
        token = oauth.fetch_token(driver.token_url, code=callback.code, code_verifier=verifier)
        assert token["scope"] == "launch patient/Patient.read"
        read = driver.http.get(
            f"{base}/Patient/{ADULT}", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert read.status_code == 200
    finally:
        driver.close()


def test_authorize_accepts_post(authz_driver: AuthzDriver) -> None:
    launch = authz_driver.launch(PUBLIC, ADULT, ROWAN)
    oauth = authz_driver.oauth(PUBLIC, "launch patient/Patient.rs")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(
        f"{authz_driver.urls.issuer}/authorize",
        code_verifier=verifier,
        aud=authz_driver.urls.fhir_base,
        launch=launch["launch"],
    )
    form = dict(httpx.URL(url).params)
    response = authz_driver.http.post(f"{authz_driver.urls.issuer}/authorize", data=form)
    assert response.status_code == 302
    callback = httpx.URL(response.headers["location"]).params
    assert callback["state"] == state
    token = oauth.fetch_token(authz_driver.token_url, code=callback["code"], code_verifier=verifier)
    assert token["patient"] == ADULT
