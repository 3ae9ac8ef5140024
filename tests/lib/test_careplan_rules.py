"""The rules document: shipped file, a clinic's own file, and rejected files naming the bad key."""

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.careplan_proposal import ProposalInputs, propose
from attach_fhir.careplan_rules import (
    ACTIVITIES_SYSTEM,
    InvalidCarePlanRules,
    Timing,
    load_rules,
    parse_rules,
)
from attach_fhir.fhir_models import CodeSystem
from attach_fhir.goal_target import ScoreScale

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "attach_fhir" / "data" / "careplan-rules.json"
ACTIVITIES_CS = ROOT / "questionnaires" / "codesystem-attach-activities.json"

ACTIVITY_CODES = {
    "attachment-psychoeducation",
    "attachment-reassessment",
    "mindfulness-practice",
    "life-story-narrative",
    "attachment-journaling",
    "art-based-expression",
    "attachment-play-sessions",
    "reflective-parenting-sessions",
    "support-network",
}


def shipped_document() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def problems_of(document: Any, tmp_path: Path) -> list[str]:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InvalidCarePlanRules) as caught:
        load_rules(path)
    assert caught.value.to_dict()["problems"] == caught.value.problems
    return caught.value.problems


def test_shipped_rules_load_with_their_documented_settings() -> None:
    rules = load_rules()
    assert rules.version == "1.0.0"
    assert (rules.target_method, rules.fraction, rules.decimals) == (
        "fraction-of-distance",
        0.25,
        2,
    )
    assert rules.horizon_weeks == 24
    assert set(rules.focuses) == {
        "relationship-issues",
        "adult-transition",
        "healing-after-trauma",
        "parenting",
    }
    # No instrument in the shared data has a reliability figure verified in two sources.
    assert dict(rules.reliable_change) == {}


def test_activity_codes_are_exactly_the_project_codesystem() -> None:
    document = json.loads(ACTIVITIES_CS.read_text(encoding="utf-8"))
    CodeSystem.model_validate(document)
    assert (
        document["url"]
        == ACTIVITIES_SYSTEM
        == "http://attach-fhir.org/fhir/CodeSystem/attach-activities"
    )
    assert {c["code"] for c in document["concept"]} == ACTIVITY_CODES
    assert document["count"] == len(document["concept"]) == 9
    rules = load_rules()
    assert {a.code for a in rules.activities} == ACTIVITY_CODES
    assert {a.system for a in rules.activities} == {ACTIVITIES_SYSTEM}


@pytest.mark.parametrize(
    ("timing", "phrase"),
    [
        (Timing(1, 1, "wk"), "every week"),
        (Timing(1, 8, "wk"), "every 8 weeks"),
        (Timing(2, 1, "wk"), "twice a week"),
        (Timing(3, 2, "wk"), "3 times every 2 weeks"),
        (Timing(1, 1, "mo"), "every month"),
        (Timing(1, 2, "wk", count=3), "every 2 weeks, 3 times in all"),
        (Timing(1, 1, "d", duration_minutes=10), "every day, about 10 minutes each time"),
    ],
)
def test_timing_in_plain_words(timing: Timing, phrase: str) -> None:
    assert timing.phrase() == phrase


def test_a_misspelt_key_is_named(tmp_path: Path) -> None:
    doc = shipped_document()
    doc["activities"][0]["perfomers"] = doc["activities"][0].pop("performers")
    problems = problems_of(doc, tmp_path)
    assert len(problems) == 2
    assert any(
        p.startswith("activities/0: ") and "'perfomers' was unexpected" in p for p in problems
    )
    assert any(
        p.startswith("activities/0: ") and "'performers' is a required" in p for p in problems
    )


def test_a_bad_value_is_named_by_its_path(tmp_path: Path) -> None:
    doc = shipped_document()
    doc["activities"][3]["performers"] = ["robot"]
    doc["goals"]["target"]["fraction"] = 1.5
    problems = problems_of(doc, tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith("activities/3/performers/0: 'robot' is not one of")
    assert problems[1].startswith("goals/target/fraction: 1.5 is greater than the maximum of 1")


def test_an_unverified_reliability_figure_is_refused(tmp_path: Path) -> None:
    doc = shipped_document()
    # The ECR-RS test-retest figures are single source: they may not drive anything.
    doc["reliableChange"] = {
        "ecr-rs-partner-anxiety": {
            "amount": 1,
            "citation": "author page",
            "confidence": "single source",
        }
    }
    problems = problems_of(doc, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("reliableChange/ecr-rs-partner-anxiety/confidence: ")
    assert "'verified in 2 sources' was expected" in problems[0]


def test_references_the_schema_cannot_check_are_named(tmp_path: Path) -> None:
    doc = shipped_document()
    doc["activities"][1]["id"] = doc["activities"][0]["id"]
    doc["activities"][2]["description"] = "Fill it in {when}."
    doc["activities"][8]["when"]["focuses"] = ["grief"]
    doc["goals"]["text"]["lower"] = "Lower {score}"
    problems = problems_of(doc, tmp_path)
    assert problems == [
        "goals/text/lower: unknown placeholder(s) ['score']",
        "activities/1/id: 'psychoeducation-child' is used twice",
        "activities/2/description: unknown placeholder(s) ['when']",
        "activities/8/when/focuses: focus 'grief' is not defined under focuses",
    ]


def test_a_nested_condition_is_checked_too(tmp_path: Path) -> None:
    doc = shipped_document()
    assert doc["activities"][5]["id"] == "reflective-parenting"
    doc["activities"][5]["when"]["anyOf"][1] = {"roles": ["grandparent"]}
    problems = problems_of(doc, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("activities/5/when/anyOf/1/roles/0: 'grandparent' is not one of")


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidCarePlanRules, match=r"\(file\): cannot be read as JSON"):
        load_rules(path)
    with pytest.raises(InvalidCarePlanRules, match=r"cannot be read"):
        load_rules(tmp_path / "missing.json")


def test_a_document_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(InvalidCarePlanRules) as caught:
        parse_rules([])  # type: ignore[arg-type]
    assert caught.value.problems == ["(root): [] is not of type 'object'"]


def test_a_clinic_file_changes_targets_and_adds_its_own_activity(tmp_path: Path) -> None:
    doc = shipped_document()
    clinic = copy.deepcopy(doc)
    clinic["version"] = "2.0.0"
    clinic["goals"]["target"]["fraction"] = 0.5
    clinic["goals"]["horizonWeeks"] = 12
    clinic["activities"].append(
        {
            "id": "walk-and-talk",
            "code": "walk",
            "system": "http://clinic.example/CodeSystem/activities",
            "display": "Walk and talk",
            "description": "Take a walk with someone you trust {timing}.",
            "performers": ["patient"],
            "timing": {"frequency": 1, "period": 1, "periodUnit": "wk"},
            "when": {"focuses": ["relationship-issues"]},
        }
    )
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(clinic), encoding="utf-8")
    rules = load_rules(str(path))
    scale = ScoreScale("ecr-r-anxiety", 1, 7, "lower")
    inputs = ProposalInputs(
        scores={"ecr-r-anxiety": 5.0},
        scales={"ecr-r-anxiety": scale},
        start_date=date(2025, 1, 6),
        birth_date="1990-04-02",
        focuses=("relationship-issues",),
    )
    proposal = propose(inputs, rules)
    # 5.0 - 0.5 x (5.0 - 1) = 3.0; due 12 weeks after 6 January = 31 March.
    (goal,) = proposal.goals
    assert f"{goal.target:f}" == "3.00"
    assert goal.due_date == date(2025, 3, 31)
    assert "(version 2.0.0)" in goal.note
    walk = [a for a in proposal.activities if a.code == "walk"]
    assert [(a.system, a.description) for a in walk] == [
        (
            "http://clinic.example/CodeSystem/activities",
            "Take a walk with someone you trust every week.",
        )
    ]
    # The shipped rules give 4.00 for the same score (5.0 - 0.25 x 4).
    assert f"{propose(inputs).goals[0].target:f}" == "4.00"
