"""Score meaning from the packaged instrument data, and change since baseline.

Expected wording is read from the reference data (../shared/instruments) or written out by hand
from it; reliable change is checked against Jacobson & Truax's formula worked by hand.
"""

from __future__ import annotations

import math

import pytest

from attach_fhir.instruments import library
from attach_fhir.interpretation import (
    NO_RELIABLE_CHANGE,
    VERIFIED_RELIABILITY,
    InstrumentMeaning,
    Reliability,
    change_since_baseline,
    explain,
    higher_means,
    item_list,
    reliable_change,
)
from tests.lib.instrument_data import SOURCES, shared

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"


def meaning(instrument_id: str) -> InstrumentMeaning:
    lib = library()
    return explain(
        lib.questionnaire(f"http://attach-fhir.org/fhir/Questionnaire/{instrument_id}"),
        lib.score_codes(),
    )


def test_ecr_r_scores_say_what_higher_means_their_range_and_items() -> None:
    ecr_r = meaning("ecr-r")
    anxiety = ecr_r.scores["ecr-r-anxiety"]
    avoidance = ecr_r.scores["ecr-r-avoidance"]
    # ecr-r.json scoring.rule: "Both range 1-7; higher = more anxious / more avoidant."
    assert anxiety.higher_means == "more attachment anxiety"
    assert avoidance.higher_means == "more attachment avoidance"
    assert anxiety.range_text == avoidance.range_text == "1 to 7"
    # ecr-r.json subscales: anxiety items 1-18 (9, 11 reversed); avoidance 19-36.
    data = shared("ecr-r")["subscales"]
    assert [int(i) for i in anxiety.items] == data["anxiety"]["items"]
    assert [int(i) for i in anxiety.reversed_items] == data["anxiety"]["reverse"]
    assert [int(i) for i in avoidance.reversed_items] == data["avoidance"]["reverse"]
    assert anxiety.composition == "Mean of 18 items (items 1-18); reverse-keyed: items 9, 11"
    assert avoidance.composition == (
        "Mean of 18 items (items 19-36); reverse-keyed: items 20, 22, 26-31, 33-36"
    )


def test_instrument_names_its_algorithm_citation_and_licence_status() -> None:
    ecr_r = meaning("ecr-r")
    data = shared("ecr-r")
    assert (ecr_r.algorithm_id, ecr_r.algorithm_version) == ("ecr-r-subscale-means", "1.0.0")
    assert ecr_r.citation == data["citation"]
    assert ecr_r.licence_status == data["license_note"]["confidence"] == "unverified"
    rq = meaning("rq")
    assert rq.licence_status == shared("rq")["license_note"]["confidence"]
    # The RQ author's "not appropriate for use in individual assessments" reaches the review.
    assert any("not appropriate for use in individual assessments" in r for r in rq.restrictions)


def test_scores_without_a_stated_direction_keep_their_definition_and_no_direction() -> None:
    prfq = meaning("prfq")
    certainty = prfq.scores["prfq-certainty"]
    # prfq.json: "CMS indexes certainty about the child's mental states" - no direction given.
    assert certainty.higher_means is None
    assert certainty.desirable is None
    assert "indexes certainty about the child's mental states" in certainty.definition
    assert prfq.scores["prfq-pre-mentalizing"].higher_means == (
        "more non-mentalizing (pre-mentalizing) stance"
    )


def test_ecr_rs_scores_name_their_relationship_and_items() -> None:
    partner = meaning("ecr-rs").scores["ecr-rs-partner-avoidance"]
    assert partner.focus == "partner"
    # ecr-rs.json: avoidance = items 1-6 with 1-4 reverse-keyed, per target.
    assert partner.composition == (
        "Mean of 6 items (partner items 1-6); reverse-keyed: partner items 1-4"
    )


def test_rq_dimension_is_described_as_its_published_formula() -> None:
    # rq.json: model_of_self = (Secure + Dismissing) - (Fearful + Preoccupied).
    self_model = meaning("rq").scores["rq-model-of-self"]
    assert self_model.composition == (
        "Computed as rq-secure + rq-dismissing - rq-fearful - rq-preoccupied"
    )
    assert self_model.range_text == "-12 to 12"
    assert meaning("rq").scores["rq-secure"].composition == "The answer to item secure"


@pytest.mark.parametrize(
    ("ids", "words"),
    [
        (["1", "2", "3"], "items 1-3"),
        (["1", "2", "4"], "items 1, 2, 4"),
        (["7"], "item 7"),
        (["mother.7", "mother.8", "mother.9"], "mother items 7-9"),
        (["secure", "fearful"], "items secure, fearful"),
    ],
)
def test_item_lists_read_as_plain_words(ids: list[str], words: str) -> None:
    assert item_list(ids) == words


def test_higher_means_reads_only_a_stated_direction() -> None:
    assert higher_means("Mean of x; range 1-7; higher = more anxiety.") == "more anxiety"
    assert higher_means("The rating (1-7) of the secure prototype paragraph.") is None


def test_no_instrument_has_a_reliability_verified_in_two_sources() -> None:
    """The reference data must verify reliability before a reliable-change figure is shown."""
    assert dict(VERIFIED_RELIABILITY) == {}
    for qid in SOURCES:
        data = shared(qid)
        assert data["norms"]["available"] is False  # no SD to compute an RCI from
        reported = data.get("psychometrics_reported")
        if reported is not None:
            assert reported["confidence"] != "verified in 2 sources"
        assert qid in NO_RELIABLE_CHANGE
    # The ECR-RS is the one with reported (single-source) test-retest figures: say so.
    assert "single source" in NO_RELIABLE_CHANGE["ecr-rs"]
    assert "single source" == shared("ecr-rs")["psychometrics_reported"]["confidence"]


def test_change_since_baseline_without_verified_reliability_gives_the_reason() -> None:
    anxiety = meaning("ecr-r").scores["ecr-r-anxiety"]
    change = change_since_baseline("ecr-r", anxiety, 6.0, 43 / 18)
    assert change.difference == pytest.approx(43 / 18 - 6.0)
    assert change.direction == "lower"
    assert change.towards_desirable is True  # desirable: lower (scoring model)
    assert change.reliable_change is None
    assert change.no_reliable_change_reason == NO_RELIABLE_CHANGE["ecr-r"]
    same = change_since_baseline("ecr-r", anxiety, 4.0, 4.0)
    assert (same.direction, same.towards_desirable) == ("same", None)
    certainty = meaning("prfq").scores["prfq-certainty"]
    assert change_since_baseline("prfq", certainty, 3.0, 5.0).towards_desirable is None


def test_reliable_change_arithmetic_when_a_reliability_is_supplied() -> None:
    """Arithmetic only: the figures here are made up and belong to no instrument."""
    made_up = Reliability(coefficient=0.8, kind="test-retest", sd=1.0, citation="test figures")
    # S_diff = 1.0 * sqrt(2 * 0.2) = 0.63246; RCI = (5 - 3) / 0.63246 = 3.1623 > 1.96.
    result = reliable_change(3.0, 5.0, made_up)
    assert result.index == pytest.approx(2 / math.sqrt(0.4))
    assert result.index == pytest.approx(3.1623, abs=1e-4)
    assert result.reliable is True
    small = reliable_change(3.0, 3.5, made_up)  # 0.5 / 0.63246 = 0.79
    assert small.index == pytest.approx(0.7906, abs=1e-4)
    assert small.reliable is False
    anxiety = meaning("ecr-r").scores["ecr-r-anxiety"]
    supplied = change_since_baseline("ecr-r", anxiety, 3.0, 5.0, {"ecr-r": made_up})
    assert supplied.reliable_change == result
    assert supplied.no_reliable_change_reason is None
