"""Rotating the app's private_key_jwt signing key without downtime, against the real sandbox
authorization server, which checks every client assertion against the app's own /jwks.json
(fetched at each token request). The steps of docs/deployment.md, each a restart of the app on
the same address: publish the next key beside the current one; sign with the next key while the
old one stays published; remove the old one. An assertion signed with a published key verifies,
the web app's and the backend jobs' alike; one signed with a key no longer published does not."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from joserfc.jwk import ECKey, RSAKey

from attach_fhir.io.backend_services import (
    BackendTokenError,
    BackendTokenSource,
    load_backend_config,
)
from attach_fhir.io.oauth_client import OAuth2Error
from ehr_sandbox.runner import Sandbox, ServerThread
from smart_app import create_app
from smart_app import stop as stop_app
from smart_app.web.smart_client import oauth_client
from tests.fixtures.sandbox import SandboxFactory

pytestmark = pytest.mark.e2e

CLIENT_ID = "rotating-app"
SCOPE = "system/Patient.rs"


def _key(kind: str) -> RSAKey | ECKey:
    key: RSAKey | ECKey = (
        RSAKey.generate_key(2048, private=True)
        if kind == "RS384"
        else ECKey.generate_key("P-384", private=True)
    )
    key.ensure_kid()
    return key


#: The key in use before the rotation (RS384) and the next one (ES384: the algorithm may change).
KEYS = {"old": (_key("RS384"), "RS384"), "new": (_key("ES384"), "ES384")}


@dataclass
class Rotation:
    """The sandbox, the app on one address (restarted per step) and the keys' folder."""

    sandbox: Sandbox
    thread: ServerThread
    url: str
    folder: Path
    app: Flask | None = None

    @property
    def token_endpoint(self) -> str:
        assert self.sandbox.urls is not None
        return f"{self.sandbox.urls.issuer}/token"

    def restart(self, private_key: str, published: list[str]) -> None:
        """Start the app with this registration on the same address, then stop the old one."""
        assert self.sandbox.urls is not None
        registration = {
            "name": "sandbox (rotating)",
            "iss": [self.sandbox.urls.fhir_base],
            "client_id": CLIENT_ID,
            "client_type": "confidential-asymmetric",
            "private_key": f"{private_key}.json",
            "published_keys": [f"{name}.json" for name in published],
            "allow_addresses": ["loopback"],
        }
        app = create_app(
            {
                "REGISTRATIONS_DATA": {"registrations": [registration]},
                "REGISTRATIONS_BASE_DIR": str(self.folder),
                "DATA_DIR": str(self.folder / "app-data"),
                "PUBLIC_URL": self.url,
            }
        )
        self.thread.app.app, old = app, self.app  # type: ignore[attr-defined]
        self.app = app
        if old is not None:
            stop_app(old)

    def published_kids(self) -> set[str]:
        """The kids /jwks.json publishes now, over HTTP."""
        return {key["kid"] for key in httpx.get(f"{self.url}/jwks.json").json()["keys"]}

    def app_token(self) -> tuple[str, str | None]:
        """A client_credentials token request signed by the web app's own registration key:
        the kid of its assertion, and the OAuth error (None: a token was issued)."""
        assert self.app is not None and self.sandbox.urls is not None
        reg = self.app.extensions["attach_fhir"].registrations.lookup(self.sandbox.urls.fhir_base)
        sent: list[httpx.Request] = []
        with httpx.Client(timeout=30, event_hooks={"request": [sent.append]}) as http:
            client = oauth_client(reg, self.token_endpoint, http)
            try:
                token = client.fetch_token(
                    self.token_endpoint, grant_type="client_credentials", scope=SCOPE
                )
                error = None if token.get("access_token") else "no_token"
            except OAuth2Error as exc:
                error = exc.error
        return assertion_kid(sent[-1]), error

    def backend_token(self, key: str) -> tuple[str, str | None]:
        """The same for a backend job (``outbox drain --backend``) configured with ``key``."""
        assert self.sandbox.urls is not None
        _, alg = KEYS[key]
        config = self.folder / f"backend-{key}.json"
        entry = {
            "iss": self.sandbox.urls.fhir_base,
            "client_id": CLIENT_ID,
            "private_key": f"{key}.json",
            "alg": alg,
            "scopes": [SCOPE],
        }
        config.write_text(json.dumps([entry]))
        sent: list[httpx.Request] = []
        with httpx.Client(timeout=30, event_hooks={"request": [sent.append]}) as http:
            source = BackendTokenSource(load_backend_config(config)[0], http)
            try:
                source.access_token()
                error = None
            except BackendTokenError as exc:
                error = exc.oauth_error
        return assertion_kid([r for r in sent if r.url.path == "/token"][-1]), error


def assertion_kid(request: httpx.Request) -> str:
    """The ``kid`` in the header of the token request's client assertion."""
    form = dict(httpx.QueryParams(request.content.decode()))
    header = form["client_assertion"].split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    )
    return str(decoded["kid"])


@pytest.fixture(scope="module")
def rotation(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rotation]:
    folder = tmp_path_factory.mktemp("rotation")
    for name, (key, _) in KEYS.items():
        (folder / f"{name}.json").write_text(json.dumps(key.as_dict(private=True)))
    thread = ServerThread(0)
    url = f"http://localhost:{thread.port}"
    client = {
        "client_id": CLIENT_ID,
        "type": "confidential-asymmetric",
        "backend_service": True,
        "jwks_url": f"{url}/jwks.json",
    }
    made = Rotation(sandbox_factory(clients=[client]), thread, url, folder)
    made.restart("old", [])
    thread.start(thread.app.app)  # type: ignore[attr-defined]
    yield made
    thread.stop()
    if made.app is not None:
        stop_app(made.app)


def test_a_rotation_keeps_every_published_key_verifying_until_it_is_removed(
    rotation: Rotation,
) -> None:
    old, new = KEYS["old"][0].kid, KEYS["new"][0].kid
    assert old and new and old != new

    # Before: the app signs with the old key, the only one published; the next is unknown.
    assert rotation.published_kids() == {old}
    assert rotation.app_token() == (old, None)
    assert rotation.backend_token("new") == (new, "invalid_client")

    # 1. Publish the next key beside the current one (nothing signs with it yet).
    rotation.restart("old", ["new"])
    assert rotation.published_kids() == {old, new}
    assert rotation.app_token() == (old, None)
    assert rotation.backend_token("new") == (new, None)

    # 2. Sign with the next key; the old one stays published, so a job or an instance that
    #    still signs with it (not yet restarted) is still accepted.
    rotation.restart("new", ["old"])
    assert rotation.published_kids() == {new, old}
    assert rotation.app_token() == (new, None)
    assert rotation.backend_token("old") == (old, None)

    # 3. Remove the old key: what it signs is refused from now on; the new key goes on.
    rotation.restart("new", [])
    assert rotation.published_kids() == {new}
    assert rotation.app_token() == (new, None)
    assert rotation.backend_token("old") == (old, "invalid_client")
    assert rotation.backend_token("new") == (new, None)
