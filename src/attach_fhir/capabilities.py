"""What a FHIR server says it can do (its CapabilityStatement), and how the app adapts to it.

The statement is read once per server and cached by base URL with an expiry. The answers are
plain data; :func:`adaptation_report` turns them into the sentences a conformance check or the
app shows before a user starts ("no transaction: ordered conditional creates").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
#: FHIR extension on ``rest.resource``: which search modes the server supports (GET, POST, both).
SEARCH_MODE = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-mode"

#: How a submission reaches the record.
WriteMode = Literal["transaction", "ordered-creates", "document-reference", "keep-and-export"]


@dataclass(frozen=True)
class ServerCapabilities:
    """The parts of a CapabilityStatement the app acts on."""

    base_url: str
    fhir_version: str | None = None
    software: str | None = None
    transaction: bool = False
    batch: bool = False
    interactions: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)
    conditional_create: frozenset[str] = field(default=frozenset(), repr=False)
    oauth_uris: Mapping[str, str] = field(default_factory=dict)
    #: The declared search mode per resource type (``GET``, ``POST`` or ``both``), if any.
    search_modes: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_statement(cls, base_url: str, statement: Mapping[str, Any]) -> ServerCapabilities:
        """Read a CapabilityStatement dict (server-mode ``rest`` entries only)."""
        transaction = batch = False
        interactions: dict[str, set[str]] = {}
        conditional: set[str] = set()
        oauth: dict[str, str] = {}
        modes: dict[str, str] = {}
        for rest in statement.get("rest") or []:
            if rest.get("mode", "server") != "server":
                continue
            codes = {i.get("code") for i in rest.get("interaction") or []}
            transaction |= "transaction" in codes
            batch |= "batch" in codes
            for res in rest.get("resource") or []:
                rtype = res.get("type")
                if not rtype:
                    continue
                interactions.setdefault(rtype, set()).update(
                    str(i.get("code")) for i in res.get("interaction") or [] if i.get("code")
                )
                if res.get("conditionalCreate") is True:
                    conditional.add(rtype)
                for ext in res.get("extension") or []:
                    if ext.get("url") == SEARCH_MODE and isinstance(ext.get("valueCode"), str):
                        modes[rtype] = ext["valueCode"]
            for ext in (rest.get("security") or {}).get("extension") or []:
                if ext.get("url") == SMART_OAUTH_URIS:
                    for sub in ext.get("extension") or []:
                        if sub.get("url") and sub.get("valueUri"):
                            oauth[sub["url"]] = sub["valueUri"]
        software = statement.get("software") or {}
        return cls(
            base_url=base_url.rstrip("/"),
            fhir_version=statement.get("fhirVersion"),
            software=" ".join(filter(None, [software.get("name"), software.get("version")]))
            or None,
            transaction=transaction,
            batch=batch,
            interactions={k: frozenset(v) for k, v in interactions.items()},
            conditional_create=frozenset(conditional),
            oauth_uris=oauth,
            search_modes=modes,
        )

    def supports(self, resource_type: str, interaction: str) -> bool:
        """Whether the server declares ``interaction`` (e.g. ``create``) on ``resource_type``."""
        return interaction in self.interactions.get(resource_type, frozenset())

    def searches_by_post(self, resource_type: str) -> bool:
        """Whether to search ``resource_type`` by ``POST [type]/_search``: it declares
        ``search-type`` and does not declare a search mode of GET only."""
        declared = self.search_modes.get(resource_type, "both")
        return self.supports(resource_type, "search-type") and declared != "GET"

    def can_create(self, resource_type: str) -> bool:
        """Whether ``resource_type`` can be created."""
        return self.supports(resource_type, "create")

    def can_conditional_create(self, resource_type: str) -> bool:
        """Whether ``resource_type`` can be created and declares ``conditionalCreate``."""
        return self.can_create(resource_type) and resource_type in self.conditional_create

    @property
    def write_mode(self) -> WriteMode:
        """How a scored submission is written to this server."""
        if self.can_create("QuestionnaireResponse") and self.can_create("Observation"):
            return "transaction" if self.transaction else "ordered-creates"
        if self.can_create("DocumentReference"):
            return "document-reference"
        return "keep-and-export"

    @property
    def writes_provenance(self) -> bool:
        """Whether a Provenance goes with the submission."""
        return self.can_create("Provenance")


def _list(types: list[str]) -> str:
    return ", ".join(types)


def adaptation_report(caps: ServerCapabilities) -> list[str]:
    """How the app will adapt to this server, one plain sentence per decision."""
    lines: list[str] = []
    if caps.fhir_version and not caps.fhir_version.startswith(("4.0", "4.3")):
        lines.append(f"FHIR version {caps.fhir_version} is not R4: results may be rejected")
    mode = caps.write_mode
    if mode == "transaction":
        lines.append("transaction: each submission is written in one transaction")
    elif mode == "ordered-creates":
        lines.append("no transaction: ordered conditional creates, one resource at a time")
    else:
        missing = [t for t in ("QuestionnaireResponse", "Observation") if not caps.can_create(t)]
        fallback = (
            "write a DocumentReference summary"
            if mode == "document-reference"
            else "keep and export"
        )
        lines.append(f"{_list(missing)} not writable: {fallback} (the user is told first)")
    if mode in ("transaction", "ordered-creates"):
        unconditional = [
            t
            for t in ("QuestionnaireResponse", "Observation", "Provenance")
            if caps.can_create(t) and not caps.can_conditional_create(t)
        ]
        if unconditional:
            lines.append(
                f"conditional create not declared for {_list(unconditional)}: sent with "
                "If-None-Exist anyway; a server that ignores it may duplicate on retry"
            )
        if not caps.writes_provenance:
            lines.append("Provenance not writable: results written without a Provenance")
    if not (caps.can_create("CarePlan") and caps.can_create("Goal")):
        lines.append("CarePlan or Goal not writable: the care plan is shown and exported only")
    if not caps.supports("Questionnaire", "search-type"):
        lines.append("Questionnaire not searchable: the packaged Questionnaire is used")
    elif not caps.can_conditional_create("Questionnaire"):
        lines.append("Questionnaire not conditionally creatable: referenced by canonical URL only")
    if not caps.supports("QuestionnaireResponse", "search-type"):
        lines.append("QuestionnaireResponse not searchable: no history or drafts from the server")
    elif not caps.supports("QuestionnaireResponse", "update"):
        lines.append("QuestionnaireResponse not updatable: drafts are kept by the app")
    if not caps.supports("Observation", "search-type"):
        lines.append("Observation not searchable: no score history from the server")
    if caps.oauth_uris:
        lines.append("SMART oauth-uris declared: " + _list(sorted(caps.oauth_uris)))
    else:
        lines.append(
            "no SMART oauth-uris extension: endpoints from .well-known/smart-configuration"
        )
    return lines


class MetadataSource(Protocol):
    """Anything with a base URL that can fetch its CapabilityStatement (a FhirClient)."""

    base_url: str

    def capabilities(self) -> dict[str, Any]:
        """The CapabilityStatement."""
        ...


class CapabilityCache:
    """Capabilities per base URL, read once and kept for ``ttl`` seconds (thread-safe)."""

    def __init__(self, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ServerCapabilities]] = {}

    def get(self, client: MetadataSource) -> ServerCapabilities:
        """The cached capabilities of the client's server, reading metadata when expired."""
        key = client.base_url.rstrip("/")
        with self._lock:
            cached = self._entries.get(key)
            if cached and cached[0] > self._clock():
                return cached[1]
        caps = ServerCapabilities.from_statement(key, client.capabilities())
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, caps)
        return caps

    def invalidate(self, base_url: str) -> None:
        """Forget one server (e.g. after it answered against its declared capabilities)."""
        with self._lock:
            self._entries.pop(base_url.rstrip("/"), None)


def oauth_uris(capability: Any) -> dict[str, str]:
    """The ``oauth-uris`` extension of a CapabilityStatement: ``{authorize, token, ...}``."""
    found: dict[str, str] = {}
    if not isinstance(capability, dict):
        return found
    for rest in capability.get("rest") or []:
        security = rest.get("security") if isinstance(rest, dict) else None
        for ext in (security or {}).get("extension") or []:
            if not isinstance(ext, dict) or ext.get("url") != SMART_OAUTH_URIS:
                continue
            for sub in ext.get("extension") or []:
                if isinstance(sub, dict) and isinstance(sub.get("valueUri"), str):
                    found[str(sub.get("url"))] = sub["valueUri"]
    return found
