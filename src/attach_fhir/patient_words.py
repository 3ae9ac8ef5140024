"""What the patient reads about their questionnaires, goals and scores, in plain words (pure).

No pattern or style names and nothing in the third person: only what was asked, by whom and
when, goals as a number to reach by a day, and dimension scores with the scale they sit on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.careplan_fhir import goal_measure
from attach_fhir.goal_target import InvalidScoreScale, ScoreScale
from attach_fhir.history import local_day
from attach_fhir.instruments import Instrument
from attach_fhir.reading import for_reading

#: Dimension scores a patient may read, and what a higher value means (the instruments'
#: scoring notes: "higher = more anxious / more avoidant").
DIMENSIONS = {"anxiety": "more anxious", "avoidance": "more avoidant"}
#: Goal progress (Goal.achievementStatus) in the patient's words.
PROGRESS = {
    "achieved": "You reached this goal.",
    "improving": "You are moving towards this goal.",
    "no-change": "About the same as when the goal was set.",
    "worsening": "Further from this goal than when it was set. Your clinician will talk it "
    "through with you.",
}
NOT_YET = "Not measured again yet: it shows after your next questionnaire."
_ABBREVIATION = re.compile(r"\(([^()]+)\)\s*$")


def day_words(when: str | None, today: dt.date) -> str | None:
    """``12 Dec`` for a day this year, ``12 Dec 2027`` otherwise; None when unreadable."""
    day = local_day(when) if when else None
    if day is None:
        return None
    text = f"{day.day} {day:%b}"
    return text if day.year == today.year else f"{text} {day.year}"


def questionnaire_name(instrument: Instrument | None, fallback: str) -> str:
    """``ECR-R relationships questionnaire``: the short name and what it is about."""
    if instrument is None:
        return fallback
    match = _ABBREVIATION.search(instrument.title)
    short = match.group(1) if match else instrument.title
    kind = "parenting" if instrument.respondent == "parent-caregiver" else "relationships"
    return f"{short} {kind} questionnaire"


def person_name(names: Any) -> str:
    """A clinician's name as they are addressed: prefix, given and family (``Dr Ann Lee``)."""
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return ""
    name = next((n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0])
    if isinstance(name.get("text"), str) and name["text"]:
        return str(name["text"])
    words = [w for key in ("prefix", "given") for w in _strings(name.get(key))]
    family = name.get("family")
    return " ".join([*words, family] if isinstance(family, str) else words).strip()


def _strings(value: Any) -> list[str]:
    return [w for w in value if isinstance(w, str)] if isinstance(value, list) else []


def assignment_line(name: str, requester: str | None, due: str | None, today: dt.date) -> str:
    """``ECR-R relationships questionnaire, requested by Dr Example, due 12 Dec``."""
    parts = [name]
    if requester:
        parts.append(f"requested by {requester}")
    due_day = day_words(due, today)
    if due_day:
        parts.append(f"due {due_day}")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class GoalWords:
    """One goal as the patient reads it."""

    what: str
    target: str
    by_when: str | None
    progress: str
    latest: str | None


def _direction_words(direction: str) -> str:
    return "or lower" if direction == "lower" else "or higher"


def goal_words(
    goal: Mapping[str, Any],
    scale: ScoreScale | None,
    latest: tuple[float, str] | None,
    today: dt.date,
) -> GoalWords | None:
    """The goal's aim, its target and day, and how it is going; None when it is not one of
    ours (no measure this app can read). ``latest`` is the newest value and when it was taken,
    shown once the goal was judged again."""
    try:
        measure = goal_measure(goal)
    except InvalidScoreScale:
        return None
    label = scale.display if scale is not None and scale.display else measure.score
    verb = "Lower" if measure.direction == "lower" else "Raise"
    what = f"{verb} your {label} score"
    target = (
        f"{for_reading(measure.target)} {_direction_words(measure.direction)}, from "
        f"{for_reading(measure.baseline)} when the goal was set"
    )
    if scale is not None:
        target += f" (the scale runs from {for_reading(scale.low)} to {for_reading(scale.high)})"
    targets = goal.get("target")
    first = targets[0] if isinstance(targets, list) and targets else {}
    by_when = day_words(first.get("dueDate") if isinstance(first, dict) else None, today)
    status = goal.get("achievementStatus") or {}
    codes = [c.get("code") for c in status.get("coding") or [] if isinstance(c, dict)]
    progress = next((PROGRESS[c] for c in codes if c in PROGRESS), NOT_YET)
    shown = None
    if latest is not None and progress != NOT_YET:  # the baseline itself is no progress
        value, when = latest
        on = day_words(when, today)
        shown = f"Your latest score: {for_reading(value)}" + (f" ({on})" if on else "")
    return GoalWords(what, target, by_when, progress, shown)


def score_line(code: str, display: str, value: float, scale: ScoreScale | None) -> str | None:
    """``ECR-R attachment anxiety: 3.00 on a scale from 1.00 to 7.00 (higher means more
    anxious)``; None for scores a patient does not read here (styles, categories, ratings)."""
    dimension = code.rsplit("-", 1)[-1]
    if dimension not in DIMENSIONS or scale is None:
        return None
    return (
        f"{display}: {for_reading(value)} on a scale from {for_reading(scale.low)} to "
        f"{for_reading(scale.high)} (higher means {DIMENSIONS[dimension]})"
    )
