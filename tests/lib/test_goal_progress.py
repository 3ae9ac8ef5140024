"""A goal's progress in words, numbers rounded for reading (hand-computed expectations)."""

from __future__ import annotations

from attach_fhir.goal_progress import progress_words
from attach_fhir.goal_target import GoalMeasure

# ECR-R anxiety baseline 73/18 = 4.0555...; a target 0.77 lower; lower is favourable.
ANXIETY = GoalMeasure("ecr-r-anxiety", 73 / 18, 3.29, "lower")


def test_a_goal_never_judged_is_not_yet_re_assessed() -> None:
    assert progress_words(ANXIETY, None, None) == "not yet re-assessed"


def test_a_status_without_a_value_is_not_yet_re_assessed() -> None:
    assert progress_words(ANXIETY, "improving", None) == "not yet re-assessed"


def test_improving_shows_baseline_latest_and_target() -> None:
    assert progress_words(ANXIETY, "improving", 3.5) == "improving: 4.06 → 3.50, target 3.29"


def test_achieved_and_worsening_and_no_change() -> None:
    # 59/18 = 3.2777... reads 3.28; 81/18 = 4.5 reads 4.50.
    assert progress_words(ANXIETY, "achieved", 59 / 18) == "achieved: 4.06 → 3.28, target 3.29"
    assert progress_words(ANXIETY, "worsening", 81 / 18) == "worsening: 4.06 → 4.50, target 3.29"
    assert progress_words(ANXIETY, "no-change", 73 / 18) == "no change: 4.06 → 4.06, target 3.29"


def test_a_status_the_app_does_not_know_is_not_shown_as_progress() -> None:
    assert progress_words(ANXIETY, "sustaining", 3.5) == "not yet re-assessed"
