"""Outcomes across a population: first vs latest scores per patient, goals, re-assessment on
schedule and time to goal, from FHIR resources of any origin (docs/outcomes.md). Pure: resources
in, figures out; the report's HTML and CSV are ``attach_fhir.outcomes_report``'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

from attach_fhir.history import ScorePoint, local_day, parse_time, to_point
from attach_fhir.instruments import Library, UnknownInstrument
from attach_fhir.response_check import InvalidResponse
from attach_fhir.scoring import Scorer
from attach_fhir.scoring_model import InvalidScoringModel

Json = Mapping[str, Any]
#: Counts below this (and above zero) are suppressed in a de-identified report.
SMALL_CELL = 5
#: Confidence level of the mean change.
CONFIDENCE = 0.95
SCORABLE = frozenset({"completed", "amended"})
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
_UNIT_DAYS = {"d": 1, "wk": 7, "mo": 30, "a": 365}


@dataclass(frozen=True, slots=True)
class PatientChange:
    """One patient's first and latest value of one score."""

    patient: str
    instrument: str
    code: str
    first: ScorePoint
    latest: ScorePoint
    assessments: int

    @property
    def change(self) -> float | None:
        """Latest minus first, None with one assessment (or a category score)."""
        if self.assessments < 2 or self.first.value is None or self.latest.value is None:
            return None
        return self.latest.value - self.first.value


@dataclass(frozen=True, slots=True)
class MeanChange:
    """The mean paired change of one score, with its confidence interval (t distribution)."""

    code: str
    instrument: str
    n: int
    mean_first: float
    mean_latest: float
    mean: float
    low: float | None
    high: float | None
    changes: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Schedule:
    """Re-assessment on schedule: plans due by the report date, and those re-assessed in time."""

    due: int
    on_time: int
    late_or_missing: int


@dataclass
class Population:
    """What was read: score points by patient, goals and plans, and what could not be used."""

    points: dict[tuple[str, str], list[ScorePoint]] = field(default_factory=dict)
    goals: list[Json] = field(default_factory=list)
    plans: list[Json] = field(default_factory=list)
    observations: dict[str, ScorePoint] = field(default_factory=dict)
    #: Score code -> the canonical URL of the Questionnaire that yields it.
    questionnaire_of: dict[str, str] = field(default_factory=dict)
    read: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)


def pseudonym(key: bytes, patient: str) -> str:
    """A stable pseudonymous id for ``patient`` under ``key`` (HMAC-SHA256, 16 hex digits)."""
    return hmac.new(key, patient.encode(), hashlib.sha256).hexdigest()[:16]


def _subject(resource: Json) -> str | None:
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, Mapping) else None
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference
    if isinstance(reference, str) and "/Patient/" in reference:
        return reference[reference.index("Patient/") :]
    return None


def collect(resources: Iterable[object], library: Library) -> Population:
    """Read score Observations, QuestionnaireResponses (scored here when no Observation is
    derived from them), Goals and CarePlans; anything else is counted and left aside."""
    found = Population()
    found.questionnaire_of = {c: i.url for i in library.instruments() for c in i.score_codes}
    responses: list[Json] = []
    scored: set[str] = set()
    for resource in resources:
        if not isinstance(resource, Mapping):
            found.problems["not a resource"] += 1
            continue
        kind = str(resource.get("resourceType"))
        found.read[kind] += 1
        if kind == "Observation":
            point = to_point(resource)
            patient = _subject(resource)
            if point is None or patient is None:
                found.problems["Observation that is no score of ours"] += 1
                continue
            _add(found, patient, point)
            if point.observation:
                found.observations[point.observation] = point
            scored.add(point.submission)
        elif kind == "QuestionnaireResponse":
            responses.append(resource)
        elif kind == "Goal":
            found.goals.append(resource)
        elif kind == "CarePlan":
            found.plans.append(resource)
    scorers: dict[str, Scorer | None] = {}
    for response in responses:
        reference = f"QuestionnaireResponse/{response.get('id')}"
        if reference in scored:
            continue
        for point in _score(response, reference, library, scorers, found.problems):
            _add(found, _subject(response) or "", point)
    return found


def _add(found: Population, patient: str, point: ScorePoint) -> None:
    found.points.setdefault((patient, point.code), []).append(point)


def _score(
    response: Json,
    reference: str,
    library: Library,
    scorers: dict[str, Scorer | None],
    problems: Counter[str],
) -> list[ScorePoint]:
    canonical = response.get("questionnaire")
    authored = response.get("authored")
    if response.get("status") not in SCORABLE or not isinstance(authored, str):
        problems["QuestionnaireResponse not completed"] += 1
        return []
    if not isinstance(canonical, str) or _subject(response) is None:
        problems["QuestionnaireResponse without questionnaire or patient"] += 1
        return []
    if canonical not in scorers:
        try:
            scorers[canonical] = Scorer(library.questionnaire(canonical))
        except (UnknownInstrument, InvalidScoringModel):
            scorers[canonical] = None
    scorer = scorers[canonical]
    if scorer is None:
        problems["QuestionnaireResponse to another questionnaire"] += 1
        return []
    try:
        result = scorer.score(response)
        when = parse_time(authored)
    except (InvalidResponse, ValueError):
        problems["QuestionnaireResponse that cannot be scored"] += 1
        return []
    return [
        ScorePoint(
            code=code,
            when=when,
            recorded=authored,
            value=score.value if isinstance(score.value, float) else None,
            category=score.category["code"] if score.category else None,
            submission=reference,
            observation=None,
            prorated=False,
            method=None,
        )
        for code, score in result.scores.items()
        if score.value is not None
    ]


def instrument_of(library: Library) -> dict[str, str]:
    """Score code -> the title of the instrument that yields it."""
    return {code: i.title for i in library.instruments() for code in i.score_codes}


def changes(found: Population, titles: Mapping[str, str]) -> list[PatientChange]:
    """First and latest of every (patient, score) with a numeric value, in a stable order."""
    out = []
    for (patient, code), points in found.points.items():
        numeric = sorted((p for p in points if p.value is not None), key=lambda p: p.order)
        if not numeric or code not in titles:
            continue
        out.append(
            PatientChange(patient, titles[code], code, numeric[0], numeric[-1], len(numeric))
        )
    return sorted(out, key=lambda c: (c.instrument, c.code, c.patient))


def assessed(found: Population, titles: Mapping[str, str]) -> dict[str, int]:
    """Instrument title -> the number of patients with at least one of its scores."""
    patients: dict[str, set[str]] = {}
    for patient, code in found.points:
        if code in titles:
            patients.setdefault(titles[code], set()).add(patient)
    return {title: len(p) for title, p in sorted(patients.items())}


def mean_changes(rows: Sequence[PatientChange]) -> list[MeanChange]:
    """Per score: the mean first, latest and change over patients assessed twice or more, and
    the change's confidence interval from the t distribution (none below two patients)."""
    by_code: dict[str, list[PatientChange]] = {}
    for row in rows:
        if row.change is not None:
            by_code.setdefault(row.code, []).append(row)
    out = []
    for code, paired in by_code.items():
        deltas = [r.change for r in paired if r.change is not None]
        n = len(deltas)
        mean = statistics.fmean(deltas)
        low = high = None
        if n >= 2:
            sem = statistics.stdev(deltas) / math.sqrt(n)
            if sem > 0:
                low, high = (float(x) for x in stats.t.interval(CONFIDENCE, n - 1, mean, sem))
            else:
                low = high = mean
        out.append(
            MeanChange(
                code=code,
                instrument=paired[0].instrument,
                n=n,
                mean_first=statistics.fmean(r.first.value or 0.0 for r in paired),
                mean_latest=statistics.fmean(r.latest.value or 0.0 for r in paired),
                mean=mean,
                low=low,
                high=high,
                changes=tuple(deltas),
            )
        )
    return sorted(out, key=lambda m: (m.instrument, m.code))


def goal_states(goals: Iterable[Json]) -> dict[str, int]:
    """Goals by state: active, achieved, improving, worsening, no change, not yet judged."""
    counts = dict.fromkeys(
        ("active", "achieved", "improving", "worsening", "no change", "not yet judged"), 0
    )
    for goal in goals:
        lifecycle = goal.get("lifecycleStatus")
        if lifecycle in ("proposed", "cancelled", "entered-in-error", "rejected"):
            continue
        if lifecycle == "active":
            counts["active"] += 1
        code = _achievement(goal)
        if code in ("achieved", "sustaining") or lifecycle == "completed":
            counts["achieved"] += 1
        elif code == "improving":
            counts["improving"] += 1
        elif code == "worsening":
            counts["worsening"] += 1
        elif code == "no-change":
            counts["no change"] += 1
        elif lifecycle == "active":
            counts["not yet judged"] += 1
    return counts


def _achievement(goal: Json) -> str | None:
    status = goal.get("achievementStatus")
    for coding in (status.get("coding") if isinstance(status, Mapping) else None) or []:
        if isinstance(coding, Mapping) and coding.get("system") == GOAL_ACHIEVEMENT:
            return str(coding.get("code"))
    return None


def days_to_goal(found: Population) -> list[int]:
    """For each achieved Goal: days from the patient's first value of its score to the value
    that achieved it (the Goal's latest outcome Observation)."""
    out = []
    for goal in found.goals:
        if _achievement(goal) not in ("achieved", "sustaining"):
            continue
        patient = _subject(goal)
        outcomes = [
            found.observations.get(str(ref.get("reference")))
            for ref in goal.get("outcomeReference") or []
            if isinstance(ref, Mapping)
        ]
        reached = [p for p in outcomes if p is not None]
        if patient is None or not reached:
            continue
        last = max(reached, key=lambda p: p.order)
        history = found.points.get((patient, last.code), [])
        first = min(history, key=lambda p: p.order)
        out.append((last.when - first.when).days)
    return sorted(out)


def reassessment(found: Population, as_of: dt.date) -> Schedule:
    """Plans whose first re-assessment (an activity instantiating one of our Questionnaires,
    scheduledTiming from its bounds start, one period) was due on or before ``as_of``; on time
    when the patient has a score of that Questionnaire after the start, by the due day."""
    due = on_time = 0
    for plan in found.plans:
        if plan.get("status") not in ("active", "completed"):
            continue
        patient = _subject(plan)
        for activity in plan.get("activity") or []:
            detail = activity.get("detail") if isinstance(activity, Mapping) else None
            if not isinstance(detail, Mapping) or not detail.get("instantiatesCanonical"):
                continue
            window = _first_due(detail)
            if patient is None or window is None or window[1] > as_of:
                continue
            due += 1
            urls = {str(c).partition("|")[0] for c in detail["instantiatesCanonical"]}
            if _assessed_between(found, patient, urls, *window):
                on_time += 1
    return Schedule(due=due, on_time=on_time, late_or_missing=due - on_time)


def _first_due(detail: Json) -> tuple[dt.date, dt.date] | None:
    repeat = ((detail.get("scheduledTiming") or {}).get("repeat")) or {}
    start = local_day(str((repeat.get("boundsPeriod") or {}).get("start") or ""))
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    frequency = repeat.get("frequency") or 1
    if start is None or not isinstance(period, int | float) or unit not in _UNIT_DAYS:
        return None
    days = math.ceil(period * _UNIT_DAYS[unit] / max(int(frequency), 1))
    return start, start + dt.timedelta(days=days)


def _assessed_between(
    found: Population, patient: str, urls: set[str], start: dt.date, end: dt.date
) -> bool:
    for (who, code), points in found.points.items():
        if who != patient or found.questionnaire_of.get(code) not in urls:
            continue
        for point in points:
            day = local_day(point.recorded)
            if day is not None and start < day <= end:
                return True
    return False
