"""SMART discovery: ``{iss}/.well-known/smart-configuration``, else the CapabilityStatement.

Results are cached per ``iss`` with an expiry; failures are not cached. The issuer's JWKS (for
id_token signatures) is cached the same way and refetched once when a ``kid`` is unknown. Per
process (:class:`DiscoveryCache`), or shared by every instance on PostgreSQL
(:class:`SharedDiscoveryCache`, the same expiry rules).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from attach_fhir.capabilities import oauth_uris
from attach_fhir.io.discovery_store import PostgresDiscoveryStore
from attach_fhir.io.smart_discovery import DiscoveryError, fetch_json

# Fetching and the oauth-uris extension are shared with the backend-services token source and
# the conformance check (attach_fhir.io.smart_discovery).
_get_json = fetch_json
_oauth_uris = oauth_uris


@dataclass(frozen=True)
class SmartConfiguration:
    """What the app uses from a server's SMART configuration."""

    authorization_endpoint: str
    token_endpoint: str
    source: str
    issuer: str | None = None
    jwks_uri: str | None = None
    scopes_supported: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()
    iss_parameter_supported: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def discover(iss: str, http: httpx.Client) -> SmartConfiguration:
    """Read the server's SMART configuration, falling back to its CapabilityStatement."""
    base = iss.rstrip("/")
    doc = _get_json(http, f"{base}/.well-known/smart-configuration")
    if doc is not None and _has_endpoints(doc):
        return _from_smart_configuration(doc)
    capability = _get_json(http, f"{base}/metadata", accept="application/fhir+json")
    if capability is not None:
        uris = _oauth_uris(capability)
        if "authorize" in uris and "token" in uris:
            return SmartConfiguration(
                authorization_endpoint=uris["authorize"],
                token_endpoint=uris["token"],
                source="capability-statement",
            )
    raise DiscoveryError()


def _has_endpoints(doc: Any) -> bool:
    return isinstance(doc, dict) and all(
        isinstance(doc.get(k), str) and doc[k].startswith(("https://", "http://"))
        for k in ("authorization_endpoint", "token_endpoint")
    )


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _from_smart_configuration(doc: dict[str, Any]) -> SmartConfiguration:
    methods = _strings(doc.get("code_challenge_methods_supported"))
    if methods and "S256" not in methods:
        raise DiscoveryError("The EHR does not support PKCE with S256, which the app requires.")
    issuer = doc.get("issuer")
    jwks_uri = doc.get("jwks_uri")
    return SmartConfiguration(
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        source="smart-configuration",
        issuer=issuer if isinstance(issuer, str) else None,
        jwks_uri=jwks_uri if isinstance(jwks_uri, str) else None,
        scopes_supported=_strings(doc.get("scopes_supported")),
        capabilities=_strings(doc.get("capabilities")),
        code_challenge_methods_supported=methods,
        iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        raw=doc,
    )


def to_json(config: SmartConfiguration) -> dict[str, Any]:
    """``config`` as a JSON object (for the shared cache)."""
    return dataclasses.asdict(config)


def from_json(data: dict[str, Any]) -> SmartConfiguration:
    """The SmartConfiguration :func:`to_json` made."""
    fields = {f.name for f in dataclasses.fields(SmartConfiguration)}
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields
    }
    return SmartConfiguration(**values)


class Cache(Protocol):
    """What the app asks of a discovery cache."""

    def get_or_fetch(self, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
        """The cached value for ``(kind, key)`` or a fresh one from ``fetch`` (then cached)."""

    def forget(self, kind: str, key: str) -> None:
        """Drop one entry."""


class DiscoveryCache:
    """Per-key cache with expiry for discovery documents and JWKS."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._guard = threading.Lock()

    def get_or_fetch(self, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
        """The cached value for ``(kind, key)`` or a fresh one from ``fetch`` (then cached)."""
        now = self._clock()
        with self._guard:
            hit = self._entries.get((kind, key))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = fetch()
        with self._guard:
            self._entries[(kind, key)] = (now + self.ttl, value)
        return value

    def forget(self, kind: str, key: str) -> None:
        """Drop one entry (e.g. a JWKS that lacks the ``kid`` just seen)."""
        with self._guard:
            self._entries.pop((kind, key), None)


class SharedDiscoveryCache:
    """The cache in PostgreSQL, for every instance: an entry one instance fetched serves the
    others until it expires (``ttl`` after the fetch, by ``clock``: seconds since the epoch,
    as instances share no monotonic clock). Values are JSON (a SmartConfiguration as
    :func:`to_json`); failures are not cached."""

    def __init__(
        self, store: PostgresDiscoveryStore, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock

    def get_or_fetch(self, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
        """The stored value for ``(kind, key)`` or a fresh one from ``fetch`` (then stored)."""
        now = self._clock()
        hit = self.store.get(kind, key, now)
        if hit is not None:
            return from_json(hit) if kind == "smart" else hit
        value = fetch()
        stored = to_json(value) if isinstance(value, SmartConfiguration) else value
        self.store.put(kind, key, stored, now + self.ttl)
        return value

    def forget(self, kind: str, key: str) -> None:
        """Drop one entry, for every instance."""
        self.store.forget(kind, key)

    def close(self) -> None:
        """Release the store's idle connections."""
        self.store.close()


def fetch_jwks(uri: str, http: httpx.Client) -> dict[str, Any]:
    """The issuer's public JWKS document."""
    doc = _get_json(http, uri)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise DiscoveryError("The EHR's signing keys (jwks_uri) could not be read.")
    return doc
