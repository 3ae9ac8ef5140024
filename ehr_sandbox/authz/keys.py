"""Keys: the server's signing key (access tokens, id_tokens) and clients' published keys."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import KeySet, RSAKey

from attach_fhir.errors import AttachError
from attach_fhir.io.private_files import write_private

from .config import ClientConfig

SIGNING_ALG = "RS256"


class ClientKeysError(AttachError):
    """A client's public keys cannot be had."""

    code = "invalid_client"
    description = "The client's public keys could not be resolved."


def generate_signing_key() -> RSAKey:
    """A fresh RSA key for RS256 signatures, with a thumbprint ``kid``."""
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": SIGNING_ALG}, private=True)
    key.ensure_kid()
    return key


def import_signing_key(data: Mapping[str, Any]) -> RSAKey:
    """The signing key from its private JWK."""
    key = RSAKey.import_key(dict(data))
    key.ensure_kid()
    return key


def public_jwks(key: RSAKey) -> dict[str, Any]:
    """The JWKS to publish: public members only."""
    public = key.as_dict(private=False)
    public.setdefault("alg", SIGNING_ALG)
    public.setdefault("use", "sig")
    return {"keys": [public]}


def load_or_create_private_jwk(path: Path) -> dict[str, Any]:
    """A private JWK kept in ``path`` (mode 0600), created at first use."""
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = generate_signing_key().as_dict(private=True)
    write_private(path, json.dumps(data))
    return data


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_key_set(client: ClientConfig, http: httpx.Client) -> KeySet:
    """The client's registered public keys: inline, or fetched from its loopback jwks_url."""
    if client.jwks is not None:
        data: Any = client.jwks
    elif client.jwks_url is not None:
        if not _is_loopback(client.jwks_url):
            raise ClientKeysError("jwks_url must be a loopback URL in the sandbox")
        try:
            response = http.get(client.jwks_url, timeout=5.0)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ClientKeysError("the client's jwks_url could not be fetched") from exc
    else:
        raise ClientKeysError("the client has no registered keys")
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ClientKeysError("the client's JWKS is not a key set")
    public = {"keys": [k for k in data["keys"] if isinstance(k, dict) and "d" not in k]}
    return KeySet.import_key_set(public)  # type: ignore[arg-type]
