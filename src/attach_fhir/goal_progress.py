"""A goal's progress in words: "not yet re-assessed", "improving: 4.06 → 3.50, target 3.29".

The status is the Goal's ``achievementStatus`` as judged on re-assessment
(:func:`attach_fhir.goal_target.assess_achievement`); the numbers are rounded for reading.
"""

from __future__ import annotations

from attach_fhir.goal_target import GoalMeasure
from attach_fhir.reading import for_reading

NOT_YET = "not yet re-assessed"
STATUS_WORDS = {
    "achieved": "achieved",
    "improving": "improving",
    "worsening": "worsening",
    "no-change": "no change",
}


def progress_words(measure: GoalMeasure, status: str | None, latest: float | None) -> str:
    """The judged status with baseline → latest value and the target; NOT_YET before any."""
    word = STATUS_WORDS.get(status or "")
    if word is None or latest is None:
        return NOT_YET
    return (
        f"{word}: {for_reading(measure.baseline)} → {for_reading(latest)}, "
        f"target {for_reading(measure.target)}"
    )
