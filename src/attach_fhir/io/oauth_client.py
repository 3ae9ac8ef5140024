"""authlib's OAuth 2 protocol client over an injected ``httpx.Client``, with SMART's assertion.

authlib builds the token request and the ``private_key_jwt`` client assertion (fresh ``jti``,
``exp`` at most five minutes ahead, our ``kid``); joserfc loads the private key. Nothing here
hand-builds an OAuth request or does crypto of its own. (authlib's own httpx integration now
targets the httpx2 package; the protocol class is the same.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from attach_fhir.errors import AttachError

#: SMART: a client assertion expires no more than five minutes after it is made.
ASSERTION_LIFETIME = 300
#: The assertion algorithm each key type signs with (SMART asymmetric client authentication).
ALG_FOR_KEY = {RSAKey: "RS384", ECKey: "ES384"}


class KeyFileError(AttachError):
    """A private key file is unreadable, not a key, or does not fit its algorithm."""

    code = "key_file_invalid"
    description = "The private key file could not be used."


@dataclass(frozen=True)
class SigningKey:
    """A private key with the algorithm and ``kid`` its client assertions carry."""

    key: RSAKey | ECKey
    alg: str
    kid: str


#: What a key file that is not a key fails with; it is the ``__cause__`` of that KeyFileError.
KEY_PARSE_ERRORS = (ValueError, TypeError, JoseError)


def read_private_key(path: Path, where: str) -> RSAKey | ECKey:
    """Read a private RSA or EC P-384 key (PEM or JWK); ``where`` names the config key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{where}: cannot read key file {path}: {exc.strerror}") from exc
    try:
        key = _import(raw)
    except KEY_PARSE_ERRORS as exc:
        raise KeyFileError(f"{where}: {path} is not a PEM or JWK key") from exc
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise KeyFileError(f"{where}: {path} must hold a private RSA or EC P-384 key")
    if isinstance(key, ECKey) and key.curve_name != "P-384":
        raise KeyFileError(f"{where}: EC key {path} must use curve P-384 for ES384")
    return key


def load_signing_key(path: Path, alg: str, kid: str | None, where: str) -> SigningKey:
    """Load a private RSA or EC P-384 key (PEM or JWK); ``where`` names the config key."""
    key = read_private_key(path, where)
    if ALG_FOR_KEY[type(key)] != alg:
        raise KeyFileError(f"{where}: alg {alg} does not fit the key in {path}")
    return SigningKey(key=key, alg=alg, kid=kid or key.kid or key.thumbprint())


def _import(raw: bytes) -> Any:
    text = raw.strip()
    if text.startswith(b"{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a JWK file holds one JSON object")
        return import_key(data)
    for cls in (RSAKey, ECKey):
        try:
            return cls.import_key(text)
        except KEY_PARSE_ERRORS:
            continue
    raise ValueError("neither an RSA nor an EC key")


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """authlib's private_key_jwt with SMART's rules: short ``exp``, fresh ``jti``, our ``kid``."""

    def __init__(self, token_endpoint: str, alg: str, kid: str) -> None:
        super().__init__(token_endpoint=token_endpoint, alg=alg)
        self.kid = kid

    def sign(self, auth: Any, token_endpoint: str) -> str:
        """A new assertion per request; authlib adds a fresh random ``jti`` each time."""
        assertion: str = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header={"kid": self.kid, "typ": "JWT"},
            expires_in=ASSERTION_LIFETIME,
        )
        return assertion


class HttpxClientAuth(httpx.Auth, ClientAuth):
    """authlib's client authentication applied to an httpx request."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Any:
        """Let authlib add client credentials or an assertion to the token request."""
        url, headers, body = self.prepare(
            request.method, str(request.url), request.headers, request.content
        )
        headers["Content-Length"] = str(len(body))
        signed = httpx.Request(request.method, url, headers=headers, content=body)
        signed.extensions = request.extensions
        yield signed


class TokenClient(OAuth2Client):
    """authlib's OAuth 2 protocol client over an injected ``httpx.Client``."""

    client_auth_class = HttpxClientAuth
    oauth_error_class = OAuth2Error


def assertion_client(
    http: httpx.Client, client_id: str, key: SigningKey, token_endpoint: str
) -> TokenClient:
    """A token client that authenticates with a ``private_key_jwt`` assertion signed by ``key``."""
    return TokenClient(
        http,
        client_id=client_id,
        client_secret=key.key,
        token_endpoint_auth_method=SmartPrivateKeyJWT(token_endpoint, alg=key.alg, kid=key.kid),
    )


__all__ = [
    "ALG_FOR_KEY",
    "ASSERTION_LIFETIME",
    "KEY_PARSE_ERRORS",
    "KeyFileError",
    "OAuth2Error",
    "SigningKey",
    "SmartPrivateKeyJWT",
    "TokenClient",
    "assertion_client",
    "load_signing_key",
    "read_private_key",
]
