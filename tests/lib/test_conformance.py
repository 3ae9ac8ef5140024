"""The conformance report from hand-written discovery documents: each expected line is what a
person reading the two documents would conclude."""

from __future__ import annotations

from typing import Any

from attach_fhir.capabilities import SMART_OAUTH_URIS
from attach_fhir.conformance import conformance_report

ISS = "https://ehr.example.org/fhir"
WRITE = ["read", "search-type", "create", "update"]


def statement(
    resources: dict[str, list[str]],
    *,
    transaction: bool = True,
    conditional: tuple[str, ...] = (),
    oauth: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal CapabilityStatement: resource -> interactions, system interactions, oauth-uris."""
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": [
            {
                "type": rtype,
                "interaction": [{"code": c} for c in codes],
                **({"conditionalCreate": True} if rtype in conditional else {}),
            }
            for rtype, codes in resources.items()
        ],
        "interaction": [{"code": "transaction"}] if transaction else [{"code": "batch"}],
    }
    if oauth:
        rest["security"] = {
            "extension": [
                {
                    "url": SMART_OAUTH_URIS,
                    "extension": [{"url": k, "valueUri": v} for k, v in oauth.items()],
                }
            ]
        }
    return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [rest]}


FULL_SMART = {
    "issuer": "https://auth.example.org",
    "jwks_uri": "https://auth.example.org/jwks",
    "authorization_endpoint": "https://auth.example.org/authorize",
    "token_endpoint": "https://auth.example.org/token",
    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
    "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "code_challenge_methods_supported": ["S256"],
    "scopes_supported": ["openid", "fhirUser", "launch", "patient/*.rs", "system/*.rs"],
    "capabilities": [
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-v2",
        "sso-openid-connect",
        "permission-offline",
    ],
}
ALL_WRITABLE = {
    t: WRITE
    for t in (
        "Patient",
        "Questionnaire",
        "QuestionnaireResponse",
        "Observation",
        "CarePlan",
        "Goal",
        "Provenance",
    )
}
ALL_CONDITIONAL = ("Questionnaire", "QuestionnaireResponse", "Observation", "Provenance")


def test_a_full_smart_2_server_needs_no_adaptation_beyond_the_defaults() -> None:
    report = conformance_report(
        ISS + "/", FULL_SMART, statement(ALL_WRITABLE, conditional=ALL_CONDITIONAL)
    )
    assert report.lines() == [
        "Conformance of https://ehr.example.org/fhir",
        "",
        "What the EHR supports",
        "  discovery              .well-known/smart-configuration",
        "  launch modes           EHR, standalone",
        "  client types           public, confidential-asymmetric",
        "  client auth            private_key_jwt, client_secret_basic; "
        "assertion algs RS384, ES384",
        "  PKCE                   S256",
        "  scope versions         v2",
        "  refresh                yes",
        "  openid / fhirUser      yes",
        "  backend services       yes",
        "  FHIR version           4.0.1",
        "  transaction            yes",
        "  batch                  no",
        "  conditional create     Questionnaire, QuestionnaireResponse, Observation, Provenance",
        "",
        "Interactions by resource",
        "  Patient                read, search-type, create, update",
        "  Questionnaire          read, search-type, create, update",
        "  QuestionnaireResponse  read, search-type, create, update",
        "  Observation            read, search-type, create, update",
        "  CarePlan               read, search-type, create, update",
        "  Goal                   read, search-type, create, update",
        "  Provenance             read, search-type, create, update",
        "  DocumentReference      not supported",
        "  Task                   not supported",
        "  ServiceRequest         not supported",
        "",
        "How the app will adapt",
        "  - transaction: each submission is written in one transaction",
        "  - no SMART oauth-uris extension: endpoints from .well-known/smart-configuration",
        "  - backend services: outbox drain and bulk-score can use a system token "
        "(see docs/backend-services.md)",
    ]


def test_a_v1_server_without_refresh_openid_or_pkce_declared() -> None:
    smart = {
        "authorization_endpoint": "https://auth.example.org/authorize",
        "token_endpoint": "https://auth.example.org/token",
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": ["launch", "patient/*.read", "user/*.read"],
        "capabilities": ["launch-ehr", "permission-v1"],
    }
    report = conformance_report(ISS, smart, statement(ALL_WRITABLE, conditional=ALL_CONDITIONAL))
    supports = dict(report.supports)
    assert supports["scope versions"] == "v1"
    assert (supports["PKCE"], supports["refresh"], supports["openid / fhirUser"]) == (
        "not declared",
        "no",
        "no",
    )
    assert report.adaptations[2:] == [
        "SMART v1 scopes only: the app requests v1 scopes (.read/.write) instead of v2",
        "PKCE methods not declared: the app sends S256 anyway",
        "no refresh tokens: when the access token expires the user launches again "
        "(answers typed so far are kept)",
        "no verifiable openid fhirUser: the app does not ask for them; results name the "
        "patient as author and care-plan changes (which need a clinician) are unavailable",
        "no standalone launch: the app is started from the EHR only",
        "private_key_jwt not offered: register the app as a confidential-symmetric or "
        "public client",
        "no backend services: outbox drain and bulk-score have no system token; queued "
        "submissions wait for a user's session",
    ]


def test_openid_offered_without_issuer_keys_is_not_usable() -> None:
    smart = {k: v for k, v in FULL_SMART.items() if k != "jwks_uri"}
    report = conformance_report(ISS, smart, statement(ALL_WRITABLE))
    assert dict(report.supports)["openid / fhirUser"] == "no"


def test_pkce_without_s256_refuses_launches_and_no_rs384_es384_refuses_assertions() -> None:
    smart = {
        **FULL_SMART,
        "code_challenge_methods_supported": ["plain"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
    }
    report = conformance_report(ISS, smart, statement(ALL_WRITABLE))
    assert "PKCE S256 not offered: launches are refused (the app requires S256)" in (
        report.adaptations
    )
    assert "neither RS384 nor ES384 for client assertions: private_key_jwt unusable" in (
        report.adaptations
    )


def test_only_the_capability_statement_names_the_endpoints() -> None:
    oauth = {"authorize": "https://a.example/authorize", "token": "https://a.example/token"}
    capability = statement(ALL_WRITABLE, transaction=False, oauth=oauth)
    report = conformance_report(ISS, None, capability)
    assert report.supports[0] == ("discovery", "CapabilityStatement oauth-uris (no .well-known)")
    assert "PKCE" not in dict(report.supports)
    assert report.adaptations == [
        "no transaction: ordered conditional creates, one resource at a time",
        "conditional create not declared for QuestionnaireResponse, Observation, Provenance: "
        "sent with If-None-Exist anyway; a server that ignores it may duplicate on retry",
        "Questionnaire not conditionally creatable: referenced by canonical URL only",
        "SMART oauth-uris declared: authorize, token",
        "no .well-known/smart-configuration: endpoints from the CapabilityStatement "
        "(SMART v1 server)",
        "SMART v1 scopes only: the app requests v1 scopes (.read/.write) instead of v2",
        "nothing else declared: the app sends PKCE S256, asks for offline_access (and "
        "launches again when no refresh token comes), and leaves out openid fhirUser (no "
        "issuer keys to verify an id_token)",
    ]


def test_read_only_results_and_no_metadata() -> None:
    read_only = {t: ["read", "search-type"] for t in ALL_WRITABLE}
    read_only["DocumentReference"] = ["create"]
    report = conformance_report(ISS, FULL_SMART, statement(read_only))
    assert report.adaptations[0] == (
        "QuestionnaireResponse, Observation not writable: write a DocumentReference summary "
        "(the user is told first)"
    )
    assert report.resources["DocumentReference"] == ["create"]

    nothing = conformance_report(ISS, None, None)
    assert nothing.supports == [
        ("discovery", "no SMART endpoints found"),
        ("CapabilityStatement", "not found at /metadata"),
    ]
    assert nothing.adaptations == [
        "no CapabilityStatement: the app assumes transaction write-back with conditional "
        "creates and lets the server's answers decide",
        "no SMART endpoints: the app cannot launch against this server",
    ]
    assert nothing.to_json()["resources"] == {}
