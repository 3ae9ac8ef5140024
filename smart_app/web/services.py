"""The app's long-lived collaborators, built once by ``create_app`` and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from flask import Flask, current_app

from smart_app.web import discovery_cache, outbound
from smart_app.web.audit import AuditedTransport, AuditTrail, Who
from smart_app.web.discovery_cache import Cache, SmartConfiguration
from smart_app.web.read_cache import LaunchReads, ReadCache
from smart_app.web.registrations import Registration, Registrations
from smart_app.web.session_store import SessionStore

EXTENSION = "attach_fhir"


@dataclass
class Services:
    """Registrations, the session store, the discovery cache, the outbound transport and the
    launches' read cache."""

    registrations: Registrations
    store: SessionStore
    #: Per process, or shared by every instance (PostgreSQL).
    cache: Cache
    #: The app's one outbound transport; tests may inject one to record or produce faults.
    transport: httpx.BaseTransport | None = None
    #: Each launch's recent Patient, CapabilityStatement and Questionnaire reads.
    reads: ReadCache = field(default_factory=lambda: ReadCache(0))
    #: Records every FHIR request of a launch (see ``launch_http``) and the launch events.
    audit: AuditTrail | None = None

    def http(self, reg: Registration) -> httpx.Client:
        """An SSRF-guarded outbound client for ``reg``'s servers."""
        return outbound.client(reg.allow_addresses, self.transport)

    def launch_http(
        self, reg: Registration, launch_id: str, iss: str, who: Who | None = None
    ) -> httpx.Client:
        """An SSRF-guarded client for one launch: its repeated reads come from ``reads``; each
        FHIR request (a remembered read too) is audited for ``who``."""
        inner = self.transport if self.transport is not None else outbound.SharedTransport()
        reads = LaunchReads(inner, self.reads, launch_id, iss)
        return outbound.client(reg.allow_addresses, self.audited(reads, who))

    def audited_http(self, reg: Registration, who: Who) -> httpx.Client:
        """An SSRF-guarded client whose FHIR requests are audited for ``who``."""
        inner = self.transport if self.transport is not None else outbound.SharedTransport()
        return outbound.client(reg.allow_addresses, self.audited(inner, who))

    def audited(self, inner: httpx.BaseTransport, who: Who | None) -> httpx.BaseTransport:
        """``inner`` with the audit trail's recording around it (when there is a trail)."""
        if self.audit is None or who is None:
            return inner
        return AuditedTransport(inner, self.audit, who)

    def smart_configuration(self, iss: str, reg: Registration) -> SmartConfiguration:
        """Discovery for ``iss`` (cached per iss with expiry)."""

        def fetch() -> SmartConfiguration:
            with self.http(reg) as http:
                return discovery_cache.discover(iss, http)

        config: SmartConfiguration = self.cache.get_or_fetch("smart", iss, fetch)
        return config

    def jwks(self, uri: str, reg: Registration, refetch: bool = False) -> dict[str, Any]:
        """The issuer's JWKS (cached; ``refetch`` drops the cached copy first)."""
        if refetch:
            self.cache.forget("jwks", uri)

        def fetch() -> dict[str, Any]:
            with self.http(reg) as http:
                return discovery_cache.fetch_jwks(uri, http)

        keys: dict[str, Any] = self.cache.get_or_fetch("jwks", uri, fetch)
        return keys


def init_app(app: Flask, services: Services) -> None:
    """Attach ``services`` to ``app``."""
    app.extensions[EXTENSION] = services


def get_services() -> Services:
    """The current app's services."""
    services: Services = current_app.extensions[EXTENSION]
    return services
