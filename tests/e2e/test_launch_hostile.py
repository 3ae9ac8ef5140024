"""Hostile launches and callbacks: each refused with a clear page, and no request sent for it.

A canary HTTP server stands where a hostile ``iss`` points; it must see no request at all. The
app's outbound requests go through a recording (real) transport, so "no outbound call" is a
count of zero, not a belief. id_token faults are injected by re-signing the real sandbox's
token response (with its own key for wrong claims, a stranger's key for a wrong signature).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Request, Response

from ehr_sandbox.runner import Sandbox, ServerThread
from tests.fixtures.smart_app_server import AppServer, Browser, ehr_launch_url, start_app

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"


class Canary:
    """An HTTP server that answers everything like a SMART server and counts each request."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self._lock = threading.Lock()
        self.thread = ServerThread(0)
        self.port = self.thread.port
        self.thread.start(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.hits.append(request.full_path)
        doc = {
            "authorization_endpoint": f"http://127.0.0.1:{self.port}/authorize",
            "token_endpoint": f"http://127.0.0.1:{self.port}/token",
        }
        return Response(json.dumps(doc), mimetype="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.thread.stop()


def _app(tmp_path: Path, iss: str, allow: list[str] | None = None) -> AppServer:
    reg: dict[str, Any] = {
        "name": "hostile",
        "iss": [iss],
        "client_id": "hostile",
        "client_type": "public",
    }
    if allow is not None:
        reg["allow_addresses"] = allow
    return start_app(reg, tmp_path)


def _error_code(page: httpx.Response) -> str:
    marker = 'data-error-code="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


@pytest.fixture(scope="module")
def canary_app(canary: Canary, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = _app(
        tmp_path_factory.mktemp("canary-app"), f"http://127.0.0.1:{canary.port}/fhir", ["loopback"]
    )
    yield server
    server.thread.stop()
    server.transport.shutdown()


@pytest.mark.parametrize(
    "iss",
    [
        "http://127.0.0.1:{port}/fhir/",  # trailing slash
        "http://127.0.0.1:{port}/fhir//",
        "http://localhost:{port}/fhir",  # same server, another spelling of its host
        "HTTP://127.0.0.1:{port}/fhir",
        "http://127.0.0.1:{port}/FHIR",
        "http://127.0.0.1:{port}/fhir?x=1",
        "http://127.0.0.1:{port}/fhir#",
        "http://127.0.0.1:{port}@127.0.0.1:{port}/fhir",
        "http://127.0.0.1.:{port}/fhir",
        "http://127.0.0.1:0{port}/fhir",
        "http://2130706433:{port}/fhir",  # 127.0.0.1 as one number
        "http://127.0.0.1:{port}/fhir%2F",
        "http://127.0.0.1:{port}/fhir/../fhir",
        " http://127.0.0.1:{port}/fhir",
    ],
)
def test_look_alike_iss_is_refused_without_a_request(
    iss: str, canary: Canary, canary_app: AppServer, browser: Browser
) -> None:
    canary.hits.clear()
    canary_app.transport.clear()
    hostile = iss.format(port=canary.port)
    page = browser.go(f"{canary_app.url}/launch?" + urlencode({"iss": hostile, "launch": "x"}))
    assert page.status_code == 403
    assert _error_code(page) == "unknown_issuer"
    assert "not registered" in page.text
    assert canary.hits == []
    assert canary_app.transport.requests == []


def test_the_exact_iss_does_reach_the_server(
    canary: Canary, canary_app: AppServer, browser: Browser
) -> None:
    """The control for the test above: the registered spelling is let through."""
    canary.hits.clear()
    iss = f"http://127.0.0.1:{canary.port}/fhir"
    page = browser.go(
        f"{canary_app.url}/launch?" + urlencode({"iss": iss, "launch": "x"}),
        stop_at=f"http://127.0.0.1:{canary.port}/authorize",
    )
    assert page.status_code == 303
    assert canary.hits == ["/fhir/.well-known/smart-configuration?"]


def test_unknown_iss_is_refused_without_a_request(
    canary: Canary, app_servers: dict[str, AppServer], browser: Browser
) -> None:
    canary.hits.clear()
    server = app_servers["public"]
    server.transport.clear()
    iss = f"http://127.0.0.1:{canary.port}/fhir"
    page = browser.go(f"{server.url}/launch?" + urlencode({"iss": iss, "launch": "x"}))
    assert page.status_code == 403 and _error_code(page) == "unknown_issuer"
    assert canary.hits == [] and server.transport.requests == []


def test_loopback_iss_needs_the_registration_to_allow_it(
    canary: Canary, tmp_path: Path, browser: Browser
) -> None:
    canary.hits.clear()
    iss = f"http://localhost:{canary.port}/fhir"  # listed, but loopback is not allowed
    server = _app(tmp_path, iss)
    try:
        page = browser.go(f"{server.url}/launch?" + urlencode({"iss": iss, "launch": "x"}))
        assert page.status_code == 403 and _error_code(page) == "forbidden_address"
        assert "loopback" in page.text
        assert canary.hits == [] and server.transport.requests == []
    finally:
        server.thread.stop()


def test_link_local_iss_is_refused_even_when_listed(tmp_path: Path, browser: Browser) -> None:
    iss = "https://2852039166/fhir"  # 169.254.169.254, the cloud metadata address
    server = _app(tmp_path, iss, ["loopback", "private"])
    try:
        page = browser.go(f"{server.url}/launch?" + urlencode({"iss": iss, "launch": "x"}))
        assert page.status_code == 403 and _error_code(page) == "forbidden_address"
        assert "link-local" in page.text
        assert server.transport.requests == []
    finally:
        server.thread.stop()


# -- callbacks ---------------------------------------------------------------------------------


def _to_callback(browser: Browser, sandbox: Sandbox, server: AppServer) -> str:
    """Launch and stop just before the browser would deliver the callback; its URL."""
    response = browser.go(
        ehr_launch_url(sandbox, server.client_id, ADULT), stop_at=f"{server.url}/callback"
    )
    assert response.status_code in (302, 303)
    return str(response.headers["location"])


def _with(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def _token_calls(server: AppServer, sandbox: Sandbox) -> int:
    assert sandbox.urls is not None
    return server.transport.count("POST", f"{sandbox.urls.issuer}/token")


@pytest.fixture
def rs384(app_servers: dict[str, AppServer]) -> Iterator[AppServer]:
    server = app_servers["rs384"]
    server.transport.clear()
    yield server
    server.transport.clear()


@pytest.mark.parametrize("state", [None, "A" * 43], ids=["without-state", "made-up-state"])
def test_callback_without_its_state_is_refused(
    state: str | None, launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    callback = _to_callback(browser, launch_sandbox, rs384)
    page = browser.go(_with(callback, state=state))
    assert page.status_code == 400 and _error_code(page) == "state_invalid"
    assert _token_calls(rs384, launch_sandbox) == 0


def test_callback_in_another_browser_is_refused_and_spends_the_state(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    callback = _to_callback(browser, launch_sandbox, rs384)
    other = Browser()
    try:
        other.go(f"{rs384.url}/")  # the attacker has a session of their own
        page = other.go(callback)
    finally:
        other.close()
    assert page.status_code == 400 and _error_code(page) == "state_invalid"
    assert _token_calls(rs384, launch_sandbox) == 0
    # The state is single use: the victim's own browser cannot use it afterwards either.
    assert _error_code(browser.go(callback)) == "state_invalid"


def test_replayed_callback_is_refused(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    callback = _to_callback(browser, launch_sandbox, rs384)
    assert browser.go(callback).status_code == 200
    assert _token_calls(rs384, launch_sandbox) == 1
    page = browser.go(callback)
    assert page.status_code == 400 and _error_code(page) == "state_invalid"
    assert _token_calls(rs384, launch_sandbox) == 1


def test_replayed_code_with_a_fresh_state_is_refused_by_the_server(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    first = _to_callback(browser, launch_sandbox, rs384)
    assert browser.go(first).status_code == 200
    second = _to_callback(browser, launch_sandbox, rs384)
    old_code = parse_qs(urlsplit(first).query)["code"][0]
    page = browser.go(_with(second, code=old_code))
    assert page.status_code == 502 and _error_code(page) == "token_exchange_failed"


def test_wrong_pkce_verifier_is_refused_by_the_server(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    callback = _to_callback(browser, launch_sandbox, rs384)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    store = rs384.app.extensions["attach_fhir"].store
    pending = store.get("state", state)
    assert pending is not None
    pending["code_verifier"] = "x" * 64  # not the verifier behind the challenge sent
    store.put("state", state, pending, 600)
    page = browser.go(callback)
    assert page.status_code == 502 and _error_code(page) == "token_exchange_failed"
    assert _token_calls(rs384, launch_sandbox) == 1


def test_callback_iss_of_another_server_is_refused(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    callback = _to_callback(browser, launch_sandbox, rs384)
    assert launch_sandbox.urls is not None
    assert parse_qs(urlsplit(callback).query)["iss"] == [launch_sandbox.urls.issuer]
    page = browser.go(_with(callback, iss="http://127.0.0.1:1"))
    assert page.status_code == 400 and _error_code(page) == "issuer_mismatch"
    assert _token_calls(rs384, launch_sandbox) == 0


def _resign(sandbox: Sandbox, key: RSAKey | None, **claims: Any) -> Any:
    """A tamper hook re-signing the token response's id_token with changed claims."""
    assert sandbox.urls is not None
    issuer_key = RSAKey.import_key(
        json.loads((sandbox.data_dir / "authz-signing-key.json").read_text())
    )
    issuer_key.ensure_kid()
    token_url = f"{sandbox.urls.issuer}/token"

    def tamper(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if str(request.url) != token_url or response.status_code != 200:
            return response
        data = response.json()
        original = jwt.decode(data["id_token"], issuer_key)
        signer = key or issuer_key
        header = {"alg": "RS256", "kid": issuer_key.kid}
        data["id_token"] = jwt.encode(header, {**original.claims, **claims}, signer)
        return httpx.Response(200, json=data)

    return tamper


@pytest.mark.parametrize(
    ("stranger", "claims"),
    [
        (False, {"aud": "someone-else"}),
        (False, {"iss": "http://127.0.0.1:1"}),
        (False, {"nonce": "not-the-nonce"}),
        (False, {"exp": 1_000_000_000}),
        (True, {}),  # a valid-looking token signed by a key the issuer never published
    ],
)
def test_id_token_faults_are_refused(
    stranger: bool,
    claims: dict[str, Any],
    launch_sandbox: Sandbox,
    rs384: AppServer,
    browser: Browser,
) -> None:
    key = RSAKey.generate_key(2048, private=True) if stranger else None
    rs384.transport.tamper = _resign(launch_sandbox, key, **claims)
    page = browser.go(ehr_launch_url(launch_sandbox, rs384.client_id, ADULT))
    assert page.status_code == 502 and _error_code(page) == "id_token_invalid"
    assert "/app/" not in " ".join(browser.visited)


def test_untampered_resigning_is_accepted(
    launch_sandbox: Sandbox, rs384: AppServer, browser: Browser
) -> None:
    """The control: the re-signing hook alone (no claim changed) does not break the launch."""
    rs384.transport.tamper = _resign(launch_sandbox, None)
    page = browser.go(ehr_launch_url(launch_sandbox, rs384.client_id, ADULT))
    assert page.status_code == 200, page.text
