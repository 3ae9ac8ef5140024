"""The AuditEvent builder: BALP's codes for each kind of event, references only, and every
record valid for the R4 AuditEvent model. Expected values are written out by hand."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from attach_fhir import audit_events
from attach_fhir.audit_events import (
    AuditFacts,
    Interaction,
    audit_event,
    fhir_interaction,
    interaction,
    location_reference,
    outcome_of,
    patients_in,
    query_patients,
    redacted_query,
)
from attach_fhir.fhir_models import AuditEvent

WHEN = datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
BASE = "https://ehr.example/fhir"


def facts(**changes: object) -> AuditFacts:
    """A clinician's read of a patient's Observation, with ``changes``."""
    values: dict[str, object] = {
        "event": "read",
        "outcome": "0",
        "recorded": WHEN,
        "server": BASE,
        "client_id": "attach-app",
        "user": "Practitioner/rowan",
        "patient": "Patient/p-29",
        "resource": "Observation/o-1",
        "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    values.update(changes)
    return AuditFacts(**values)  # type: ignore[arg-type]


def valid(event: dict[str, object]) -> dict[str, object]:
    AuditEvent.model_validate(event)
    return event


def test_a_read_is_a_rest_read_by_the_user_of_the_patients_resource() -> None:
    event = valid(audit_event(facts()))
    assert event["type"] == {
        "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "code": "rest",
        "display": "Restful Operation",
    }
    assert event["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}
    ]
    assert event["action"] == "R"
    assert event["recorded"] == "2026-03-14T09:26:53.589+00:00"
    assert event["outcome"] == "0"
    user, app, server = event["agent"]  # type: ignore[misc]
    assert user["who"] == {"reference": "Practitioner/rowan"} and user["requestor"] is True
    assert app["type"]["coding"][0]["code"] == "110153"
    assert app["who"]["identifier"] == {
        "system": "urn:ietf:params:oauth:client-id",
        "value": "attach-app",
    }
    assert app["requestor"] is False
    assert server["type"]["coding"][0]["code"] == "110152"
    assert server["network"] == {"address": BASE, "type": "5"}
    patient, resource, request_id = event["entity"]  # type: ignore[misc]
    assert patient["what"] == {"reference": "Patient/p-29"}
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")
    assert resource["what"] == {"reference": "Observation/o-1"}
    assert (resource["type"]["code"], resource["role"]["code"]) == ("2", "4")
    assert request_id == {
        "what": {"identifier": {"value": "4bf92f3577b34da6a3ce929d0e0e4736"}},
        "type": {
            "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
            "code": "XrequestId",
        },
    }


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("create", "C"),
        ("update", "U"),
        ("delete", "D"),
        ("transaction", "E"),
        ("search-type", "E"),
        ("vread", "R"),
        ("capabilities", "R"),
    ],
)
def test_each_interaction_has_its_action(event: str, action: str) -> None:
    assert valid(audit_event(facts(event=event)))["action"] == action


def test_a_search_records_its_query_with_only_reference_and_code_values() -> None:
    event = valid(
        audit_event(
            facts(
                event="search-type",
                resource="Patient",
                query="name=Smith&birthdate=1997-05-02&_count=10&identifier=MRN%7C123",
                patient=None,
            )
        )
    )
    (query, _request) = event["entity"]  # type: ignore[misc]
    assert query["what"] == {"type": "Patient"}
    assert query["role"]["code"] == "24"
    assert base64.b64decode(query["query"]).decode() == "name=*&birthdate=*&_count=10&identifier=*"


def test_a_launch_is_a_user_authentication_with_the_get_access_token_subtype() -> None:
    event = valid(audit_event(facts(event="launch", resource=None, request_id=None)))
    assert event["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110114",
        "display": "User Authenticated",
    }
    assert event["subtype"] == [
        {"system": "urn:ihe:event-type-code", "code": "ITI-71", "display": "Get Access Token"},
        {"system": "http://attach-fhir.org/fhir/CodeSystem/audit-event", "code": "launch"},
    ]
    assert event["action"] == "E"
    assert event["entity"] == [  # the patient only
        {
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "1",
                "display": "Person",
            },
            "role": {
                "system": "http://terminology.hl7.org/CodeSystem/object-role",
                "code": "1",
                "display": "Patient",
            },
            "what": {"reference": "Patient/p-29"},
        }
    ]


def test_a_refused_iss_is_a_security_alert_by_the_app_alone_with_the_reason_code() -> None:
    event = valid(
        audit_event(AuditFacts("iss-refused", "4", WHEN, detail="unknown_issuer"), "host-a")
    )
    assert event["type"]["code"] == "110113"  # type: ignore[index]
    assert event["subtype"] == [
        {"system": "http://attach-fhir.org/fhir/CodeSystem/audit-event", "code": "iss-refused"}
    ]
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "unknown_issuer"
    (app,) = event["agent"]  # type: ignore[misc]
    assert app["requestor"] is True  # no user signed in: the app asked
    assert event["source"]["observer"] == {"display": "host-a"}  # type: ignore[index]
    assert "entity" not in event


def test_recorded_keeps_the_clocks_instant_in_utc_and_refuses_a_naive_one() -> None:
    local = datetime(2026, 3, 14, 23, 30, tzinfo=timezone(timedelta(hours=14)))
    assert audit_event(facts(recorded=local))["recorded"] == "2026-03-14T23:30:00.000+14:00"
    with pytest.raises(ValueError, match="aware"):
        audit_event(facts(recorded=datetime(2026, 3, 14)))


def test_unknown_events_and_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="event"):
        audit_event(facts(event="look"))
    with pytest.raises(ValueError, match="outcome"):
        audit_event(facts(outcome="1"))


@pytest.mark.parametrize(
    ("method", "path", "query", "form", "expected"),
    [
        ("GET", "metadata", "", None, Interaction("capabilities", None, None)),
        ("GET", "Patient/p-29", "", None, Interaction("read", "Patient/p-29", None)),
        (
            "GET",
            "Observation",
            "patient=p-29",
            None,
            Interaction("search-type", "Observation", "patient=p-29"),
        ),
        (
            "POST",
            "Patient/_search",
            "",
            "name=Smith",
            Interaction("search-type", "Patient", "name=Smith"),
        ),
        ("POST", "", "", None, Interaction("transaction", "Bundle", None)),
        (
            "POST",
            "QuestionnaireResponse",
            "",
            None,
            Interaction("create", "QuestionnaireResponse", None),
        ),
        ("PUT", "CarePlan/c-1", "", None, Interaction("update", "CarePlan/c-1", None)),
        (
            "PUT",
            "QuestionnaireResponse",
            "identifier=s%7C1",
            None,
            Interaction("update", "QuestionnaireResponse", "identifier=s%7C1"),
        ),
        (
            "GET",
            "Questionnaire/q/_history/2",
            "",
            None,
            Interaction("vread", "Questionnaire/q", None),
        ),
        (
            "POST",
            "Questionnaire/$validate",
            "",
            None,
            Interaction("operation", "Questionnaire", None),
        ),
        ("GET", ".well-known/smart-configuration", "", None, None),
    ],
)
def test_requests_are_classified_by_interaction(
    method: str, path: str, query: str, form: str | None, expected: Interaction | None
) -> None:
    assert interaction(method, path, query, form) == expected


def test_only_requests_under_the_fhir_base_are_interactions_and_audit_copies_are_not() -> None:
    base = "/fhir/"
    assert fhir_interaction("GET", "/fhir/Patient/p1", base, "") == Interaction(
        "read", "Patient/p1", None
    )
    assert fhir_interaction("GET", "/fhir", base, "_type=Goal") == Interaction(
        "search-system", None, "_type=Goal"
    )
    assert fhir_interaction("POST", "/fhir", base, "") == Interaction("transaction", "Bundle", None)
    assert fhir_interaction("POST", "/token", base, "") is None  # the token endpoint
    assert fhir_interaction("GET", "/fhirstyle.css", base, "") is None  # only a path prefix
    assert fhir_interaction("POST", "/fhir/AuditEvent", base, "") is None  # the trail's copies
    assert fhir_interaction("GET", "/Patient/p1", "", "") == Interaction(
        "read", "Patient/p1", None
    )  # a server at the root of its host


def test_location_headers_name_the_created_resource() -> None:
    assert location_reference(f"{BASE}/Observation/o-9/_history/1") == "Observation/o-9"
    assert location_reference("Goal/g-2") == "Goal/g-2"
    assert location_reference("") is None


def test_http_statuses_map_to_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 201, 304, 401, 412, 500, 503, None)] == [
        "0",
        "0",
        "0",
        "4",
        "4",
        "8",
        "8",
        "8",
    ]


def test_redaction_keeps_modifiers_of_kept_parameters_only() -> None:
    assert redacted_query("subject:Patient=Patient/1&name:exact=Ann") == (
        "subject:Patient=Patient/1&name:exact=*"
    )


def test_only_queries_with_nothing_redacted_are_remembered() -> None:
    """The app's own searches repeat on every page and are remembered with their result; a
    search holding a value the trail redacts (a name) is never kept in memory."""
    kept = "patient=p-17&code=http://loinc.org|1234-5&_count=100&_sort=-date"
    expected = "patient=p-17&code=http://loinc.org|1234-5&_count=100&_sort=-date"
    assert redacted_query(kept) == expected
    assert audit_events._FULLY_KEPT[kept] == expected
    assert redacted_query(kept) == expected  # the remembered answer is the same
    named = "name=Ann%20Smith&birthdate=1990-01-02&_count=10"
    assert redacted_query(named) == "name=*&birthdate=*&_count=10"
    assert redacted_query(named) == "name=*&birthdate=*&_count=10"
    assert named not in audit_events._FULLY_KEPT
    assert not any("Ann" in query for query in audit_events._FULLY_KEPT)


def test_a_system_clients_request_has_the_app_as_requestor_and_no_user() -> None:
    event = valid(audit_event(facts(user=None, client_id="attach-bulk")))
    (requestor,) = [a for a in event["agent"] if a["requestor"]]  # type: ignore[union-attr]
    assert requestor["who"] == {
        "display": "attach-fhir",
        "identifier": {"system": "urn:ietf:params:oauth:client-id", "value": "attach-bulk"},
    }
    assert requestor["type"]["coding"][0]["code"] == "110153"


@pytest.mark.parametrize(
    ("event", "action"), [("bulk-status", "E"), ("bulk-cancel", "D"), ("bulk-file", "R")]
)
def test_bulk_data_steps_are_operations_with_the_apps_code(event: str, action: str) -> None:
    built = valid(audit_event(facts(event=event, patient=None, resource="Observation")))
    assert built["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "operation"},
        {"system": "http://attach-fhir.org/fhir/CodeSystem/audit-event", "code": event},
    ]
    assert built["action"] == action


def test_the_patients_a_search_names() -> None:
    assert query_patients("patient=p1&status=final") == ["Patient/p1"]
    assert query_patients("subject=Patient/p1,Patient/p2&subject=Group/g") == [
        "Patient/p1",
        "Patient/p2",
    ]
    assert query_patients("subject=https://ehr.example/fhir/Patient/p3") == ["Patient/p3"]
    assert query_patients("subject=p4&code=1") == []  # a bare subject may be any type
    assert query_patients("name=Ann&birthdate=1990") == []


def test_the_patients_a_body_is_about() -> None:
    observation = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    goal = {"resourceType": "Goal", "subject": {"reference": "Group/g"}}
    consent = {"resourceType": "Consent", "patient": {"reference": "Patient/p2"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": observation},
            {"resource": goal},
            {"resource": {**observation, "id": "o-2"}},
            {"resource": consent},
            {"resource": {"resourceType": "Patient", "id": "p3"}},
            {"request": {"method": "DELETE", "url": "Observation/o-9"}},
        ],
    }
    assert patients_in(observation) == ["Patient/p1"]
    assert patients_in(goal) == []
    assert patients_in(bundle) == ["Patient/p1", "Patient/p2", "Patient/p3"]
    assert patients_in(None) == [] and patients_in([observation]) == []
