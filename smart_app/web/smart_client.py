"""The OAuth client side of SMART App Launch, through authlib and joserfc.

authlib builds the authorization URL (PKCE S256), exchanges the code and refreshes tokens with
the registration's client authentication (none, client_secret_basic, private_key_jwt); joserfc
and authlib's ``CodeIDToken`` verify the id_token. Nothing here hand-builds an OAuth request or
does crypto of its own.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.base import OAuth2Error
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from attach_fhir.io.oauth_client import (
    SmartPrivateKeyJWT,
    TokenClient,
)
from smart_app.web import metrics, outbound
from smart_app.web.errors import (
    AuthorizationExpired,
    ConfigurationError,
    IdTokenInvalid,
    TokenExchangeFailed,
)
from smart_app.web.registrations import Registration

#: Signature algorithms accepted on id_tokens (asymmetric only; never "none" or HMAC).
ID_TOKEN_ALGS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"]
CLOCK_SKEW = 30


def new_secrets() -> dict[str, str]:
    """Per-launch secrets: ``state`` and ``nonce`` of 256 bits, a PKCE verifier of 64 chars."""
    return {
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "code_verifier": generate_token(64),
    }


def oauth_client(
    reg: Registration,
    token_endpoint: str,
    http: httpx.Client | None,
    **kwargs: Any,
) -> TokenClient:
    """An authlib client authenticating as ``reg`` at ``token_endpoint`` over ``http``."""
    secret: Any = None
    auth_method: Any = reg.auth_method
    if reg.client_type == "confidential-symmetric":
        secret = reg.client_secret
    elif reg.client_type == "confidential-asymmetric":
        if reg.signing_key is None:
            raise ConfigurationError(f"registration {reg.name!r} has no private_key")
        secret = reg.signing_key.key
        auth_method = SmartPrivateKeyJWT(
            token_endpoint, alg=reg.signing_key.alg, kid=reg.signing_key.kid
        )
    return TokenClient(
        http,
        client_id=reg.client_id,
        client_secret=secret,
        token_endpoint_auth_method=auth_method,
        code_challenge_method="S256",
        **kwargs,
    )


def authorization_url(
    reg: Registration,
    authorization_endpoint: str,
    *,
    iss: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_verifier: str,
    nonce: str,
    launch: str | None,
) -> str:
    """The authorization request URL: code flow, PKCE S256, ``aud`` = iss, state and nonce."""
    extra: dict[str, str] = {"aud": iss, "nonce": nonce}
    if launch:
        extra["launch"] = launch
    client = TokenClient(
        None,
        client_id=reg.client_id,
        scope=" ".join(scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        authorization_endpoint, state=state, code_verifier=code_verifier, **extra
    )
    return str(url)


def exchange_code(
    reg: Registration,
    token_endpoint: str,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Trade the authorization code (with the PKCE verifier) for tokens."""
    try:
        with outbound.client(reg.allow_addresses, transport) as http:
            client = oauth_client(reg, token_endpoint, http, redirect_uri=redirect_uri)
            token = client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            )
    except OAuth2Error as exc:
        raise TokenExchangeFailed(oauth_error=exc.error) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise TokenExchangeFailed() from exc
    return _checked_token(dict(token))


def refresh(
    reg: Registration,
    token_endpoint: str,
    refresh_token: str,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Use the refresh token once; the response's new refresh token (if any) replaces it."""
    try:
        with outbound.client(reg.allow_addresses, transport) as http:
            client = oauth_client(reg, token_endpoint, http)
            token = client.refresh_token(token_endpoint, refresh_token=refresh_token)
    except OAuth2Error as exc:
        metrics.TOKEN_REFRESHES.labels("failed").inc()
        raise AuthorizationExpired(oauth_error=exc.error) from exc
    except (httpx.HTTPError, ValueError) as exc:
        metrics.TOKEN_REFRESHES.labels("failed").inc()
        raise AuthorizationExpired() from exc
    metrics.TOKEN_REFRESHES.labels("ok").inc()
    return _checked_token(dict(token))


def _checked_token(token: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise TokenExchangeFailed("The EHR's token response carried no access token.")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise TokenExchangeFailed("The EHR issued a token type the app does not support.")
    if "expires_at" not in token and isinstance(token.get("expires_in"), int | float):
        token["expires_at"] = int(time.time() + token["expires_in"])
    return token


def verify_id_token(
    id_token: str,
    *,
    jwks: Callable[[bool], dict[str, Any]],
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None = None,
) -> dict[str, Any]:
    """Verify signature (issuer's JWKS), ``iss``, ``aud``, ``exp``, ``nonce``; return the claims.

    ``jwks(refetch)`` returns the issuer's key set; it is called again with ``True`` once when
    the token's ``kid`` is not in the cached set (the issuer rotated its keys).
    """
    try:
        try:
            decoded = jwt.decode(id_token, _key_set(jwks(False)), ID_TOKEN_ALGS)
        except (JoseError, ValueError):
            decoded = jwt.decode(id_token, _key_set(jwks(True)), ID_TOKEN_ALGS)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": client_id},
                "exp": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            },
            params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
        )
        claims.validate(leeway=CLOCK_SKEW)
    except (JoseError, ValueError, TypeError) as exc:
        raise IdTokenInvalid(reason=type(exc).__name__) from exc
    return dict(claims)


def _key_set(doc: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(doc)  # type: ignore[arg-type]
