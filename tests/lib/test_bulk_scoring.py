"""Bulk scoring's pure parts: which scores a response already has, and the transaction that adds
only the missing ones (references to the existing resources, identifiers from the response id)."""

from __future__ import annotations

import json
from pathlib import Path

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.io.bulk_scoring import existing_scores, missing_bundle, submission_id
from attach_fhir.scoring import score_response
from attach_fhir.writeback import SUBMISSION_SYSTEM, WritebackContext, identifier_value
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import from_answers

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"


def test_existing_scores_by_response() -> None:
    observations = [
        {
            "id": "o1",
            "code": {"coding": [{"system": SCORES_SYSTEM, "code": "ecr-anxiety"}]},
            "derivedFrom": [{"reference": "QuestionnaireResponse/q1"}],
        },
        {
            "id": "o2",
            "code": {"coding": [{"system": SCORES_SYSTEM, "code": "ecr-avoidance"}]},
            "derivedFrom": [{"reference": "https://ehr.example/fhir/QuestionnaireResponse/q1"}],
        },
        {  # another system's code is not one of our scores
            "id": "o3",
            "code": {"coding": [{"system": "http://loinc.org", "code": "12345-6"}]},
            "derivedFrom": [{"reference": "QuestionnaireResponse/q1"}],
        },
        {  # derived from an Observation only
            "id": "o4",
            "code": {"coding": [{"system": SCORES_SYSTEM, "code": "ecr-category"}]},
            "derivedFrom": [{"reference": "Observation/o1"}],
        },
    ]
    assert existing_scores(observations) == {
        "q1": {"ecr-anxiety": "Observation/o1", "ecr-avoidance": "Observation/o2"}
    }


def test_only_the_missing_category_is_written_and_points_at_what_exists() -> None:
    ecr = next(e for e in EXAMPLES if e.instrument == "ecr")
    questionnaire = json.loads((QUESTIONNAIRES / "ecr.json").read_text())
    response = {**from_answers(questionnaire, ecr.answers), "id": "q1"}
    result = score_response(questionnaire, response)
    ctx = WritebackContext(
        submission_id=submission_id("q1"),
        patient="Patient/p1",
        author="Practitioner/d1",
        authored="2024-05-01T10:15:00Z",
    )
    existing = {"ecr-anxiety": "Observation/o1", "ecr-avoidance": "Observation/o2"}
    bundle = missing_bundle(response, questionnaire, result, ctx, existing)
    category, provenance = (e["resource"] for e in bundle["entry"])
    assert [e["request"]["url"] for e in bundle["entry"]] == ["Observation", "Provenance"]
    assert category["code"]["coding"][0]["code"] == "ecr-category"
    assert category["valueCodeableConcept"]["coding"][0]["code"] == ecr.expected["ecr-category"]
    assert category["derivedFrom"][0] == {"reference": "QuestionnaireResponse/q1"}
    assert sorted(r["reference"] for r in category["derivedFrom"][1:]) == [
        "Observation/o1",
        "Observation/o2",
    ]
    value = identifier_value("bulk-score/QuestionnaireResponse/q1", "ecr-category")
    assert category["identifier"] == [{"system": SUBMISSION_SYSTEM, "value": value}]
    assert bundle["entry"][0]["request"]["ifNoneExist"] == f"identifier={SUBMISSION_SYSTEM}|{value}"
    targets = [t["reference"] for t in provenance["target"]]
    assert targets[0] == "QuestionnaireResponse/q1"
    assert sorted(targets[1:3]) == ["Observation/o1", "Observation/o2"]
    assert targets[3] == bundle["entry"][0]["fullUrl"]
