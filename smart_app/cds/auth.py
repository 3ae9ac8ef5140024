"""Who may call the CDS Hooks service, and the check of the JWT every call carries.

CDS Hooks 2.0, "Trusting CDS Clients": each request has ``Authorization: Bearer <JWT>``, signed
with an asymmetric key of the CDS Client (``alg`` never ``none`` or HMAC; header ``kid`` and
``typ: JWT``), with ``iss``, ``aud`` (the URL of the endpoint called), ``exp``, ``iat`` and
``jti``. The service keeps an allow-list of issuers: each CDS Client is configured (a JSON file
validated against ``schema/cds-clients.schema.json``) with its ``iss`` and JWK Set, inline or
at a ``jwks_url``; a ``jku`` header is accepted only when it names that same URL, and is never
fetched otherwise. A ``jti`` is accepted once (kept in the session store until ``exp``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from jsonschema import Draft202012Validator

from attach_fhir.errors import AttachError
from attach_fhir.io.config_files import read_config_json
from smart_app.web import discovery_cache, outbound
from smart_app.web.errors import ConfigurationError
from smart_app.web.services import get_services
from smart_app.web.session_store import SessionStore

#: Asymmetric signature algorithms only (the spec forbids ``none`` and symmetric ones).
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
CLOCK_SKEW = 30
#: A JWT whose ``exp`` lies further ahead than this is refused (it bounds the replay cache).
MAX_LIFETIME = 3600
JTI_NS = "cds-jti"


class CdsUnauthorized(AttachError):
    """The call carries no JWT, or one the service does not accept."""

    code = "invalid_token"
    description = "The CDS Client's JWT is missing or was not accepted."
    status_code = 401


@dataclass(frozen=True)
class CdsClient:
    """One CDS Client (an EHR) allowed to call the service."""

    name: str
    iss: str
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    #: FHIR base URLs this client may name as ``fhirServer`` (the only hosts a token goes to).
    fhir_servers: tuple[str, ...] = ()
    allow_addresses: tuple[str, ...] = ()
    #: Browser origins allowed to call the service (CORS).
    origins: tuple[str, ...] = ()
    tenant: str | None = None

    def allows_fhir_server(self, url: str) -> bool:
        """Whether ``url`` is one of this client's FHIR servers (exact, trailing slash aside)."""
        return url.rstrip("/") in {s.rstrip("/") for s in self.fhir_servers}


@dataclass(frozen=True)
class CdsClients:
    """The configured CDS Clients, indexed by ``iss``."""

    items: tuple[CdsClient, ...] = ()

    def by_iss(self, iss: str) -> CdsClient | None:
        """The client whose ``iss`` is exactly ``iss``."""
        return next((c for c in self.items if c.iss == iss), None)

    def origins(self) -> frozenset[str]:
        """Every browser origin some client may call from."""
        return frozenset(o for c in self.items for o in c.origins)


def schema() -> dict[str, Any]:
    """The CDS clients JSON schema shipped with the app."""
    text = files("smart_app").joinpath("schema/cds-clients.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def parse_clients(data: Any, source: str = "CDS clients") -> CdsClients:
    """Validate the configuration; ConfigurationError names every bad key."""
    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = [f"{e.json_path}: {e.message}" for e in errors]
        raise ConfigurationError(f"{source}: " + "; ".join(problems), problems=problems)
    items = []
    for i, raw in enumerate(data["cds_clients"]):
        if "jwks" in raw:
            try:
                KeySet.import_key_set(raw["jwks"])
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ConfigurationError(f"{source}: $.cds_clients[{i}].jwks: {exc}") from exc
        items.append(
            CdsClient(
                name=raw["name"],
                iss=raw["iss"],
                jwks=raw.get("jwks"),
                jwks_url=raw.get("jwks_url"),
                fhir_servers=tuple(raw.get("fhir_servers", [])),
                allow_addresses=tuple(raw.get("allow_addresses", [])),
                origins=tuple(raw.get("origins", [])),
                tenant=raw.get("tenant"),
            )
        )
    issuers = [c.iss for c in items]
    twice = sorted({i for i in issuers if issuers.count(i) > 1})
    if twice:
        raise ConfigurationError(f"{source}: iss listed twice: {', '.join(twice)}")
    return CdsClients(tuple(items))


def load_clients(path: str | Path) -> CdsClients:
    """Read and validate a CDS clients file."""
    path = Path(path)
    data = read_config_json(path, "CDS clients file", ConfigurationError)
    return parse_clients(data, source=str(path))


def clients_from_config(config: Mapping[str, Any]) -> CdsClients:
    """The CDS Clients from ``CDS_CLIENTS_DATA`` (a mapping) or the ``CDS_CLIENTS`` file."""
    data = config.get("CDS_CLIENTS_DATA")
    if data is not None:
        return parse_clients(data, source="CDS_CLIENTS_DATA")
    path = config.get("CDS_CLIENTS")
    return load_clients(path) if path else CdsClients()


def jwks_for(client: CdsClient, refetch: bool) -> dict[str, Any]:
    """The client's JWK Set: inline, or from its ``jwks_url`` (cached; ``refetch`` renews it)."""
    if client.jwks is not None:
        return dict(client.jwks)
    assert client.jwks_url is not None
    services = get_services()
    url = client.jwks_url
    if refetch:
        services.cache.forget("cds-jwks", url)

    def fetch() -> dict[str, Any]:
        with outbound.client(client.allow_addresses, services.transport) as http:
            return discovery_cache.fetch_jwks(url, http)

    found: dict[str, Any] = services.cache.get_or_fetch("cds-jwks", url, fetch)
    return found


def _segment(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _refuse(reason: str) -> CdsUnauthorized:
    return CdsUnauthorized(f"The CDS Client's JWT was not accepted: {reason}.", reason=reason)


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise _refuse("not a signed JWT")
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (ValueError, UnicodeError) as exc:
        raise _refuse("not a signed JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _refuse("not a signed JWT")
    return header, claims


def _check_header(header: Mapping[str, Any], client: CdsClient) -> None:
    if header.get("alg") not in ALGORITHMS:
        raise _refuse("alg must be an asymmetric signature algorithm")
    if header.get("typ") != "JWT":
        raise _refuse("typ must be JWT")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise _refuse("kid is required")
    if "jku" in header and header["jku"] != client.jwks_url:
        raise _refuse("jku is not the JWK Set URL registered for this issuer")


def _has_kid(keys: Mapping[str, Any], kid: str) -> bool:
    return any(isinstance(k, dict) and k.get("kid") == kid for k in keys.get("keys") or [])


def _check_claims(
    claims: Mapping[str, Any], audiences: tuple[str, ...], client: CdsClient, now: float
) -> None:
    aud = claims.get("aud")
    given = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in audiences for a in given):
        raise _refuse("aud is not this CDS Service endpoint")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + CLOCK_SKEW <= now:
        raise _refuse("expired or without exp")
    if exp > now + MAX_LIFETIME:
        raise _refuse(f"exp is more than {MAX_LIFETIME} seconds ahead")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + CLOCK_SKEW:
        raise _refuse("iat is missing or in the future")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise _refuse("jti is required")
    if client.tenant is not None and claims.get("tenant") != client.tenant:
        raise _refuse("tenant is not the one registered for this issuer")


def _once(store: SessionStore, claims: Mapping[str, Any], now: float) -> None:
    """Record the ``jti``; refuse one seen before (until the token's expiry)."""
    key = hashlib.sha256(f"{claims['iss']}|{claims['jti']}".encode()).hexdigest()
    with store.lock(JTI_NS):
        if store.get(JTI_NS, key) is not None:
            raise _refuse("jti was already used")
        store.put(JTI_NS, key, {"seen": int(now)}, float(claims["exp"]) - now + CLOCK_SKEW)


#: ``keys(client, refetch)``: the client's JWK Set document.
KeySource = Callable[[CdsClient, bool], Mapping[str, Any]]


def verify(
    authorization: str | None,
    audiences: tuple[str, ...],
    clients: CdsClients,
    keys: KeySource,
    store: SessionStore,
    now: float | None = None,
) -> CdsClient:
    """The CDS Client that signed this call's JWT; CdsUnauthorized when it is not acceptable."""
    now = time.time() if now is None else now
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refuse("no bearer JWT in the Authorization header")
    token = token.strip()
    header, unverified = _unverified(token)
    iss = unverified.get("iss")
    client = clients.by_iss(iss) if isinstance(iss, str) else None
    if client is None:
        raise _refuse("iss is not a registered CDS Client")
    _check_header(header, client)
    document = keys(client, False)
    if not _has_kid(document, header["kid"]) and client.jwks_url:
        document = keys(client, True)  # the client may have rotated its keys
    if not _has_kid(document, header["kid"]):
        raise _refuse("kid is not in the issuer's JWK Set")
    try:
        key_set = KeySet.import_key_set(dict(document))  # type: ignore[arg-type]
        decoded = jwt.decode(token, key_set, algorithms=[header["alg"]])
    except (JoseError, ValueError, TypeError) as exc:
        raise _refuse("signature not verified by the issuer's keys") from exc
    claims = dict(decoded.claims)
    if claims.get("iss") != client.iss:
        raise _refuse("iss changed")
    _check_claims(claims, audiences, client, now)
    _once(store, claims, now)
    return client
