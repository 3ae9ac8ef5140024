"""authlib grants and extensions with the SMART rules: PKCE S256 for all, aud, launch, scopes."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Protocol

import httpx
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode, UserInfo
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from . import scopes
from .config import AuthzConfig
from .keys import SIGNING_ALG, ClientKeysError, client_key_set
from .models import AuthorizationCode, Client, Grantee, RefreshRecord
from .storage import CODE_LIFETIME, MemoryStore
from .tokens import fhir_user_url


class SmartAuthorizationServer(Protocol):
    """What the grants read of the server (``server.SmartAuthorizationServer`` has it); a
    protocol, so that this module needs no import of the server that registers it."""

    config: AuthzConfig
    store: MemoryStore


TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
ASSERTION_ALGS = ["RS384", "ES384"]
#: SMART: a client assertion's exp is no more than five minutes in the future.
ASSERTION_MAX_LIFETIME = 300
CLOCK_SKEW = 5


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256, required for every client (public or confidential)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        """Refuse an authorization request without an S256 code challenge."""
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class SmartAuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """The authorization code grant, with SMART's aud, launch and scope rules."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    server: SmartAuthorizationServer

    def validate_authorization_request(self) -> str:
        """RFC 6749 checks, then SMART's: aud is the FHIR base, launch resolves, scopes settle."""
        redirect_uri: str = super().validate_authorization_request()
        config = self.server.config
        data = self.request.payload.data
        try:
            if (data.get("aud") or "").rstrip("/") != config.fhir_base:
                raise InvalidRequestError("'aud' must be the FHIR base URL of this EHR")
            launch = data.get("launch")
            if launch and self.server.store.get_launch(launch) is None:
                raise InvalidRequestError("unknown or expired 'launch'")
            client: Client = self.request.client
            granted = scopes.grant(
                scopes.split(self.request.payload.scope),
                client.config.scopes,
                config.knobs.grant_only,
            )
            if not launch and "launch" in granted:
                granted.remove("launch")
            if not launch and not config.knobs.standalone_patient_picker:
                granted = [s for s in granted if s != "launch/patient"]
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise
        self.request.scope = " ".join(granted)
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        """Keep the code with its grantee, granted scope, PKCE challenge and nonce."""
        data = request.payload.data
        self.server.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope,
                grantee=request.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                nonce=data.get("nonce"),
                expires_at=time.time() + CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        """The code, spent on first presentation (a replay finds nothing)."""
        return self.server.store.take_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: ``query_authorization_code`` already spent it."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grantee:
        """The grantee recorded with the code."""
        return authorization_code.grantee


class SmartRefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh with rotation: the new refresh token replaces the old one."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: SmartAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        """A usable refresh token; none at all while the failing-refresh knob is on."""
        if self.server.config.knobs.refresh_fails:
            return None
        return self.server.store.get_refresh(refresh_token)

    def authenticate_user(self, refresh_token: RefreshRecord) -> Grantee:
        """The grantee the refresh token continues."""
        return refresh_token.grantee

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        """Rotation: the presented refresh token is spent."""
        self.server.store.revoke_refresh(refresh_token)


class SmartClientCredentialsGrant(grants.ClientCredentialsGrant):
    """SMART Backend Services: client_credentials with private_key_jwt, system/ scopes only."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["private_key_jwt"]
    server: SmartAuthorizationServer

    def validate_token_request(self) -> None:
        """Authenticate the client, then grant the requested system/ scopes it may have."""
        super().validate_token_request()
        client: Client = self.request.client
        granted = [
            s
            for s in scopes.grant(
                scopes.split(self.request.payload.scope),
                client.config.scopes,
                self.server.config.knobs.grant_only,
            )
            if scopes.is_system(s)
        ]
        if not granted:
            raise InvalidScopeError("request system/ scopes this client is registered for")
        self.request.scope = " ".join(granted)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """An access token for the granted scopes; never a refresh token."""
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class SmartOpenIDCode(OpenIDCode):
    """id_token for the code flow: RS256, iss = this server, aud = client_id, fhirUser."""

    def __init__(self, config: AuthzConfig, key: RSAKey, store: MemoryStore) -> None:
        super().__init__(require_nonce=False)
        self.config = config
        self.key = key
        self.store = store

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        """Whether the client used this nonce before (replay)."""
        return self.store.nonce_seen(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        """The server's signing key."""
        return self.key

    def get_client_algorithm(self, client: Client) -> str:
        """RS256, which SMART requires servers to support."""
        return SIGNING_ALG

    def get_encode_header(self, client: Client) -> dict[str, str]:
        """Header naming the signing key."""
        return {"alg": SIGNING_ALG, "kid": self.key.kid or "", "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, str]:
        """Issuer and audience of the id_token."""
        return {"iss": self.config.issuer, "aud": client.get_client_id()}

    def generate_user_info(self, user: Grantee, scope: str) -> UserInfo:
        """Claims about the user: sub always, fhirUser and name when their scopes are granted."""
        granted = scopes.split(scope)
        info = UserInfo(sub=user.user_ref)
        if "fhirUser" in granted:
            info["fhirUser"] = fhir_user_url(self.config, user.user_ref)
        if "profile" in granted and user.user_name:
            info["name"] = user.user_name
        return info


class SmartIssuerParameter(IssuerParameter):
    """RFC 9207: ``iss`` on every authorization response redirect."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        """This server's issuer identifier."""
        return self.issuer


class PrivateKeyJwtAuth(JWTBearerClientAssertion):
    """private_key_jwt (SMART asymmetric client auth): RS384 or ES384, short exp, single-use jti."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url: str, store: MemoryStore, http: httpx.Client) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW)
        self.token_url = token_url
        self.store = store
        self.http = http

    def get_audiences(self) -> list[str]:
        """Assertions are addressed to the token endpoint."""
        return [self.token_url]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        """The client's registered JWKS (inline, or fetched from its loopback jwks_url)."""
        try:
            return client_key_set(client.config, self.http)
        except ClientKeysError as exc:
            raise InvalidClientError(description=exc.description) from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """Verify signature (RS384/ES384 only), claims, lifetime and jti."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGS)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="client assertion signature not valid") from exc
        exp = token.claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
            raise InvalidClientError(description="client assertion 'exp' is too far ahead")
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Each assertion id is accepted once."""
        return self.store.use_jti(str(claims["sub"]), str(jti), float(claims["exp"]))
