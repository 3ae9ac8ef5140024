"""The authlib authorization server wired with the sandbox's grants, clients and storage."""

from __future__ import annotations

import time
from typing import Any

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer
from joserfc.jwk import RSAKey

from . import scopes
from .config import AuthzConfig, ClientConfig
from .grants import (
    PrivateKeyJwtAuth,
    S256CodeChallenge,
    SmartAuthorizationCodeGrant,
    SmartClientCredentialsGrant,
    SmartIssuerParameter,
    SmartOpenIDCode,
    SmartRefreshTokenGrant,
)
from .models import Client, RefreshRecord
from .storage import MemoryStore
from .tokens import TokenIssuer, refresh_lifetime


class SmartAuthorizationServer(AuthorizationServer):
    """authlib's Flask authorization server holding the sandbox's config, key and store."""

    def __init__(self, config: AuthzConfig, key: RSAKey, store: MemoryStore) -> None:
        super().__init__()
        self.config = config
        self.key = key
        self.store = store
        self.http = httpx.Client(timeout=5.0)
        self._clients = {c.client_id: Client(c) for c in config.clients}

    def setup(self) -> None:
        """Register the token generator, grants, client auth and extensions."""
        self.register_token_generator("default", TokenIssuer(self.config, self.key))
        self.register_grant(
            SmartAuthorizationCodeGrant,
            [S256CodeChallenge(required=True), SmartOpenIDCode(self.config, self.key, self.store)],
        )
        self.register_grant(SmartRefreshTokenGrant)
        self.register_grant(SmartClientCredentialsGrant)
        self.register_client_auth_method(
            "private_key_jwt",
            PrivateKeyJwtAuth(f"{self.config.issuer}/token", self.store, self.http),
        )
        self.register_extension(SmartIssuerParameter(self.config.issuer))

    def query_client(self, client_id: str) -> Client | None:
        """A registered client by id."""
        return self._clients.get(client_id)

    def register_client(self, client: ClientConfig) -> None:
        """Add (or replace) a registered client at run time."""
        self._clients[client.client_id] = Client(client)

    def clients(self) -> list[Client]:
        """Every registered client."""
        return list(self._clients.values())

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Keep the refresh token (access tokens are self-contained JWTs)."""
        refresh = token.get("refresh_token")
        if not refresh:
            return
        if request.authorization_code is not None:
            family = request.authorization_code.code
        else:
            family = request.refresh_token.family
        granted = scopes.split(token.get("scope"))
        self.store.save_refresh(
            RefreshRecord(
                token=refresh,
                client_id=request.client.get_client_id(),
                scope=" ".join(granted),
                grantee=request.user,
                expires_at=time.time() + refresh_lifetime(granted),
                family=family,
            )
        )
