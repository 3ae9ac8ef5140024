"""The app's own signing keys: loaded from PEM or JWK files, published as a public JWKS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, RSAKey

from attach_fhir.io.oauth_client import (
    ALG_FOR_KEY,
    KEY_PARSE_ERRORS,
    KeyFileError,
    read_private_key,
)
from smart_app.web.errors import ConfigurationError

#: Members of a JWK that are public; everything else (d, p, q, dp, dq, qi, oth, k) stays home.
PUBLIC_MEMBERS = frozenset({"kty", "kid", "use", "alg", "key_ops", "n", "e", "crv", "x", "y"})

SigningKeyType = RSAKey | ECKey


@dataclass(frozen=True)
class SigningKey:
    """A private key with the algorithm and ``kid`` it signs client assertions with."""

    key: SigningKeyType
    alg: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        """The JWK of the public half, carrying ``kid``, ``alg`` and ``use``."""
        members = self.key.as_dict(private=False)
        members.update({"kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]})
        return {k: v for k, v in members.items() if k in PUBLIC_MEMBERS}


def load_signing_key(path: Path, alg: str | None, where: str) -> SigningKey:
    """Load a private RSA or P-384 key; ``where`` names the config key in errors."""
    try:
        key = read_private_key(path, where)
    except KeyFileError as exc:
        message = exc.description
        if isinstance(exc.__cause__, KEY_PARSE_ERRORS):
            message += f" ({exc.__cause__})"
        raise ConfigurationError(message) from exc
    natural = ALG_FOR_KEY[type(key)]
    if alg is not None and alg != natural:
        raise ConfigurationError(f"{where}: private_key_alg {alg} does not fit the key in {path}")
    kid = key.kid or key.thumbprint()
    return SigningKey(key=key, alg=natural, kid=kid)


def public_jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """The JWKS document for ``keys``, de-duplicated by ``kid``; no private members."""
    seen: dict[str, dict[str, Any]] = {}
    for key in keys:
        seen.setdefault(key.kid, key.public_jwk())
    return {"keys": list(seen.values())}
