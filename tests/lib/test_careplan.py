"""Care-plan proposals: goals, activities per life stage and focus, targets, FHIR resources.

Targets are checked against hand arithmetic: shipped rules move the baseline 25% of the way to
the favourable end of the 1-7 scale, rounded to 2 decimals towards that end, due 24 weeks after
the start (6 January 2025 + 168 days = 23 June 2025).
"""

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from attach_fhir.careplan_fhir import (
    CAREPLAN_SYSTEM,
    achievement_status,
    build_resources,
    goal_measure,
    validate_resources,
)
from attach_fhir.careplan_proposal import (
    ActivityProposal,
    Proposal,
    ProposalInputs,
    ScoreInput,
    UnknownFocus,
    propose,
)
from attach_fhir.goal_target import (
    AchievementStatus,
    GoalMeasure,
    ReliableChange,
    ScoreScale,
    assess_achievement,
    fraction_target,
    packaged_scales,
    reliable_change_target,
)
from attach_fhir.lifestage import LifeStage, Role

START = date(2025, 1, 6)
DUE = date(2025, 6, 23)
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0"
PRFQ = "http://attach-fhir.org/fhir/Questionnaire/prfq|1.1.0"

# Written from docs/scoring-model.md, independently of the Questionnaire files.
SCALES = {
    "ecr-r-anxiety": ScoreScale("ecr-r-anxiety", 1, 7, "lower", "ECR-R attachment anxiety", ECR_R),
    "ecr-r-avoidance": ScoreScale("ecr-r-avoidance", 1, 7, "lower", None, ECR_R),
    "ecr-rs-mother-anxiety": ScoreScale("ecr-rs-mother-anxiety", 1, 7, "lower"),
    "ecr-rs-partner-avoidance": ScoreScale("ecr-rs-partner-avoidance", 1, 7, "lower"),
    "prfq-pre-mentalizing": ScoreScale("prfq-pre-mentalizing", 1, 7, "lower", None, PRFQ),
    "prfq-certainty": ScoreScale("prfq-certainty", 1, 7, None, None, PRFQ),
    "prfq-interest-curiosity": ScoreScale("prfq-interest-curiosity", 1, 7, "higher", None, PRFQ),
    "rq-secure": ScoreScale("rq-secure", 1, 7, "higher"),
}
ECR_R_SCORES = {"ecr-r-anxiety": 5.5, "ecr-r-avoidance": 3.0}
PRFQ_SCORES = {"prfq-pre-mentalizing": 7 / 3, "prfq-certainty": 4.0, "prfq-interest-curiosity": 4.2}

ADULT = "1990-04-02"
ADOLESCENT = "2010-03-01"  # 14 on the start date
SCHOOL_CHILD = "2016-09-01"  # 8
YOUNG_CHILD = "2022-05-01"  # 2


def make(scores: dict[str, Any], **kwargs: Any) -> Proposal:
    return propose(ProposalInputs(scores=scores, scales=SCALES, start_date=START, **kwargs))


def rule_ids(proposal: Proposal) -> list[str]:
    return [a.rule_id for a in proposal.activities]


def activity(proposal: Proposal, rule_id: str) -> ActivityProposal:
    (found,) = [a for a in proposal.activities if a.rule_id == rule_id]
    return found


def targets(proposal: Proposal) -> dict[str, str]:
    return {g.score: f"{g.target:f}" for g in proposal.goals}


# --- activities by life stage and focus -----------------------------------------------------


@pytest.mark.parametrize(
    ("birth_date", "focuses", "expected"),
    [
        (ADULT, (), ["psychoeducation", "reassessment", "mindfulness", "journaling"]),
        (
            ADULT,
            ("relationship-issues",),
            ["psychoeducation", "reassessment", "mindfulness", "journaling", "support-network"],
        ),
        (
            ADULT,
            ("healing-after-trauma",),
            [
                "psychoeducation",
                "reassessment",
                "mindfulness",
                "journaling",
                "life-story",
                "art-expression",
                "support-network",
            ],
        ),
        (
            ADULT,
            ("adult-transition",),
            [
                "psychoeducation",
                "reassessment",
                "mindfulness",
                "journaling",
                "life-story",
                "support-network",
            ],
        ),
        (
            ADULT,
            ("parenting",),
            [
                "psychoeducation",
                "reassessment",
                "reflective-parenting",
                "mindfulness",
                "journaling",
            ],
        ),
        (
            ADOLESCENT,
            (),
            [
                "psychoeducation",
                "reassessment",
                "mindfulness",
                "journaling",
                "art-expression",
                "support-network",
            ],
        ),
        (
            SCHOOL_CHILD,
            (),
            [
                "psychoeducation-child",
                "reassessment-child",
                "play-sessions",
                "reflective-parenting",
                "art-expression",
            ],
        ),
        (
            YOUNG_CHILD,
            (),
            [
                "psychoeducation-child",
                "reassessment-child",
                "play-sessions",
                "reflective-parenting",
            ],
        ),
        (None, (), ["psychoeducation", "reassessment"]),
    ],
)
def test_activities_follow_life_stage_and_focus(
    birth_date: str | None, focuses: tuple[str, ...], expected: list[str]
) -> None:
    assert rule_ids(make(ECR_R_SCORES, birth_date=birth_date, focuses=focuses)) == expected


def test_no_journaling_or_mindfulness_for_children_and_no_play_for_adults() -> None:
    for birth_date in (YOUNG_CHILD, SCHOOL_CHILD):
        codes = {a.code for a in make(ECR_R_SCORES, birth_date=birth_date).activities}
        assert "attachment-journaling" not in codes and "mindfulness-practice" not in codes
    for birth_date in (ADOLESCENT, ADULT):
        codes = {a.code for a in make(ECR_R_SCORES, birth_date=birth_date).activities}
        assert "attachment-play-sessions" not in codes


def test_prfq_scores_bring_caregiver_sessions_linked_to_the_prfq_goals() -> None:
    proposal = make({**ECR_R_SCORES, **PRFQ_SCORES}, birth_date=ADULT)
    sessions = activity(proposal, "reflective-parenting")
    assert sessions.code == "reflective-parenting-sessions"
    assert sessions.goal_scores == ("prfq-pre-mentalizing", "prfq-interest-curiosity")
    # An adult doing caregiver sessions is the caregiver.
    assert sessions.performers == ("clinician", "patient")


def test_the_caregiver_role_alone_brings_caregiver_sessions() -> None:
    plain = make(ECR_R_SCORES, birth_date=ADULT)
    with_role = make(ECR_R_SCORES, birth_date=ADULT, roles=frozenset({Role.CAREGIVER}))
    assert "reflective-parenting" not in rule_ids(plain)
    assert "reflective-parenting" in rule_ids(with_role)


def test_for_a_child_the_caregiver_performs_and_reads_the_activity() -> None:
    proposal = make(ECR_R_SCORES, birth_date=YOUNG_CHILD)
    assert activity(proposal, "psychoeducation-child").performers == ("clinician", "caregiver")
    assert activity(proposal, "reassessment-child").performers == ("caregiver",)
    assert activity(proposal, "play-sessions").description == (
        "You and your child play together in sessions with the clinician. Through play you "
        "practise noticing what your child feels and needs, and responding to it. This happens "
        "every week."
    )


def test_the_life_stage_override_wins_over_the_birth_date() -> None:
    proposal = make(ECR_R_SCORES, birth_date=ADULT, life_stage=LifeStage.ADOLESCENCE)
    assert proposal.life_stage is LifeStage.ADOLESCENCE
    assert "art-expression" in rule_ids(proposal)


def test_reassessment_every_8_weeks_with_the_questionnaires_used() -> None:
    proposal = make({**ECR_R_SCORES, **PRFQ_SCORES}, birth_date=ADULT)
    again = activity(proposal, "reassessment")
    assert (again.timing.frequency, again.timing.period, again.timing.period_unit) == (1, 8, "wk")
    assert again.instantiates == (ECR_R, PRFQ)
    assert again.description == (
        "You fill in the same questionnaire again every 8 weeks, so that you and your clinician "
        "can see together what has changed."
    )
    assert again.goal_scores == (
        "ecr-r-anxiety",
        "ecr-r-avoidance",
        "prfq-pre-mentalizing",
        "prfq-interest-curiosity",
    )


def test_an_undefined_focus_is_refused() -> None:
    with pytest.raises(UnknownFocus, match="'grief'"):
        make(ECR_R_SCORES, birth_date=ADULT, focuses=("grief",))


# --- goals -----------------------------------------------------------------------------------


def test_goal_targets_by_hand() -> None:
    proposal = make(
        {**ECR_R_SCORES, **PRFQ_SCORES},
        birth_date=ADULT,
        conditions=("Condition/7",),
        clinician="Practitioner/3",
    )
    # anxiety 5.5 - 0.25 x 4.5 = 4.375 -> 4.37 (rounded down, the favourable way)
    # avoidance 3.0 - 0.25 x 2 = 2.5
    # pre-mentalizing 7/3 - 0.25 x 4/3 = 2 -> 2.00 (the float 7/3 must not tip it to 1.99)
    # interest and curiosity 4.2 + 0.25 x 2.8 = 4.9 (higher is favourable)
    assert targets(proposal) == {
        "ecr-r-anxiety": "4.37",
        "ecr-r-avoidance": "2.50",
        "prfq-pre-mentalizing": "2.00",
        "prfq-interest-curiosity": "4.90",
    }
    anxiety = proposal.goals[0]
    assert anxiety.description == (
        "Lower your ECR-R attachment anxiety score from 5.5 to 4.37 or less by 2025-06-23"
    )
    assert (anxiety.start_date, anxiety.due_date, proposal.end_date) == (START, DUE, DUE)
    assert anxiety.addresses == ("Condition/7",)
    assert anxiety.expressed_by == "Practitioner/3"
    assert proposal.goals[3].description == (
        "Raise your prfq-interest-curiosity score from 4.2 to 4.90 or more by 2025-06-23"
    )


def test_rounding_goes_towards_the_favourable_end() -> None:
    # 6.9 + 0.25 x 0.1 = 6.925 -> 6.93 upwards; 1.3 - 0.25 x 0.3 = 1.225 -> 1.22 downwards.
    proposal = make({"prfq-interest-curiosity": 6.9, "ecr-r-anxiety": 1.3}, birth_date=ADULT)
    assert targets(proposal) == {"prfq-interest-curiosity": "6.93", "ecr-r-anxiety": "1.22"}


def test_the_goal_note_states_its_basis() -> None:
    history = (
        ScoreInput("ecr-r-anxiety", 6.25, effective=date(2024, 5, 1)),
        ScoreInput("ecr-r-anxiety", 6.0, effective=date(2024, 9, 1)),
        ScoreInput("ecr-r-avoidance", 2.0, effective=date(2024, 9, 1)),
    )
    latest = {"ecr-r-anxiety": ScoreInput("ecr-r-anxiety", 5.5, effective=date(2025, 1, 2))}
    (goal,) = make(latest, birth_date=ADULT, history=history).goals
    assert goal.note == (
        "Target 4.37 or lower by 2025-06-23: 25% of the distance from the baseline 5.5 to the "
        "favourable end of the scale (1; lower is favourable on this instrument), rounded towards "
        "that end to 2 decimals. Baseline 5.5 measured on 2025-01-02; scale 1 to 7. Earlier values "
        "on record: 6 (2024-09-01), 6.25 (2024-05-01). This is a planning target from the "
        "care-plan rules (version 1.0.0), not a clinical cut-off or norm. No reliable-change "
        "figure verified in two sources is recorded for this score, so progress is judged by "
        "plain comparison with the baseline."
    )


def test_which_scores_get_no_goal_and_why() -> None:
    scores = {
        "ecr-r-anxiety": 1.0,
        "prfq-certainty": 4.0,
        "rq-secure": 3.0,
        "ecr-category": {"value": "secure", "status": "final"},
        "ecr-rs-father-anxiety": {"value": None, "status": "not-applicable"},
        "ecr-rs-mother-anxiety": {"value": 4.0, "status": "final", "focus": "mother"},
        "ecr-rs-unknown-anxiety": 3.0,
    }
    proposal = make(scores, birth_date=ADULT)
    assert targets(proposal) == {"ecr-rs-mother-anxiety": "3.25"}  # 4 - 0.25 x 3
    assert {s.score: s.reason for s in proposal.skipped} == {
        "ecr-category": "no numeric value",
        "ecr-rs-father-anxiety": "no numeric value",
        "ecr-r-anxiety": "already at the favourable end of the scale",
        "prfq-certainty": "the instrument gives no desirable direction for this score",
        "rq-secure": "not a default goal score",
        "ecr-rs-unknown-anxiety": "the score's scale is not known",
    }


@pytest.mark.parametrize(
    ("focus", "goal_scores"),
    [
        ("relationship-issues", ["ecr-r-anxiety", "ecr-r-avoidance", "ecr-rs-partner-avoidance"]),
        ("adult-transition", ["ecr-rs-mother-anxiety", "ecr-rs-partner-avoidance"]),
        (
            "healing-after-trauma",
            [
                "ecr-r-anxiety",
                "ecr-r-avoidance",
                "ecr-rs-mother-anxiety",
                "ecr-rs-partner-avoidance",
            ],
        ),
        ("parenting", ["prfq-pre-mentalizing", "prfq-interest-curiosity"]),
    ],
)
def test_the_focus_chooses_the_goal_scores(focus: str, goal_scores: list[str]) -> None:
    scores = {
        **ECR_R_SCORES,
        "ecr-rs-mother-anxiety": 4.0,
        "ecr-rs-partner-avoidance": 5.0,
        **PRFQ_SCORES,
        "rq-secure": 2.0,
    }
    proposal = make(scores, birth_date=ADULT, focuses=(focus,))
    assert [g.score for g in proposal.goals] == goal_scores


def test_scales_from_the_packaged_questionnaires_agree_with_the_documented_ones() -> None:
    packaged = packaged_scales()
    for code, scale in SCALES.items():
        got = packaged[code]
        assert (got.low, got.high, got.desirable) == (scale.low, scale.high, scale.desirable)
    assert packaged["ecr-r-anxiety"].questionnaire == ECR_R


# --- target arithmetic and re-assessment -------------------------------------------------------


ANXIETY = SCALES["ecr-r-anxiety"]
#: A made-up figure to exercise the arithmetic; no such figure is published and verified.
SYNTHETIC = ReliableChange(0.8, "synthetic figure for a unit test, not a published value")


def test_fraction_and_reliable_change_targets() -> None:
    assert fraction_target(5.5, ANXIETY, 0.5, 2).value == Decimal("3.25")  # 5.5 - 0.5 x 4.5
    assert reliable_change_target(5.5, ANXIETY, SYNTHETIC, 2).value == Decimal("4.70")
    # Never past the favourable end: 1.5 - 0.8 stops at 1.
    assert reliable_change_target(1.5, ANXIETY, SYNTHETIC, 2).value == Decimal("1.00")


@pytest.mark.parametrize(
    ("new", "status"),
    [
        (4.37, AchievementStatus.ACHIEVED),
        (3.0, AchievementStatus.ACHIEVED),
        (5.0, AchievementStatus.IMPROVING),
        (5.5, AchievementStatus.NO_CHANGE),
        (5.6, AchievementStatus.WORSENING),
    ],
)
def test_plain_comparison_when_no_reliable_change_is_published(
    new: float, status: AchievementStatus
) -> None:
    result = assess_achievement(GoalMeasure("ecr-r-anxiety", 5.5, 4.37, "lower"), new)
    assert (result.status, result.rule) == (status, "plain-comparison")


@pytest.mark.parametrize(
    ("new", "status"),
    [
        (4.9, AchievementStatus.ACHIEVED),
        (4.5, AchievementStatus.IMPROVING),
        (4.2, AchievementStatus.NO_CHANGE),
        (4.0, AchievementStatus.WORSENING),
    ],
)
def test_plain_comparison_for_a_score_that_should_rise(
    new: float, status: AchievementStatus
) -> None:
    result = assess_achievement(GoalMeasure("prfq-interest-curiosity", 4.2, 4.9, "higher"), new)
    assert result.status is status


@pytest.mark.parametrize(
    ("new", "status"),
    [
        (4.3, AchievementStatus.ACHIEVED),
        (4.7, AchievementStatus.IMPROVING),  # 5.5 - 4.7 = 0.8, exactly the threshold
        (5.0, AchievementStatus.NO_CHANGE),  # 0.5 better, less than 0.8
        (6.2, AchievementStatus.NO_CHANGE),  # 0.7 worse
        (6.3, AchievementStatus.WORSENING),  # 0.8 worse
    ],
)
def test_reliable_change_rule_where_a_figure_is_given(
    new: float, status: AchievementStatus
) -> None:
    result = assess_achievement(GoalMeasure("ecr-r-anxiety", 5.5, 4.37, "lower"), new, SYNTHETIC)
    assert (result.status, result.rule) == (status, "reliable-change")
    assert "synthetic figure" in result.explanation


# --- FHIR resources ----------------------------------------------------------------------------


PLAN_ID = "6f1c1f0e-1d2b-4a53-9d57-0b8f6f1b2c3d"


def test_resources_are_valid_r4b_and_carry_the_goal_numbers() -> None:
    proposal = make(
        {
            "ecr-r-anxiety": ScoreInput("ecr-r-anxiety", 5.5, observation="Observation/11"),
            "prfq-interest-curiosity": ScoreInput(
                "prfq-interest-curiosity", 4.2, observation="Observation/12"
            ),
        },
        birth_date=ADULT,
        conditions=("Condition/7",),
        clinician="Practitioner/3",
    )
    built = build_resources(
        proposal,
        plan_id=PLAN_ID,
        subject="Patient/1",
        encounter="Encounter/5",
        clinician="Practitioner/3",
    )
    validate_resources(built)
    plan = built.careplan
    assert (plan["status"], plan["intent"]) == ("draft", "plan")
    assert plan["identifier"] == [{"system": CAREPLAN_SYSTEM, "value": PLAN_ID}]
    assert built.careplan_url == f"urn:uuid:{PLAN_ID}"
    assert plan["period"] == {"start": "2025-01-06", "end": "2025-06-23"}
    assert plan["addresses"] == [{"reference": "Condition/7"}]
    assert plan["supportingInfo"] == [
        {"reference": "Observation/11"},
        {"reference": "Observation/12"},
    ]
    assert plan["goal"] == [{"reference": url} for url, _ in built.goals]

    (anxiety_url, anxiety), (curiosity_url, curiosity) = built.goals
    expected_id = str(uuid.uuid5(uuid.UUID(PLAN_ID), "goal/ecr-r-anxiety"))
    assert anxiety["identifier"] == [{"system": CAREPLAN_SYSTEM, "value": expected_id}]
    assert anxiety_url == f"urn:uuid:{expected_id}"
    assert anxiety["lifecycleStatus"] == "proposed"
    assert anxiety["expressedBy"] == {"reference": "Practitioner/3"}
    assert anxiety["addresses"] == [{"reference": "Condition/7"}]
    target = anxiety["target"][0]
    assert target["measure"]["coding"] == [
        {
            "system": "http://attach-fhir.org/fhir/CodeSystem/attach-scores",
            "code": "ecr-r-anxiety",
            "display": "ECR-R attachment anxiety",
        }
    ]
    assert (target["detailRange"]["low"]["value"], target["detailRange"]["high"]["value"]) == (
        1,
        4.37,
    )
    assert target["dueDate"] == "2025-06-23"
    rising = curiosity["target"][0]["detailRange"]
    assert (rising["low"]["value"], rising["high"]["value"]) == (4.9, 7)

    again = next(
        a["detail"]
        for a in plan["activity"]
        if a["detail"]["code"]["coding"][0]["code"] == "attachment-reassessment"
    )
    assert again["goal"] == [{"reference": anxiety_url}, {"reference": curiosity_url}]
    assert again["scheduledTiming"]["repeat"] == {
        "boundsPeriod": {"start": "2025-01-06", "end": "2025-06-23"},
        "frequency": 1,
        "period": 8,
        "periodUnit": "wk",
    }
    assert again["performer"] == [{"reference": "Patient/1"}]
    assert again["status"] == "not-started"
    assert again["instantiatesCanonical"] == [ECR_R, PRFQ]


def test_identifiers_are_stable_per_plan_id() -> None:
    proposal = make(ECR_R_SCORES, birth_date=ADULT)
    first = build_resources(proposal, plan_id=PLAN_ID, subject="Patient/1")
    again = build_resources(proposal, plan_id=PLAN_ID, subject="Patient/1")
    other = build_resources(proposal, plan_id=str(uuid.UUID(int=1)), subject="Patient/1")
    assert first == again
    assert first.goals[0][0] != other.goals[0][0]
    assert len({url for url, _ in first.goals}) == 2


def test_a_caregiver_without_a_reference_is_named_by_role() -> None:
    proposal = make(ECR_R_SCORES, birth_date=YOUNG_CHILD)
    built = build_resources(proposal, plan_id=PLAN_ID, subject="Patient/2")
    validate_resources(built)
    play = next(
        a["detail"]
        for a in built.careplan["activity"]
        if a["detail"]["code"]["coding"][0]["code"] == "attachment-play-sessions"
    )
    assert play["performer"] == [{"display": "Clinician"}, {"display": "Parent or caregiver"}]
    with_ref = build_resources(
        proposal, plan_id=PLAN_ID, subject="Patient/2", caregiver="RelatedPerson/4"
    )
    play = next(
        a["detail"]
        for a in with_ref.careplan["activity"]
        if a["detail"]["code"]["coding"][0]["code"] == "attachment-play-sessions"
    )
    assert play["performer"][1] == {"reference": "RelatedPerson/4"}


def test_validation_rejects_a_broken_resource() -> None:
    built = build_resources(
        make(ECR_R_SCORES, birth_date=ADULT), plan_id=PLAN_ID, subject="Patient/1"
    )
    del built.careplan["subject"]  # 1..1 in R4
    with pytest.raises(ValidationError, match="subject"):
        validate_resources(built)
    built = build_resources(
        make(ECR_R_SCORES, birth_date=ADULT), plan_id=PLAN_ID, subject="Patient/1"
    )
    built.goals[0][1]["target"][0]["dueDate"] = "23/06/2025"
    with pytest.raises(ValidationError, match="dueDate"):
        validate_resources(built)


def test_a_goal_read_back_is_judged_and_coded() -> None:
    proposal = make(ECR_R_SCORES, birth_date=ADULT)
    built = build_resources(proposal, plan_id=PLAN_ID, subject="Patient/1")
    measure = goal_measure(built.goals[0][1])
    assert measure == GoalMeasure("ecr-r-anxiety", 5.5, 4.37, "lower")
    coded = achievement_status(assess_achievement(measure, 5.0))
    assert coded["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "improving"}
    ]
    assert "no verified reliable-change figure exists" in coded["text"]
