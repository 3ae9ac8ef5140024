"""The launch flow at the app level: Flask's test client against a small real HTTP server.

The stub server plays a SMART server's discovery documents (real HTTP, counted hits); the
token endpoint's faults that no real server produces on demand use httpx.MockTransport.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from werkzeug.wrappers import Request, Response

from ehr_sandbox.runner import ServerThread
from smart_app import create_app
from smart_app.web.security import COOKIE_NAME

V2_EHR = (
    "launch openid fhirUser patient/Patient.r user/Practitioner.r patient/Questionnaire.rs "
    "patient/QuestionnaireResponse.crus patient/Observation.crus patient/CarePlan.crus "
    "patient/Goal.crus patient/Provenance.c offline_access"
)


class StubServer:
    """Serves fixed JSON documents by path over real HTTP and records each path requested."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        self.hits: list[str] = []
        self.authorization: list[str | None] = []
        self._lock = threading.Lock()
        self.thread = ServerThread(0)
        self.base = f"http://127.0.0.1:{self.thread.port}"
        self.thread.start(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        with self._lock:
            self.hits.append(path)
            self.authorization.append(request.headers.get("Authorization"))
        status, body = self.routes.get(path, (404, {"error": "not found"}))
        return Response(json.dumps(body), status, mimetype="application/json")(
            environ, start_response
        )

    def smart_configuration(self, **changes: Any) -> dict[str, Any]:
        doc = {
            "issuer": f"{self.base}/auth",
            "jwks_uri": f"{self.base}/auth/jwks",
            "authorization_endpoint": f"{self.base}/auth/authorize",
            "token_endpoint": f"{self.base}/auth/token",
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "permission-v2", "context-standalone-patient"],
            "scopes_supported": ["launch", "launch/patient", "patient/*.rs"],
        }
        doc.update(changes)
        self.routes["/fhir/.well-known/smart-configuration"] = (200, doc)
        return doc


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.thread.stop()


@pytest.fixture
def server(stub: StubServer) -> StubServer:
    stub.routes.clear()
    stub.hits.clear()
    stub.authorization.clear()
    stub.smart_configuration()
    return stub


def make_app(stub: StubServer, tmp_path: Path, **config: Any) -> Flask:
    registration = {
        "name": "stub",
        "iss": [f"{stub.base}/fhir"],
        "client_id": "attach",
        "client_type": "public",
        "allow_addresses": ["loopback"],
        "frame_ancestors": ["https://ehr.example.org"],
    }
    registration.update(config.pop("registration", {}))
    return create_app(
        {
            "REGISTRATIONS_DATA": {"registrations": [registration]},
            "DATA_DIR": str(tmp_path),
            **config,
        }
    )


def launch(client: FlaskClient, iss: str, **params: str) -> Any:
    """Run ``/launch`` through the cookie check; the response sending the browser away."""
    query = {"iss": iss, "launch": "L1", **params}
    first = client.get("/launch", query_string=query)
    if first.status_code == 303 and "cookie_check=1" in first.headers["Location"]:
        return client.get(first.headers["Location"])  # a new browser: cookie set, checked
    return first


def error_code(response: Any) -> str:
    text = response.get_data(as_text=True)
    start = text.index('data-error-code="') + len('data-error-code="')
    return str(text[start : text.index('"', start)])


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("connection dropped", request=request)


def authorize_query(response: Any) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def test_authorization_request_carries_pkce_state_nonce_and_aud(
    server: StubServer, tmp_path: Path
) -> None:
    app = make_app(server, tmp_path)
    client = app.test_client()
    query = authorize_query(launch(client, f"{server.base}/fhir"))
    assert urlsplit(client.get("/").request.url).path == "/"
    assert query["response_type"] == "code"
    assert query["client_id"] == "attach"
    assert query["aud"] == f"{server.base}/fhir"
    assert query["launch"] == "L1"
    assert query["scope"] == V2_EHR
    assert query["redirect_uri"] == "http://localhost/callback"
    assert len(base64.urlsafe_b64decode(query["state"] + "=")) == 32  # 256 bits
    pending = app.extensions["attach_fhir"].store.get("state", query["state"])
    digest = hashlib.sha256(pending["code_verifier"].encode("ascii")).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge_method"] == "S256"
    assert query["nonce"] == pending["nonce"] and len(pending["nonce"]) >= 43
    sid = client.get_cookie(COOKIE_NAME)
    assert sid is not None and pending["sid"] == sid.value


def test_discovery_is_cached_per_iss_until_it_expires(server: StubServer, tmp_path: Path) -> None:
    well_known = "/fhir/.well-known/smart-configuration"
    cached = make_app(server, tmp_path / "a").test_client()
    for _ in range(3):
        authorize_query(launch(cached, f"{server.base}/fhir"))
    assert server.hits.count(well_known) == 1
    server.hits.clear()
    expiring = make_app(server, tmp_path / "b", DISCOVERY_TTL=0).test_client()
    for _ in range(2):
        authorize_query(launch(expiring, f"{server.base}/fhir"))
    assert server.hits.count(well_known) == 2


def test_capability_statement_fallback(server: StubServer, tmp_path: Path) -> None:
    server.routes.clear()
    extension = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "authorize", "valueUri": f"{server.base}/old/authorize"},
            {"url": "token", "valueUri": f"{server.base}/old/token"},
        ],
    }
    capability = {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [extension]}}],
    }
    server.routes["/fhir/metadata"] = (200, capability)
    response = launch(make_app(server, tmp_path).test_client(), f"{server.base}/fhir")
    assert response.headers["Location"].startswith(f"{server.base}/old/authorize?")
    scope = authorize_query(response)["scope"].split()
    assert "openid" not in scope and "fhirUser" not in scope  # no JWKS to verify an id_token
    assert server.hits == ["/fhir/.well-known/smart-configuration", "/fhir/metadata"]


def test_no_discovery_document_is_a_clear_error(server: StubServer, tmp_path: Path) -> None:
    server.routes.clear()
    response = launch(make_app(server, tmp_path).test_client(), f"{server.base}/fhir")
    assert response.status_code == 502
    assert b'data-error-code="discovery_failed"' in response.data


def test_a_server_without_s256_is_refused(server: StubServer, tmp_path: Path) -> None:
    server.smart_configuration(code_challenge_methods_supported=["plain"])
    response = launch(make_app(server, tmp_path).test_client(), f"{server.base}/fhir")
    assert response.status_code == 502
    assert b"PKCE with S256" in response.data


def test_v1_only_server_gets_v1_scopes(server: StubServer, tmp_path: Path) -> None:
    server.smart_configuration(
        capabilities=["launch-ehr", "permission-v1"],
        scopes_supported=["launch", "patient/*.read", "patient/*.write", "openid", "fhirUser"],
    )
    query = authorize_query(launch(make_app(server, tmp_path).test_client(), f"{server.base}/fhir"))
    assert query["scope"] == (
        "launch openid fhirUser patient/Patient.read user/Practitioner.read "
        "patient/Questionnaire.read "
        "patient/QuestionnaireResponse.read patient/QuestionnaireResponse.write "
        "patient/Observation.read patient/Observation.write patient/CarePlan.read "
        "patient/CarePlan.write patient/Goal.read patient/Goal.write patient/Provenance.write "
        "offline_access"
    )


def test_registration_scopes_replace_the_default(server: StubServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path, registration={"scopes": "launch patient/Patient.r"})
    query = authorize_query(launch(app.test_client(), f"{server.base}/fhir"))
    assert query["scope"] == "launch patient/Patient.r"


def test_refused_cookie_offers_a_new_window(server: StubServer, tmp_path: Path) -> None:
    client = make_app(server, tmp_path).test_client(use_cookies=False)
    first = client.get("/launch", query_string={"iss": f"{server.base}/fhir", "launch": "L1"})
    page = client.get(first.headers["Location"])  # the browser dropped the cookie
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="open-new-window"' in text
    assert 'target="_blank"' in text
    assert "cookie_check" not in text.split('id="open-new-window"')[1]
    assert server.hits == []  # nothing was asked of the EHR yet


def test_iframe_navigation_gets_a_partitioned_cookie(server: StubServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    query = {"iss": f"{server.base}/fhir", "launch": "L1"}
    framed = app.test_client().get(
        "/launch", query_string=query, headers={"Sec-Fetch-Dest": "iframe"}
    )
    top = app.test_client().get(
        "/launch", query_string=query, headers={"Sec-Fetch-Dest": "document"}
    )
    assert "Partitioned" in framed.headers["Set-Cookie"].split("; ")
    assert "Partitioned" not in top.headers["Set-Cookie"].split("; ")


def test_security_headers(server: StubServer, tmp_path: Path) -> None:
    response = (
        make_app(server, tmp_path, FRAME_ANCESTORS="https://portal.example.org")
        .test_client()
        .get("/")
    )
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp
    assert directives["frame-ancestors"] == (
        "'self' https://ehr.example.org https://portal.example.org"
    )
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_templates_have_no_inline_script_or_style() -> None:
    app = Path(__file__).resolve().parents[2] / "smart_app"
    pages = [
        app / "templates" / "base.html",
        app / "templates" / "error.html",
        *(app / "launch" / "templates" / "launch").iterdir(),
    ]
    assert len(pages) > 3
    for page in pages:
        text = page.read_text()
        assert "<script" not in text and "<style" not in text and "style=" not in text, page


def test_unsafe_methods_need_the_csrf_token(server: StubServer, tmp_path: Path) -> None:
    app = make_app(server, tmp_path)
    bp = Blueprint("probe", __name__)

    @bp.post("/probe")
    def probe() -> str:
        return "done"

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.post("/probe", data={"x": "1"}).status_code == 400
    launch(client, f"{server.base}/fhir")  # now the browser has a session and a token
    sid = client.get_cookie(COOKIE_NAME)
    assert sid is not None
    token = app.extensions["attach_fhir"].store.get("browser", sid.value)["csrf"]
    assert client.post("/probe", data={"csrf_token": "wrong"}).status_code == 400
    assert client.post("/probe", data={"csrf_token": token}).get_data(as_text=True) == "done"
    assert client.post("/probe", headers={"X-CSRF-Token": token}).status_code == 200


def test_callback_checks_state_before_anything(server: StubServer, tmp_path: Path) -> None:
    client = make_app(server, tmp_path).test_client()
    query = authorize_query(launch(client, f"{server.base}/fhir"))
    server.hits.clear()
    cases = [
        {"code": "c"},
        {"code": "c", "state": "x" * 43},
        {"code": "c", "state": query["state"], "iss": "https://evil.example"},
        {"code": "c", "state": query["state"], "iss": f"{server.base}/auth"},  # replayed state
    ]
    codes = [error_code(client.get("/callback", query_string=c)) for c in cases]
    assert codes == ["state_invalid", "state_invalid", "issuer_mismatch", "state_invalid"]
    assert server.hits == []


def _pending_callback(client: FlaskClient, server: StubServer) -> dict[str, str]:
    query = authorize_query(launch(client, f"{server.base}/fhir"))
    return {"code": "c", "state": query["state"], "iss": f"{server.base}/auth"}


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (dropped, "token_exchange_failed"),
        (lambda r: httpx.Response(503, headers={"Retry-After": "5"}), "token_exchange_failed"),
        (lambda r: httpx.Response(200, text="<html>gateway</html>"), "token_exchange_failed"),
        (
            lambda r: httpx.Response(200, json={"access_token": "t", "token_type": "mac"}),
            "token_exchange_failed",
        ),
        (lambda r: httpx.Response(400, json={"error": "invalid_grant"}), "token_exchange_failed"),
        (
            lambda r: httpx.Response(
                200, json={"access_token": "t", "token_type": "Bearer", "scope": "launch openid"}
            ),
            "id_token_invalid",
        ),
    ],
)
def test_token_endpoint_faults_end_on_an_error_page(
    fault: Any, code: str, server: StubServer, tmp_path: Path
) -> None:
    """Faults no real server makes on demand: a dropped connection, a 503, an HTML body."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/fhir/.well-known/smart-configuration":
            return httpx.Response(200, json=server.smart_configuration())
        response: httpx.Response = fault(request)
        return response

    app = make_app(server, tmp_path, HTTP_TRANSPORT=httpx.MockTransport(handler))
    client = app.test_client()
    page = client.get("/callback", query_string=_pending_callback(client, server))
    assert f'data-error-code="{code}"' in page.get_data(as_text=True)
    assert seen[-1] == f"{server.base}/auth/token"
    assert "/app/" not in page.headers.get("Location", "")


def _seed_launch(app: Flask, client: FlaskClient, record: dict[str, Any]) -> str:
    """Put a browser session and a launch record in the store, as a finished callback would."""
    store = app.extensions["attach_fhir"].store
    store.put("browser", "b" * 43, {"created": 0, "csrf": "t" * 43}, 600)
    client.set_cookie(COOKIE_NAME, "b" * 43)
    store.put("launch", "ctx-" + "c" * 20, {"sid": "b" * 43, **record}, 600)
    return "ctx-" + "c" * 20


def test_the_bearer_token_stays_with_the_fhir_server(server: StubServer, tmp_path: Path) -> None:
    server.routes["/fhir/Patient/p1"] = (
        200,
        {"resourceType": "Patient", "id": "p1", "name": [{"text": "<i>Ada</i> Example"}]},
    )
    app = make_app(server, tmp_path)
    client = app.test_client()
    ctx = _seed_launch(
        app,
        client,
        {
            "iss": f"{server.base}/fhir",
            "registration": "stub",
            "patient": "p1",
            "fhir_user": "https://evil.example/fhir/Practitioner/9",  # another host
            "token_endpoint": f"{server.base}/auth/token",
            "token": {
                "access_token": "secret-token",
                "expires_at": 4_000_000_000,
                "scope": "patient/*.rs",
            },
            "style": {"--ehr-background": "#123456"},
        },
    )
    page = client.get(f"/app/{ctx}/").get_data(as_text=True)
    assert 'id="patient-name">&lt;i&gt;Ada&lt;/i&gt; Example<' in page
    assert 'Signed in as <span id="user-name">a Practitioner</span>' in page
    assert server.hits == ["/fhir/Patient/p1"]  # nothing went to evil.example
    assert server.authorization == ["Bearer secret-token"]
    assert "secret-token" not in page
    css = client.get(f"/app/{ctx}/style.css")
    # The EHR's background as sent; the app's dark default text is made readable on it.
    assert css.get_data(as_text=True).startswith(
        ":root {\n  --ehr-background: #123456;\n  --ehr-text: #"
    )
    other = app.test_client()  # another browser: no such launch for it
    assert other.get(f"/app/{ctx}/").status_code == 404
    assert other.get(f"/app/{ctx}/style.css").status_code == 404
