"""The records the authorization server keeps: clients, grantees, launches, codes, tokens."""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oidc.core import AuthorizationCodeMixin

from .config import ClientConfig

#: client type -> token endpoint authentication methods it may use
AUTH_METHODS = {
    "public": ("none",),
    "confidential-symmetric": ("client_secret_basic", "client_secret_post"),
    "confidential-asymmetric": ("private_key_jwt",),
}


class Client(ClientMixin):
    """A registered app, as authlib's grants see it."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id

    def get_client_id(self) -> str:
        """The client identifier."""
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        """The first registered redirect URI ("" for a backend service, which has none)."""
        return self.config.redirect_uris[0] if self.config.redirect_uris else ""

    def get_allowed_scope(self, scope: str) -> str:
        """Scopes are settled by the grant (see ``scopes.grant``); pass the request through."""
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match against the registered redirect URIs."""
        return redirect_uri in self.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Constant-time comparison with the registered secret."""
        secret = self.config.secret
        return secret is not None and secrets.compare_digest(secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Each client type authenticates one way at the token endpoint."""
        if endpoint != "token":
            return True
        return method in AUTH_METHODS[self.config.type]

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow, and never for a backend service."""
        return response_type == "code" and not self.config.backend_service

    def check_grant_type(self, grant_type: str) -> bool:
        """Code and refresh grants for apps; client_credentials for backend services only."""
        if self.config.backend_service:
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")


@dataclasses.dataclass
class Grantee:
    """Who authorized, and the launch context the token carries."""

    #: Relative reference of the signed-in user, e.g. ``Practitioner/123`` or ``Patient/7``.
    user_ref: str
    patient: str | None = None
    encounter: str | None = None
    intent: str | None = None
    #: Relative references (``Task/123``) the token response names in ``fhirContext``.
    fhir_context: tuple[str, ...] = ()
    #: Launched from the EHR's own page inside its iframe (the EHR shows a banner).
    embedded: bool = False
    user_name: str | None = None
    auth_time: int = dataclasses.field(default_factory=lambda: int(time.time()))


@dataclasses.dataclass
class LaunchRecord:
    """An EHR launch: the opaque ``launch`` value and the context it stands for."""

    token: str
    client_id: str
    grantee: Grantee
    expires_at: float


@dataclasses.dataclass
class PendingAuthorization:
    """An authorization request waiting for the user to sign in, pick a patient or approve."""

    id: str
    params: dict[str, str]
    user_ref: str | None = None
    user_name: str | None = None
    patient: str | None = None
    approved: bool = False
    expires_at: float = dataclasses.field(default_factory=lambda: time.time() + 600)


@dataclasses.dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """An issued authorization code (single use, short-lived)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    grantee: Grantee
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    expires_at: float
    used: bool = False

    def get_redirect_uri(self) -> str:
        """The redirect URI of the authorization request."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """The granted scope."""
        return self.scope

    def get_nonce(self) -> str | None:
        """The OpenID nonce of the authorization request."""
        return self.nonce

    def get_auth_time(self) -> int:
        """When the user signed in."""
        return self.grantee.auth_time


@dataclasses.dataclass
class RefreshRecord:
    """A refresh token (rotated on every use) and the grant it continues."""

    token: str
    client_id: str
    scope: str
    grantee: Grantee
    expires_at: float
    #: The authorization code the grant started from (revoked together on code replay).
    family: str
    revoked: bool = False

    def check_client(self, client: Any) -> bool:
        """Whether the token was issued to this client."""
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        """The scope granted with this token."""
        return self.scope

    def is_usable(self) -> bool:
        """Not revoked and not expired."""
        return not self.revoked and time.time() < self.expires_at
