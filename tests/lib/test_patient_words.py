"""The patient's words: questionnaires named with who asked and by when, goals as a number to
reach by a day, and only dimension scores, each with its scale. Expected texts written by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.careplan_fhir import GOAL_BASELINE_EXT, GOAL_DIRECTION_EXT
from attach_fhir.goal_target import ScoreScale
from attach_fhir.instruments import library
from attach_fhir.patient_words import (
    NOT_YET,
    assignment_line,
    day_words,
    goal_words,
    person_name,
    questionnaire_name,
    score_line,
)

TODAY = dt.date(2026, 12, 6)
ANXIETY = ScoreScale("ecr-r-anxiety", 1, 7, "lower", "ECR-R attachment anxiety")


def instrument(instrument_id: str) -> Any:
    return next(i for i in library().instruments() if i.id == instrument_id)


def goal(achievement: str | None = None) -> dict[str, Any]:
    """A Goal as the app writes it: anxiety 6.0555... down to 5.2 by 1 March 2027."""
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "description": {"text": "Lower your ECR-R attachment anxiety score from 6.06 ..."},
        "target": [
            {
                "extension": [
                    {"url": GOAL_BASELINE_EXT, "valueQuantity": {"value": 6.055555555555555}},
                    {"url": GOAL_DIRECTION_EXT, "valueCode": "lower"},
                ],
                "measure": {"coding": [{"system": SCORES_SYSTEM, "code": "ecr-r-anxiety"}]},
                "detailQuantity": {"value": 5.2, "comparator": "<="},
                "dueDate": "2027-03-01",
            }
        ],
    }
    if achievement:
        resource["achievementStatus"] = {"coding": [{"code": achievement}]}
    return resource


def test_an_assignment_names_the_questionnaire_who_asked_and_the_day_it_is_due() -> None:
    name = questionnaire_name(instrument("ecr-r"), "Assessment")
    assert name == "ECR-R relationships questionnaire"
    line = assignment_line(name, "Dr Example", "2026-12-12", TODAY)
    assert line == "ECR-R relationships questionnaire, requested by Dr Example, due 12 Dec"


def test_a_parent_report_is_a_parenting_questionnaire_and_next_year_carries_the_year() -> None:
    name = questionnaire_name(instrument("prfq"), "Assessment")
    assert assignment_line(name, None, "2027-01-15", TODAY) == (
        "PRFQ parenting questionnaire, due 15 Jan 2027"
    )


def test_an_unknown_questionnaire_keeps_the_title_the_clinic_gave_it() -> None:
    assert questionnaire_name(None, "Sleep diary") == "Sleep diary"
    assert assignment_line("Sleep diary", None, "not a date", TODAY) == "Sleep diary"
    assert day_words(None, TODAY) is None


def test_a_clinician_is_named_with_their_prefix() -> None:
    names = [{"prefix": ["Dr"], "given": ["Rowan"], "family": "Example"}]
    assert person_name(names) == "Dr Rowan Example"
    assert person_name([{"text": "Dr R. Example"}]) == "Dr R. Example"
    assert person_name("nonsense") == ""


def test_a_goal_reads_as_what_to_reach_by_when_rounded_for_reading() -> None:
    words = goal_words(goal(), ANXIETY, None, TODAY)
    assert words is not None
    assert words.what == "Lower your ECR-R attachment anxiety score"
    assert words.target == (
        "5.20 or lower, from 6.06 when the goal was set (the scale runs from 1.00 to 7.00)"
    )
    assert words.by_when == "1 Mar 2027"
    assert words.progress == NOT_YET
    assert words.latest is None


def test_goal_progress_is_in_words_with_the_latest_score() -> None:
    words = goal_words(goal("improving"), ANXIETY, (5.5, "2027-01-20"), TODAY)
    assert words is not None
    assert words.progress == "You are moving towards this goal."
    assert words.latest == "Your latest score: 5.50 (20 Jan 2027)"


def test_the_baseline_is_not_shown_as_a_latest_score() -> None:
    words = goal_words(goal(), ANXIETY, (6.055555555555555, "2026-12-06"), TODAY)
    assert words is not None and words.progress == NOT_YET and words.latest is None


def test_a_goal_this_app_did_not_write_is_left_out() -> None:
    assert goal_words({"resourceType": "Goal", "target": []}, ANXIETY, None, TODAY) is None


def test_only_dimension_scores_are_put_to_the_patient() -> None:
    line = score_line("ecr-r-avoidance", "ECR-R attachment avoidance", 2.0, ANXIETY)
    assert line == (
        "ECR-R attachment avoidance: 2.00 on a scale from 1.00 to 7.00 (higher means more avoidant)"
    )
    assert score_line("rq-fearful", "RQ fearful rating", 5, ANXIETY) is None
    assert score_line("ecr-category", "ECR attachment category", 1, ANXIETY) is None
