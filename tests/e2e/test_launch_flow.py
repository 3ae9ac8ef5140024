"""Full SMART launches over real HTTP: the app, the sandbox's authorization and FHIR servers."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from smart_app.records import delivery
from smart_app.web.token_keys import new_key
from tests.fixtures.postgres import fresh_schema
from tests.fixtures.seed import seeded_name, seeded_patient
from tests.fixtures.smart_app_server import (
    CLIENT_TYPES,
    AppServer,
    Browser,
    ehr_launch_url,
    launch_record,
    registered_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ADOLESCENT = "sandbox-adolescent-15"
V2_EHR_SCOPE = (
    "launch openid fhirUser patient/Patient.r user/Practitioner.r patient/Questionnaire.rs "
    "patient/QuestionnaireResponse.crus patient/Observation.crus patient/CarePlan.crus "
    "patient/Goal.crus patient/Provenance.c offline_access"
)


def authorize_params(browser: Browser, issuer: str) -> dict[str, str]:
    """The query of the authorization request the app sent the browser to."""
    url = next(u for u in browser.visited if u.startswith(f"{issuer}/authorize?"))
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("kind", CLIENT_TYPES)
def test_ehr_launch_shows_the_patient_for_each_client_type(
    kind: str,
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    launch_knobs.need_patient_banner = True
    server = app_servers[kind]
    assert launch_sandbox.urls is not None
    issuer = launch_sandbox.urls.issuer
    page = browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADULT))

    assert page.status_code == 200, page.text
    seeded = seeded_patient(ADULT)
    assert f'id="patient-name">{seeded["name"][0]["text"]}<' in page.text
    assert f'id="patient-birth-date">{seeded["birthDate"]}<' in page.text
    # The signed-in clinician by name, read from fhirUser (granted user/Practitioner.r).
    assert 'Signed in as <span id="user-name">Dr. Rowan Example</span>' in page.text
    # The authorization request: PKCE S256 over the stored verifier, aud = iss, our scopes.
    params = authorize_params(browser, issuer)
    assert params["aud"] == launch_sandbox.urls.fhir_base
    assert params["scope"] == V2_EHR_SCOPE
    assert params["code_challenge_method"] == "S256"
    assert len(base64.urlsafe_b64decode(params["state"] + "==")) >= 16  # >= 128 bits
    record = launch_record(server, browser.visited[-1])
    landing_path = urlsplit(browser.visited[-1]).path
    assert f'href="{landing_path}assess/"' in page.text
    assert f'href="{landing_path}review/"' in page.text
    assert record["patient"] == ADULT
    assert record["fhir_user"].endswith("Practitioner/sandbox-practitioner-rowan")
    assert record["token"]["scope"].split() == V2_EHR_SCOPE.split()


@pytest.mark.parametrize("kind", ["public", "rs384"])
def test_pkce_challenge_is_the_s256_of_the_verifier_sent_with_the_code(
    kind: str, launch_sandbox: Sandbox, app_servers: dict[str, AppServer], browser: Browser
) -> None:
    server = app_servers[kind]
    assert launch_sandbox.urls is not None
    server.transport.clear()
    browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADULT))
    params = authorize_params(browser, launch_sandbox.urls.issuer)
    sent = zip(server.transport.requests, server.transport.bodies, strict=True)
    token_body = next(
        parse_qs(body.decode())
        for (method, url), body in sent
        if method == "POST" and url == f"{launch_sandbox.urls.issuer}/token"
    )
    verifier = token_body["code_verifier"][0]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if kind == "rs384":  # private_key_jwt: short-lived assertion with a kid the JWKS URL serves
        assertion = token_body["client_assertion"][0]
        jwks = KeySet.import_key_set(json.loads(browser.http.get(f"{server.url}/jwks.json").text))
        decoded = jwt.decode(assertion, jwks, algorithms=["RS384"])
        assert decoded.header["alg"] == "RS384"
        assert decoded.claims["iss"] == decoded.claims["sub"] == server.client_id
        assert decoded.claims["aud"] == f"{launch_sandbox.urls.issuer}/token"
        assert 0 < decoded.claims["exp"] - decoded.claims["iat"] <= 300
    else:
        assert "client_assertion" not in token_body
        assert token_body["client_id"] == [server.client_id]


def test_two_assertions_never_share_a_jti(
    launch_sandbox: Sandbox, app_servers: dict[str, AppServer], browser: Browser
) -> None:
    server = app_servers["es384"]
    server.transport.clear()
    for _ in range(2):
        browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADULT))
    assertions = [
        parse_qs(body.decode())["client_assertion"][0]
        for body in server.transport.bodies
        if b"client_assertion=" in body
    ]
    assert len(assertions) == 2
    jtis = {json.loads(jws.extract_compact(a.encode()).payload)["jti"] for a in assertions}
    assert len(jtis) == 2


def test_standalone_patient_launch_reads_the_signed_in_patient(
    launch_sandbox: Sandbox, app_servers: dict[str, AppServer]
) -> None:
    server = app_servers["symmetric"]
    assert launch_sandbox.urls is not None
    patient = Browser(sign_in_as=f"Patient/{ADOLESCENT}")
    try:
        start = patient.go(f"{server.url}/")
        link = f"/launch/standalone?iss={launch_sandbox.urls.fhir_base}"
        assert f'href="{link}&amp;role=patient"' in start.text
        page = patient.go(f"{server.url}{link}&role=patient")
        assert page.status_code == 200, page.text
        assert urlsplit(patient.visited[-1]).path.endswith("/patient/")  # their own home
        seeded = seeded_patient(ADOLESCENT)
        assert f'id="patient-name">{seeded["name"][0]["text"]}<' in page.text
        params = authorize_params(patient, launch_sandbox.urls.issuer)
        assert params["scope"].split()[0] == "launch/patient"
        assert "launch" not in params
    finally:
        patient.close()


def test_standalone_clinician_launch_picks_the_patient_at_the_ehr(
    launch_sandbox: Sandbox, app_servers: dict[str, AppServer]
) -> None:
    server = app_servers["public"]
    assert launch_sandbox.urls is not None
    clinician = Browser(patient=ADOLESCENT)
    try:
        page = clinician.go(
            f"{server.url}/launch/standalone?iss={launch_sandbox.urls.fhir_base}&role=clinician"
        )
        assert page.status_code == 200, page.text
        record = launch_record(server, clinician.visited[-1])
        assert record["patient"] == ADOLESCENT
        scope = authorize_params(clinician, launch_sandbox.urls.issuer)["scope"].split()
        assert "launch/patient" in scope and "user/Patient.rs" in scope
    finally:
        clinician.close()


def test_the_ui_disables_what_the_ehr_did_not_grant(
    launch_sandbox: Sandbox,
    app_servers: dict[str, AppServer],
    browser: Browser,
    launch_knobs: Knobs,
) -> None:
    launch_knobs.grant_only = [
        "launch",
        "openid",
        "fhirUser",
        "patient/Patient.r",
        "patient/Questionnaire.rs",
        "patient/QuestionnaireResponse.crus",
    ]
    server = app_servers["public"]
    page = browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADULT))
    assert page.status_code == 200, page.text
    record = launch_record(server, browser.visited[-1])
    granted_resources = [s for s in record["token"]["scope"].split() if "/" in s]
    assert granted_resources == [s for s in launch_knobs.grant_only if "/" in s]
    enabled = [
        "Read the patient&#39;s record",
        "Read questionnaires",
        "Save questionnaire answers",
    ]
    disabled = ["Record scores", "Update the care plan", "Set goals"]
    tick, dash = '<span class="mark" aria-hidden="true">&#10003;</span>', "&#8211;"
    for label in enabled:
        allowed = '<span class="visually-hidden"> (allowed)</span>'
        assert f'<li class="granted">{tick} {label}{allowed}</li>' in page.text
    for label in disabled:
        mark = f'<span class="mark" aria-hidden="true">{dash}</span>'
        not_granted = '<span class="hint">not granted</span>'
        assert f'<li class="not-granted">{mark} {label} {not_granted}</li>' in page.text
    assert "<button" not in page.text  # permissions are a list, not controls
    landing_path = urlsplit(browser.visited[-1]).path
    assert f'href="{landing_path}assess/"' in page.text  # questionnaires: granted
    assert f'href="{landing_path}review/"' not in page.text  # no Observation search granted
    assert "the EHR has not allowed this app to search recorded scores." in page.text


def test_the_ehr_style_colours_apply_and_nothing_else(
    launch_sandbox: Sandbox, app_servers: dict[str, AppServer], browser: Browser
) -> None:
    server = app_servers["public"]
    assert launch_sandbox.urls is not None
    landing = browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADULT))
    ctx_url = browser.visited[-1]
    assert f'href="{urlsplit(ctx_url).path}style.css"' in landing.text
    published = httpx.get(f"{launch_sandbox.urls.issuer}/smart-style.json").json()
    css = browser.go(f"{ctx_url}style.css")
    assert css.headers["Content-Type"].startswith("text/css")
    # The sandbox's highlight is too light to read on its background (about 2:1); the app
    # serves it darkened to 4.5:1 (WCAG AA; smart_app.launch.style.readable): #69b5ce x 0.6 =
    # #3f6d7c.
    assert published["color_highlight"] == "#69b5ce"
    assert css.text == (
        ":root {\n"
        f"  --ehr-background: {published['color_background']};\n"
        f"  --ehr-text: {published['color_text']};\n"
        "  --ehr-highlight: #3f6d7c;\n"
        f"  --ehr-error: {published['color_error']};\n"
        f"  --ehr-success: {published['color_success']};\n"
        "}\n"
    )  # color_modal_backdrop is empty there; fonts and sizes are never taken


def test_v1_only_server_gets_a_v1_request_and_the_launch_works(
    sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(with_app=False, v1_only=True, need_patient_banner=True)
    assert sandbox.urls is not None
    server = registered_app(sandbox, "public", tmp_path, "e2e-v1")
    browser = Browser()
    try:
        page = browser.go(ehr_launch_url(sandbox, server.client_id, ADULT))
        assert page.status_code == 200, page.text
        assert f'id="patient-name">{seeded_name(ADULT)}<' in page.text
        scope = authorize_params(browser, sandbox.urls.issuer)["scope"].split()
        assert "patient/Patient.read" in scope and "patient/Goal.write" in scope
        assert not [s for s in scope if s.endswith((".r", ".rs", ".cs", ".crus"))]
    finally:
        browser.close()
        server.thread.stop()
        server.transport.shutdown()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """``ATTACH_DATABASE_URL`` of a fresh schema of this test's own, upgraded."""
    with fresh_schema() as schema:
        yield schema.dsn


def test_launch_with_the_postgresql_session_store(
    launch_sandbox: Sandbox, launch_knobs: Knobs, tmp_path: Path, pg_database: str
) -> None:
    launch_knobs.need_patient_banner = True
    server = registered_app(
        launch_sandbox,
        "symmetric",
        tmp_path,
        "e2e-pg",
        DATABASE_URL=pg_database,  # every store in PostgreSQL
        TOKEN_KEYS=new_key(),  # processes sharing PostgreSQL share a key
    )
    browser = Browser()
    try:
        page = browser.go(ehr_launch_url(launch_sandbox, server.client_id, ADOLESCENT))
        assert page.status_code == 200, page.text
        assert f'id="patient-name">{seeded_name(ADOLESCENT)}<' in page.text
        assert type(server.app.extensions["attach_fhir"].store).__name__ == "PostgresStore"
        outbox = delivery.outbox_services(server.app).outbox.store
        assert type(outbox).__name__ == "PostgresOutboxStore"
    finally:
        browser.close()
        server.stop()
