"""Reading CapabilityStatements and the plain-words adaptation report."""

from __future__ import annotations

from typing import Any

from attach_fhir.capabilities import (
    SEARCH_MODE,
    SMART_OAUTH_URIS,
    CapabilityCache,
    ServerCapabilities,
    adaptation_report,
)

FULL = ["read", "vread", "create", "update", "search-type"]


def resource(kind: str, interactions: list[str], conditional: bool = True) -> dict[str, Any]:
    return {
        "type": kind,
        "interaction": [{"code": code} for code in interactions],
        "conditionalCreate": conditional,
    }


def statement(resources: list[dict[str, Any]], system: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Example EHR", "version": "9"},
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": SMART_OAUTH_URIS,
                            "extension": [
                                {"url": "authorize", "valueUri": "https://ehr/auth"},
                                {"url": "token", "valueUri": "https://ehr/token"},
                            ],
                        }
                    ]
                },
                "interaction": [{"code": code} for code in system],
                "resource": resources,
            },
            # A client-mode entry says nothing about what the server does.
            {"mode": "client", "interaction": [{"code": "transaction"}]},
        ],
    }


EVERYTHING = [
    resource(kind, FULL)
    for kind in (
        "QuestionnaireResponse",
        "Observation",
        "CarePlan",
        "Goal",
        "Provenance",
        "DocumentReference",
        "Questionnaire",
    )
]


def test_a_full_server() -> None:
    caps = ServerCapabilities.from_statement(
        "https://ehr/fhir/", statement(EVERYTHING, ["batch", "transaction"])
    )
    assert caps.base_url == "https://ehr/fhir"
    assert (caps.transaction, caps.batch, caps.software) == (True, True, "Example EHR 9")
    assert caps.interactions["Observation"] == frozenset(FULL)
    assert caps.can_conditional_create("Provenance")
    assert caps.oauth_uris == {"authorize": "https://ehr/auth", "token": "https://ehr/token"}
    assert caps.write_mode == "transaction"
    assert adaptation_report(caps) == [
        "transaction: each submission is written in one transaction",
        "SMART oauth-uris declared: authorize, token",
    ]


def test_no_transaction_and_no_conditional_create_on_observation() -> None:
    resources = [r for r in EVERYTHING if r["type"] != "Observation"]
    resources.append(resource("Observation", FULL, conditional=False))
    caps = ServerCapabilities.from_statement("https://ehr/fhir", statement(resources, ["batch"]))
    assert caps.write_mode == "ordered-creates"
    assert not caps.can_conditional_create("Observation")
    assert adaptation_report(caps)[:2] == [
        "no transaction: ordered conditional creates, one resource at a time",
        "conditional create not declared for Observation: sent with If-None-Exist anyway; "
        "a server that ignores it may duplicate on retry",
    ]


def test_read_only_questionnaire_response() -> None:
    resources = [r for r in EVERYTHING if r["type"] not in ("QuestionnaireResponse", "Provenance")]
    resources.append(resource("QuestionnaireResponse", ["read", "search-type"]))
    caps = ServerCapabilities.from_statement("https://ehr/fhir", statement(resources, []))
    assert caps.write_mode == "document-reference"
    assert not caps.writes_provenance
    assert adaptation_report(caps) == [
        "QuestionnaireResponse not writable: write a DocumentReference summary "
        "(the user is told first)",
        "QuestionnaireResponse not updatable: drafts are kept by the app",
        "SMART oauth-uris declared: authorize, token",
    ]


def test_a_read_only_server() -> None:
    read_only = [resource(r["type"], ["read"]) for r in EVERYTHING]
    caps = ServerCapabilities.from_statement(
        "https://ehr/fhir", {"rest": [{"resource": read_only}]}
    )
    assert caps.write_mode == "keep-and-export"
    assert adaptation_report(caps) == [
        "QuestionnaireResponse, Observation not writable: keep and export (the user is told first)",
        "CarePlan or Goal not writable: the care plan is shown and exported only",
        "Questionnaire not searchable: the packaged Questionnaire is used",
        "QuestionnaireResponse not searchable: no history or drafts from the server",
        "Observation not searchable: no score history from the server",
        "no SMART oauth-uris extension: endpoints from .well-known/smart-configuration",
    ]


class Server:
    """Counts metadata reads (a plain object: the cache only needs base_url and capabilities())."""

    def __init__(self, base_url: str, version: str) -> None:
        self.base_url = base_url
        self.version = version
        self.reads = 0

    def capabilities(self) -> dict[str, Any]:
        self.reads += 1
        return {"fhirVersion": self.version, "rest": []}


def test_cache_reads_once_per_server_until_expiry() -> None:
    now = [1000.0]
    cache = CapabilityCache(ttl=60, clock=lambda: now[0])
    a, b = Server("https://a/fhir", "4.0.1"), Server("https://b/fhir/", "5.0.0")
    assert cache.get(a).fhir_version == "4.0.1"
    assert cache.get(a).fhir_version == "4.0.1"
    assert cache.get(b).fhir_version == "5.0.0"
    assert (a.reads, b.reads) == (1, 1)
    now[0] += 61
    cache.get(a)
    assert a.reads == 2
    cache.invalidate("https://b/fhir")
    cache.get(b)
    assert b.reads == 2
    assert adaptation_report(cache.get(b))[0] == (
        "FHIR version 5.0.0 is not R4: results may be rejected"
    )


def test_search_by_post_unless_the_server_declares_get_only() -> None:
    get_only = {
        **resource("Patient", ["read", "search-type"]),
        "extension": [{"url": SEARCH_MODE, "valueCode": "GET"}],
    }
    both = {
        **resource("Practitioner", ["read", "search-type"]),
        "extension": [{"url": SEARCH_MODE, "valueCode": "both"}],
    }
    caps = ServerCapabilities.from_statement(
        "https://ehr/fhir",
        statement(
            [get_only, both, resource("Group", ["read"]), resource("Goal", ["search-type"])],
            [],
        ),
    )
    assert caps.search_modes == {"Patient": "GET", "Practitioner": "both"}
    assert not caps.searches_by_post("Patient")  # declared GET only
    assert caps.searches_by_post("Practitioner")
    assert caps.searches_by_post("Goal")  # search-type without a declared mode: both forms
    assert not caps.searches_by_post("Group")  # no search at all
    assert not caps.searches_by_post("Encounter")  # not listed
