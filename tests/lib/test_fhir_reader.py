"""The tolerant reader of EHR JSON: what parses is kept as sent, what does not is dropped and
counted, and no JSON at all makes it raise."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.fhir_reader import Reading, read_resource, search_matches

_KEYS = [
    "name", "given", "family", "text", "code", "coding", "system", "display", "value",
    "valueQuantity", "valueCoding", "reference", "item", "linkId", "answer", "entry", "goal",
    "activity", "detail", "description", "status", "link", "other", "rest", "resource", "id",
]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=15,
)
_TYPES = [
    "Patient", "Practitioner", "Observation", "QuestionnaireResponse", "Questionnaire",
    "CarePlan", "Goal", "Task", "RelatedPerson", "CapabilityStatement", "Bundle",
]  # fmt: skip


def test_the_parts_that_do_not_parse_are_dropped_and_counted() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": ["Junk", {"given": ["Ada"], "family": "Example"}, 7],
        "gender": 3,
        "birthDate": "1990-04-01",
    }
    reading = read_resource(patient)
    assert reading.resource == {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"given": ["Ada"], "family": "Example"}],
        "birthDate": "1990-04-01",
    }
    assert reading.dropped_parts == 3  # two names and the gender
    assert patient["name"][0] == "Junk"  # the caller's JSON is left as it was


def test_a_list_emptied_goes_with_its_field_and_nested_parts_go_alone() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {"linkId": "1", "answer": [{"valueCoding": "x"}, {"valueInteger": 2}]},
            "y",
            {"text": "no linkId"},
        ],
        "basedOn": ["z"],
    }
    reading = read_resource(response)
    assert reading.resource == {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": "1", "answer": [{"valueInteger": 2}]}],
    }
    assert reading.dropped_parts == 4


def test_what_is_not_a_resource_is_not_read() -> None:
    for raw in ("Patient", 3, None, [], {}, {"resourceType": "HumanName"}, {"resourceType": 5}):
        assert read_resource(raw).resource is None


def test_a_searchset_gives_its_readable_matches_and_counts_the_rest() -> None:
    good = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "a"}}
    half = {**good, "id": "o2", "code": "ecr-r-anxiety"}
    bundle = {
        "entry": [
            {"resource": good},
            "not an entry",
            {"resource": {"resourceType": "Observation", "id": "../x"}},  # not a FHIR id
            {"resource": half, "search": "match"},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
            {"resource": 7},
        ]
    }
    matches = search_matches(bundle)
    assert matches.resources == [good, {k: v for k, v in half.items() if k != "code"}]
    assert [r.dropped_parts for r in matches.readings] == [0, 1]
    assert matches.unreadable == 3
    assert search_matches({"entry": "x"}).readings == ()
    assert search_matches("x").readings == ()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_TYPES), st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=5))
def test_any_resource_a_server_sends_is_read_without_raising(
    resource_type: str, fields: dict[str, Any]
) -> None:
    raw = {"resourceType": resource_type, **fields}
    reading = read_resource(raw)
    if reading.resource is not None:
        # What is kept parses as FHIR (top-level required fields aside) and is a part of raw.
        kept = reading.resource
        assert kept["resourceType"] == resource_type
        assert set(kept) <= set(raw)
        assert read_resource(kept) == Reading(kept, 0)  # read again, nothing more to drop


@settings(max_examples=200, deadline=None)
@given(st.lists(_JSON | st.dictionaries(st.sampled_from(["resource", "search"]), _JSON)))
def test_any_searchset_a_server_sends_is_read_without_raising(entries: list[Any]) -> None:
    matches = search_matches({"resourceType": "Bundle", "entry": entries})
    assert len(matches.readings) + matches.unreadable <= len(entries)
    assert all(isinstance(r, dict) for r in matches.resources)
