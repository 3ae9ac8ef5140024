"""The integrator's conformance check: what an EHR supports and how the app adapts, in words.

A pure report from two documents: the SMART configuration (``.well-known/smart-configuration``,
or ``None`` when the server has none) and the CapabilityStatement (``/metadata``, or ``None``).
The write-side adaptations come from :func:`attach_fhir.capabilities.adaptation_report`; the
launch-side ones (v1 scopes, no refresh, no OpenID, PKCE, client authentication, backend
services) are decided here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attach_fhir.capabilities import ServerCapabilities, adaptation_report, oauth_uris

#: Resource types whose interactions the report lists.
REPORTED_TYPES = (
    "Patient",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "CarePlan",
    "Goal",
    "Provenance",
    "DocumentReference",
    "Task",
    "ServiceRequest",
)
INTERACTION_ORDER = (
    "read",
    "vread",
    "search-type",
    "create",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
)
ASSERTION_ALGS = ("RS384", "ES384")

_V2 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.c?r?u?d?s?(\?\S*)?$")
_V1 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*)$")


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(frozen=True)
class SmartFacts:
    """What a SMART configuration says, read defensively (absent lists are empty)."""

    source: str  # "smart-configuration", "capability-statement" or "none"
    capabilities: frozenset[str] = frozenset()
    scopes: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ()
    signing_algs: tuple[str, ...] = ()
    pkce_methods: tuple[str, ...] = ()
    verifiable_id_token: bool = False

    @classmethod
    def read(cls, smart: Mapping[str, Any] | None, capability: Any) -> SmartFacts:
        """From the SMART configuration, else the CapabilityStatement's oauth-uris."""
        if isinstance(smart, Mapping) and smart.get("token_endpoint"):
            return cls(
                source="smart-configuration",
                capabilities=frozenset(_strings(smart.get("capabilities"))),
                scopes=tuple(_strings(smart.get("scopes_supported"))),
                grant_types=tuple(_strings(smart.get("grant_types_supported"))),
                auth_methods=tuple(_strings(smart.get("token_endpoint_auth_methods_supported"))),
                signing_algs=tuple(
                    _strings(smart.get("token_endpoint_auth_signing_alg_values_supported"))
                ),
                pkce_methods=tuple(_strings(smart.get("code_challenge_methods_supported"))),
                verifiable_id_token=bool(smart.get("issuer") and smart.get("jwks_uri")),
            )
        uris = oauth_uris(capability)
        if "authorize" in uris and "token" in uris:
            return cls(source="capability-statement")
        return cls(source="none")

    @property
    def declared(self) -> bool:
        """Whether a SMART configuration document was found (SMART 2 style discovery)."""
        return self.source == "smart-configuration"

    def scope_versions(self) -> list[str]:
        """``v1`` and/or ``v2``, from capabilities and scopes_supported."""
        resource = [s for s in self.scopes if "/" in s and not s.startswith("launch/")]
        found = []
        if "permission-v1" in self.capabilities or any(_V1.match(s) for s in resource):
            found.append("v1")
        if "permission-v2" in self.capabilities or any(_V2.match(s) for s in resource):
            found.append("v2")
        return found

    def v1_only(self) -> bool:
        """SMART v1 only: v1 declared and no v2, or endpoints only in the CapabilityStatement."""
        versions = self.scope_versions()
        if self.source == "capability-statement":
            return "v2" not in versions
        return versions == ["v1"]

    def refresh(self) -> bool:
        """Whether refresh tokens are offered."""
        return "refresh_token" in self.grant_types or bool(
            {"permission-offline", "permission-online"} & self.capabilities
        )

    def openid_fhir_user(self) -> bool:
        """Whether ``openid fhirUser`` can be requested and the id_token verified."""
        offered = "sso-openid-connect" in self.capabilities or {"openid", "fhirUser"} <= set(
            self.scopes
        )
        return offered and self.verifiable_id_token

    def backend_services(self) -> bool:
        """Whether SMART Backend Services (client_credentials + private_key_jwt) is offered."""
        return "client_credentials" in self.grant_types and "private_key_jwt" in self.auth_methods


@dataclass
class ConformanceReport:
    """The findings: facts in ``supports``, per-resource interactions, and adaptations."""

    iss: str
    supports: list[tuple[str, str]] = field(default_factory=list)
    resources: dict[str, list[str]] = field(default_factory=dict)
    adaptations: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as plain text lines."""
        out = [f"Conformance of {self.iss}", "", "What the EHR supports"]
        out += [f"  {topic:<22} {text}" for topic, text in self.supports]
        out += ["", "Interactions by resource"]
        for rtype, interactions in self.resources.items():
            out.append(f"  {rtype:<22} {', '.join(interactions) or 'not supported'}")
        out += ["", "How the app will adapt"]
        out += [f"  - {line}" for line in self.adaptations]
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "iss": self.iss,
            "supports": dict(self.supports),
            "resources": self.resources,
            "adaptations": self.adaptations,
        }


def _yes(flag: bool, detail: str = "") -> str:
    return ("yes" if flag else "no") + (f" ({detail})" if detail else "")


def _smart_supports(facts: SmartFacts) -> list[tuple[str, str]]:
    sources = {
        "smart-configuration": ".well-known/smart-configuration",
        "capability-statement": "CapabilityStatement oauth-uris (no .well-known)",
        "none": "no SMART endpoints found",
    }
    rows = [("discovery", sources[facts.source])]
    if not facts.declared:
        return rows
    caps = facts.capabilities
    modes = [
        m for k, m in (("launch-ehr", "EHR"), ("launch-standalone", "standalone")) if k in caps
    ]
    types = ("public", "confidential-symmetric", "confidential-asymmetric")
    methods = ", ".join(facts.auth_methods) or "not declared"
    if facts.signing_algs:
        methods += f"; assertion algs {', '.join(facts.signing_algs)}"
    pkce = ", ".join(facts.pkce_methods) if facts.pkce_methods else "not declared"
    rows += [
        ("launch modes", ", ".join(modes) or "not declared"),
        ("client types", ", ".join(t for t in types if f"client-{t}" in caps) or "not declared"),
        ("client auth", methods),
        ("PKCE", pkce),
        ("scope versions", ", ".join(facts.scope_versions()) or "not declared"),
        ("refresh", _yes(facts.refresh())),
        ("openid / fhirUser", _yes(facts.openid_fhir_user())),
        ("backend services", _yes(facts.backend_services())),
    ]
    return rows


def _launch_adaptations(facts: SmartFacts) -> list[str]:
    if facts.source == "none":
        return ["no SMART endpoints: the app cannot launch against this server"]
    lines = []
    if not facts.declared:
        lines.append(
            "no .well-known/smart-configuration: endpoints from the CapabilityStatement "
            "(SMART v1 server)"
        )
    if facts.v1_only():
        lines.append(
            "SMART v1 scopes only: the app requests v1 scopes (.read/.write) instead of v2"
        )
    if not facts.declared:
        lines.append(
            "nothing else declared: the app sends PKCE S256, asks for offline_access (and "
            "launches again when no refresh token comes), and leaves out openid fhirUser (no "
            "issuer keys to verify an id_token)"
        )
        return lines
    if facts.pkce_methods and "S256" not in facts.pkce_methods:
        lines.append("PKCE S256 not offered: launches are refused (the app requires S256)")
    elif not facts.pkce_methods:
        lines.append("PKCE methods not declared: the app sends S256 anyway")
    if not facts.refresh():
        lines.append(
            "no refresh tokens: when the access token expires the user launches again "
            "(answers typed so far are kept)"
        )
    if not facts.openid_fhir_user():
        lines.append(
            "no verifiable openid fhirUser: the app does not ask for them; results name the "
            "patient as author and care-plan changes (which need a clinician) are unavailable"
        )
    caps = facts.capabilities
    if "launch-ehr" not in caps:
        lines.append("no EHR launch: clinicians use the standalone launch")
    if "launch-standalone" not in caps:
        lines.append("no standalone launch: the app is started from the EHR only")
    elif "context-standalone-patient" not in caps and "launch/patient" not in facts.scopes:
        lines.append("no patient picker at the EHR: clinicians pick the patient in the app")
    if facts.auth_methods and "private_key_jwt" not in facts.auth_methods:
        lines.append(
            "private_key_jwt not offered: register the app as a confidential-symmetric or "
            "public client"
        )
    elif facts.signing_algs and not set(ASSERTION_ALGS) & set(facts.signing_algs):
        lines.append("neither RS384 nor ES384 for client assertions: private_key_jwt unusable")
    if facts.backend_services():
        lines.append(
            "backend services: outbox drain and bulk-score can use a system token "
            "(see docs/backend-services.md)"
        )
    else:
        lines.append(
            "no backend services: outbox drain and bulk-score have no system token; queued "
            "submissions wait for a user's session"
        )
    return lines


def _resource_supports(caps: ServerCapabilities) -> list[tuple[str, str]]:
    software = f" ({caps.software})" if caps.software else ""
    conditional = [t for t in REPORTED_TYPES if caps.can_conditional_create(t)]
    return [
        ("FHIR version", (caps.fhir_version or "not declared") + software),
        ("transaction", _yes(caps.transaction)),
        ("batch", _yes(caps.batch)),
        ("conditional create", ", ".join(conditional) or "none of the resources used"),
    ]


def _interactions(caps: ServerCapabilities, rtype: str) -> list[str]:
    declared = caps.interactions.get(rtype, frozenset())
    known = [i for i in INTERACTION_ORDER if i in declared]
    return known + sorted(declared - set(INTERACTION_ORDER))


def conformance_report(
    iss: str, smart: Mapping[str, Any] | None, capability: Mapping[str, Any] | None
) -> ConformanceReport:
    """The report for one server from its two discovery documents (either may be None)."""
    facts = SmartFacts.read(smart, capability)
    report = ConformanceReport(iss=iss.rstrip("/"), supports=_smart_supports(facts))
    if capability is None:
        report.supports.append(("CapabilityStatement", "not found at /metadata"))
        report.adaptations.append(
            "no CapabilityStatement: the app assumes transaction write-back with conditional "
            "creates and lets the server's answers decide"
        )
    else:
        caps = ServerCapabilities.from_statement(iss, capability)
        report.supports += _resource_supports(caps)
        report.resources = {t: _interactions(caps, t) for t in REPORTED_TYPES}
        report.adaptations += adaptation_report(caps)
    report.adaptations += _launch_adaptations(facts)
    return report
