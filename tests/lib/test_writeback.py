"""The write-back resources, field by field against hand-written expectations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.scoring import Score, ScoreResult, score_response
from attach_fhir.writeback import (
    InvalidWriteback,
    WritebackContext,
    build_transaction,
    ordered_creates,
    resolve_references,
)

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
SYSTEM = "http://attach-fhir.org/fhir/identifier/submission"
SCORES = "http://attach-fhir.org/fhir/CodeSystem/attach-scores"
AGREE = "http://attach-fhir.org/fhir/CodeSystem/agreement-7"
PATTERN = "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern"
SURVEY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }
    ]
}
SCORE_UNIT = {"unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}"}
SECURITY = [
    {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "BH",
        "display": "behavioral health information sensitivity",
    },
    {
        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
        "code": "R",
        "display": "restricted",
    },
]
AUTHORED = "2024-05-01T10:15:00+02:00"


def ident(role: str, submission: str = "sub-1") -> str:
    """The documented derivation: uuid5 in the namespace of the identifier system."""
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, SYSTEM), f"{submission}/{role}"))


def load(name: str) -> dict[str, Any]:
    return json.loads((QUESTIONNAIRES / f"{name}.json").read_text(encoding="utf-8"))


def answer(link_id: str, point: int) -> dict[str, Any]:
    return {"linkId": link_id, "answer": [{"valueCoding": {"system": AGREE, "code": str(point)}}]}


def context(**overrides: Any) -> WritebackContext:
    values: dict[str, Any] = {
        "submission_id": "sub-1",
        "patient": "Patient/p1",
        "author": "Practitioner/dr1",
        "authored": AUTHORED,
        "encounter": "Encounter/e1",
        "app": {"reference": "Device/attach-fhir", "display": "attach-fhir"},
        "organization": "Organization/clinic",
    }
    values.update(overrides)
    return WritebackContext(**values)


ECR_R_ITEMS = [answer(str(i), 7) for i in range(1, 37)]
# Hand-computed from the published key (ECR-R: anxiety 1-18, avoidance 19-36; reversed 9, 11,
# 20, 22, 26-31, 33-36 as 8 - x): all answers 7 give anxiety (16*7 + 2*1)/18 = 114/18 and
# avoidance (6*7 + 12*1)/18 = 3.
ECR_R_RESULT = ScoreResult(
    "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0",
    "ecr-r-subscale-means",
    "1.0.0",
    {
        "ecr-r-anxiety": Score("ecr-r-anxiety", 114 / 18, "final", 18, 18),
        "ecr-r-avoidance": Score("ecr-r-avoidance", 3.0, "final", 18, 18),
    },
)


def ecr_r_bundle(**overrides: Any) -> dict[str, Any]:
    qr = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": ECR_R_ITEMS}
    return build_transaction(qr, load("ecr-r"), ECR_R_RESULT, context(**overrides))


def test_questionnaire_response_is_completed_with_its_context_and_scores() -> None:
    entry = ecr_r_bundle()["entry"][0]
    qr_id = ident("QuestionnaireResponse")
    assert entry["fullUrl"] == f"urn:uuid:{qr_id}"
    assert entry["request"] == {
        "method": "POST",
        "url": "QuestionnaireResponse",
        "ifNoneExist": f"identifier={SYSTEM}|{qr_id}",
    }
    assert entry["resource"] == {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": SYSTEM, "value": qr_id},
        # the canonical of the Questionnaire it answered: the packaged one, at its version
        "questionnaire": f"{load('ecr-r')['url']}|{load('ecr-r')['version']}",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authored": AUTHORED,
        "author": {"reference": "Practitioner/dr1"},
        "source": {"reference": "Patient/p1"},
        "item": [
            *ECR_R_ITEMS,
            {
                "linkId": "scores",
                "text": "Scores",
                "item": [
                    {
                        "linkId": "scores.ecr-r-anxiety",
                        "text": "ECR-R attachment anxiety",
                        "answer": [{"valueDecimal": 114 / 18}],
                    },
                    {
                        "linkId": "scores.ecr-r-avoidance",
                        "text": "ECR-R attachment avoidance",
                        "answer": [{"valueDecimal": 3.0}],
                    },
                ],
            },
        ],
    }


def test_one_observation_per_score() -> None:
    entries = ecr_r_bundle()["entry"]
    qr_url = f"urn:uuid:{ident('QuestionnaireResponse')}"
    anxiety = entries[1]
    assert anxiety["fullUrl"] == f"urn:uuid:{ident('ecr-r-anxiety')}"
    assert anxiety["request"]["ifNoneExist"] == f"identifier={SYSTEM}|{ident('ecr-r-anxiety')}"
    assert anxiety["resource"] == {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": ident("ecr-r-anxiety")}],
        "status": "final",
        "category": [SURVEY],
        "code": {
            "coding": [
                {"system": SCORES, "code": "ecr-r-anxiety", "display": "ECR-R attachment anxiety"}
            ],
            "text": "ECR-R attachment anxiety",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": AUTHORED,
        "performer": [{"reference": "Practitioner/dr1"}],
        "derivedFrom": [{"reference": qr_url}],
        "method": {"text": "ecr-r-subscale-means 1.0.0"},
        "valueQuantity": {"value": 114 / 18, **SCORE_UNIT},
    }
    avoidance = entries[2]["resource"]
    assert avoidance["code"]["coding"][0]["code"] == "ecr-r-avoidance"
    assert avoidance["valueQuantity"] == {"value": 3.0, **SCORE_UNIT}
    assert "interpretation" not in avoidance  # the ECR-R publishes no cut-offs


def test_provenance_targets_everything_and_names_app_and_user() -> None:
    bundle = ecr_r_bundle()
    entry = bundle["entry"][-1]
    prov_id = ident("Provenance")
    assert len(bundle["entry"]) == 4
    assert entry["fullUrl"] == f"urn:uuid:{prov_id}"
    assert entry["request"] == {
        "method": "POST",
        "url": "Provenance",
        "ifNoneExist": f"_tag={SYSTEM}|{prov_id}",
    }
    participant = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
    assert entry["resource"] == {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": SYSTEM, "code": prov_id}]},
        "target": [
            {"reference": f"urn:uuid:{ident('QuestionnaireResponse')}"},
            {"reference": f"urn:uuid:{ident('ecr-r-anxiety')}"},
            {"reference": f"urn:uuid:{ident('ecr-r-avoidance')}"},
        ],
        "recorded": AUTHORED,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {"coding": [{"system": participant, "code": "author"}]},
                "who": {"reference": "Practitioner/dr1"},
            },
            {
                "type": {"coding": [{"system": participant, "code": "assembler"}]},
                "who": {"reference": "Device/attach-fhir", "display": "attach-fhir"},
                "onBehalfOf": {"reference": "Organization/clinic"},
            },
        ],
    }


def test_security_labels_only_when_asked() -> None:
    plain = ecr_r_bundle()
    assert [e["resource"].get("meta", {}).get("security") for e in plain["entry"]] == [None] * 4
    labelled = ecr_r_bundle(security_labels=True)
    assert [e["resource"]["meta"]["security"] for e in labelled["entry"]] == [SECURITY] * 4


def test_retry_rebuilds_the_same_identifiers_and_another_submission_does_not() -> None:
    assert ecr_r_bundle() == ecr_r_bundle()
    first = {e["fullUrl"] for e in ecr_r_bundle()["entry"]}
    other = {e["fullUrl"] for e in ecr_r_bundle(submission_id="sub-2")["entry"]}
    assert first.isdisjoint(other)
    assert f"urn:uuid:{ident('Provenance', 'sub-2')}" in other


def test_without_encounter_or_provenance() -> None:
    bundle = ecr_r_bundle(encounter=None, include_provenance=False, source="RelatedPerson/rp1")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["QuestionnaireResponse", "Observation", "Observation"]
    assert all("encounter" not in e["resource"] for e in bundle["entry"])
    assert bundle["entry"][0]["resource"]["source"] == {"reference": "RelatedPerson/rp1"}


def test_ecr_rs_focus_is_the_related_person_else_a_note() -> None:
    questionnaire = load("ecr-rs")
    result = ScoreResult(
        "http://attach-fhir.org/fhir/Questionnaire/ecr-rs|1.1.0",
        "ecr-rs-relationship-means",
        "1.0.0",
        {
            "ecr-rs-mother-anxiety": Score("ecr-rs-mother-anxiety", 2.0, "final", 3, 3, "mother"),
            "ecr-rs-father-anxiety": Score(
                "ecr-rs-father-anxiety", None, "not-applicable", 0, 3, "father"
            ),
            "ecr-rs-partner-anxiety": Score(
                "ecr-rs-partner-anxiety", 5.0, "final", 3, 3, "partner"
            ),
        },
    )
    ctx = context(related_persons={"mother": "RelatedPerson/mum"})
    bundle = build_transaction({"item": []}, questionnaire, result, ctx)
    observations = [e["resource"] for e in bundle["entry"][1:-1]]
    assert [o["code"]["coding"][0]["code"] for o in observations] == [
        "ecr-rs-mother-anxiety",
        "ecr-rs-partner-anxiety",
    ]
    mother, partner = observations
    assert mother["focus"] == [{"reference": "RelatedPerson/mum", "display": "mother"}]
    assert "note" not in mother
    assert "focus" not in partner
    assert partner["note"] == [{"text": "Relationship target: partner"}]


def test_ecr_category_is_a_coded_value_that_interprets_its_dimensions() -> None:
    fearful = {"system": PATTERN, "code": "fearful"}
    result = ScoreResult(
        "http://attach-fhir.org/fhir/Questionnaire/ecr|1.1.0",
        "ecr-subscale-means-fisher-category",
        "1.0.0",
        {
            "ecr-anxiety": Score("ecr-anxiety", 5.5, "final", 18, 18),
            "ecr-avoidance": Score("ecr-avoidance", 4.5, "final", 18, 18),
            "ecr-category": Score("ecr-category", "fearful", "final", 36, 36, category=fearful),
        },
    )
    bundle = build_transaction({"item": []}, load("ecr"), result, context())
    anxiety, avoidance, category = (e["resource"] for e in bundle["entry"][1:4])
    assert anxiety["interpretation"] == [{"coding": [fearful]}]
    assert avoidance["interpretation"] == [{"coding": [fearful]}]
    assert category["valueCodeableConcept"] == {"coding": [fearful]}
    assert "valueQuantity" not in category
    assert category["derivedFrom"] == [
        {"reference": f"urn:uuid:{ident('QuestionnaireResponse')}"},
        {"reference": f"urn:uuid:{ident('ecr-anxiety')}"},
        {"reference": f"urn:uuid:{ident('ecr-avoidance')}"},
    ]
    scores_group = bundle["entry"][0]["resource"]["item"][-1]
    assert scores_group["item"][2] == {
        "linkId": "scores.ecr-category",
        "text": "ECR attachment category",
        "answer": [{"valueCoding": fearful}],
    }


def test_prorated_and_unscored_scores() -> None:
    result = ScoreResult(
        ECR_R_RESULT.questionnaire,
        "ecr-r-subscale-means",
        "1.0.0",
        {
            "ecr-r-anxiety": Score("ecr-r-anxiety", 6.0, "prorated", 16, 18),
            "ecr-r-avoidance": Score("ecr-r-avoidance", None, "not-scored", 10, 18),
        },
    )
    bundle = build_transaction({"item": []}, load("ecr-r"), result, context())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["QuestionnaireResponse", "Observation", "Provenance"]
    assert bundle["entry"][1]["resource"]["note"] == [
        {
            "text": "Prorated: mean of the 16 of 18 items answered "
            "(local convention, not an author rule)"
        }
    ]
    group = bundle["entry"][0]["resource"]["item"][-1]
    assert [i["linkId"] for i in group["item"]] == ["scores.ecr-r-anxiety"]


def test_the_real_scorer_feeds_the_builder() -> None:
    questionnaire = load("ecr-r")
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0",
        "status": "completed",
        "item": ECR_R_ITEMS,
    }
    result = score_response(questionnaire, qr)
    bundle = build_transaction(qr, questionnaire, result, context())
    values = [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"][1:3]]
    assert values == pytest.approx([114 / 18, 3.0])


def test_resources_that_are_not_fhir_are_refused() -> None:
    with pytest.raises(InvalidWriteback) as caught:
        ecr_r_bundle(authored="yesterday afternoon")
    problems = caught.value.details["problems"]
    assert any(p.startswith("QuestionnaireResponse: ('authored',)") for p in problems)
    assert any(p.startswith("Provenance: ('recorded',)") for p in problems)


@pytest.mark.parametrize("attempt", ["first", "again (the remembered verdict)"])
def test_an_answer_that_is_not_fhir_is_refused_each_time_with_its_place(attempt: str) -> None:
    del attempt  # the second run meets the verdict the first one left behind
    items = [*ECR_R_ITEMS]
    items[4] = {"linkId": "5", "answer": [{"valueDate": "the fifth of May"}]}
    items[9] = {"linkId": "10", "answer": [{"valueInteger": "seven"}]}
    qr = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": items}
    with pytest.raises(InvalidWriteback) as caught:
        build_transaction(qr, load("ecr-r"), ECR_R_RESULT, context())
    problems = caught.value.details["problems"]
    assert any(
        p.startswith("QuestionnaireResponse: ('item', 4, 'answer', 0, 'valueDate')")
        for p in problems
    )
    assert any(
        p.startswith("QuestionnaireResponse: ('item', 9, 'answer', 0, 'valueInteger')")
        for p in problems
    )
    assert not any("('item', 3," in p or "('item', 5," in p for p in problems)


def test_ordered_creates_keep_order_identifiers_and_conditions() -> None:
    bundle = ecr_r_bundle()
    steps = ordered_creates(bundle)
    assert [s["fullUrl"] for s in steps] == [e["fullUrl"] for e in bundle["entry"]]
    assert [s["ifNoneExist"] for s in steps] == [
        f"identifier={SYSTEM}|{ident('QuestionnaireResponse')}",
        f"identifier={SYSTEM}|{ident('ecr-r-anxiety')}",
        f"identifier={SYSTEM}|{ident('ecr-r-avoidance')}",
        f"_tag={SYSTEM}|{ident('Provenance')}",
    ]
    qr_url = f"urn:uuid:{ident('QuestionnaireResponse')}"
    resolved = resolve_references(steps[1]["resource"], {qr_url: "QuestionnaireResponse/42"})
    assert resolved["derivedFrom"] == [{"reference": "QuestionnaireResponse/42"}]
    assert resolved["subject"] == {"reference": "Patient/p1"}
    assert steps[1]["resource"]["derivedFrom"] == [{"reference": qr_url}]  # input untouched
