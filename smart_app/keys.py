"""The app's own signing keys: loaded from PEM or JWK files, published as a public JWKS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from smart_app.errors import ConfigurationError

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
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read key file {path}: {exc.strerror}") from exc
    try:
        key = _import(raw)
    except (ValueError, TypeError, JoseError) as exc:
        raise ConfigurationError(f"{where}: {path} is not a PEM or JWK key ({exc})") from exc
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise ConfigurationError(f"{where}: {path} must hold a private RSA or EC P-384 key")
    natural = "RS384" if isinstance(key, RSAKey) else "ES384"
    if isinstance(key, ECKey) and key.curve_name != "P-384":
        raise ConfigurationError(f"{where}: EC key {path} must use curve P-384 for ES384")
    if alg is not None and alg != natural:
        raise ConfigurationError(f"{where}: private_key_alg {alg} does not fit the key in {path}")
    kid = key.kid or key.thumbprint()
    return SigningKey(key=key, alg=natural, kid=kid)


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
        except (ValueError, TypeError, JoseError):
            continue
    raise ValueError("neither an RSA nor an EC key")


def public_jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """The JWKS document for ``keys``, de-duplicated by ``kid``; no private members."""
    seen: dict[str, dict[str, Any]] = {}
    for key in keys:
        seen.setdefault(key.kid, key.public_jwk())
    return {"keys": list(seen.values())}
