"""A patient's score history from the score Observations on the FHIR server (pure functions).

Input is whatever a search returned: Observations of any number of submissions, in any order,
possibly with other codes mixed in. Output is per-score time series, the anxiety x avoidance
points of each two-dimensional instrument over time (ECR-R, ECR) and, per submission, the ECR-RS
scores of each relationship target.

A submission is the QuestionnaireResponse an Observation is ``derivedFrom``; Observations without
one are grouped by their effective time. Submissions are ordered by effective time, then by the
server's ``meta.lastUpdated`` (the app records effective times to the second, so two submissions
in one second still come out in the order they were written). Score codes follow
docs/scoring-model.md: the pair ``<prefix>-anxiety`` / ``<prefix>-avoidance`` of one submission
is one point on the plane, and ``ecr-rs-<target>-<dimension>`` names a relationship target.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM

#: Observation statuses that carry a result (entered-in-error, cancelled ... are left out).
RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
#: Plane instruments: score-code prefix of the anxiety/avoidance pair.
PLANE_PREFIXES = ("ecr-r", "ecr")
#: ECR-RS relationship targets in the order the instrument lists them.
TARGETS = ("mother", "father", "partner", "friend")
PRORATED_NOTE = "Prorated"

_RELATIONSHIP = re.compile(r"^ecr-rs-(?P<target>[a-z]+)-(?P<dimension>anxiety|avoidance)$")
_DIMENSION = re.compile(r"^(?P<prefix>.+)-(?P<dimension>anxiety|avoidance)$")


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One score Observation, reduced to what the review shows."""

    code: str
    when: dt.datetime
    #: The effective time as recorded (for display).
    recorded: str
    value: float | None
    #: For a category score (``ecr-category``): the category code.
    category: str | None
    #: The submission: the QuestionnaireResponse reference, or ``at:<time>`` without one.
    submission: str
    observation: str | None
    prorated: bool
    #: ``Observation.method.text``: the algorithm id and version.
    method: str | None
    #: ``Observation.status`` (``preliminary``: a patient's own, not yet reviewed).
    status: str = "final"
    #: ``Observation.meta.lastUpdated`` as recorded ("" when absent): breaks ties in time.
    updated: str = ""

    @property
    def order(self) -> tuple[dt.datetime, str, str]:
        """Sort key: effective time, then when the server stored it, then the submission."""
        return (self.when, self.updated, self.submission)


@dataclass(frozen=True, slots=True)
class PlanePoint:
    """One submission's anxiety and avoidance on a two-dimensional instrument."""

    prefix: str
    when: dt.datetime
    recorded: str
    anxiety: float
    avoidance: float
    submission: str
    updated: str = ""


@dataclass(frozen=True, slots=True)
class RelationshipScores:
    """One ECR-RS submission: target -> (anxiety, avoidance), None where not scored."""

    when: dt.datetime
    recorded: str
    submission: str
    targets: Mapping[str, tuple[float | None, float | None]]
    updated: str = ""


def parse_time(value: str) -> dt.datetime:
    """A FHIR dateTime (year, year-month, date or full) as an aware datetime (naive -> UTC)."""
    text = value.strip()
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def start_of(value: str) -> dt.datetime:
    """When a FHIR date or dateTime begins, as an aware datetime. A plain calendar day (the app
    writes ``date.today()`` for plan starts) begins at local midnight, the zone it was counted in,
    so a UTC instant of that same local day is on or after it; a dateTime is ``parse_time``'s."""
    text = value.strip()
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", text):
        day = parse_time(text).date()
        return dt.datetime.combine(day, dt.time.min).astimezone()
    return parse_time(text)


def local_day(value: str) -> dt.date | None:
    """The calendar day of a FHIR date or dateTime in the app's zone (where it counts ``today``):
    a plain day is itself, an instant is converted; None if it does not parse. UTC instants and
    the app's local days are compared this way, never by their first ten characters."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", text):
            return parse_time(text).date()
        return parse_time(text).astimezone().date()
    except ValueError:
        return None


def _effective(obs: Mapping[str, Any]) -> str | None:
    for key in ("effectiveDateTime", "effectiveInstant", "issued"):
        if isinstance(obs.get(key), str):
            return str(obs[key])
    period = obs.get("effectivePeriod")
    if isinstance(period, Mapping) and isinstance(period.get("start"), str):
        return str(period["start"])
    return None


def _score_code(obs: Mapping[str, Any]) -> str | None:
    for coding in (obs.get("code") or {}).get("coding") or []:
        if coding.get("system") == SCORES_SYSTEM and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _submission(obs: Mapping[str, Any], recorded: str) -> str:
    for ref in obs.get("derivedFrom") or []:
        reference = str(ref.get("reference") or "")
        if reference.startswith("QuestionnaireResponse/") or "/QuestionnaireResponse/" in reference:
            return reference[reference.find("QuestionnaireResponse/") :]
    return f"at:{recorded}"


def to_point(obs: Mapping[str, Any]) -> ScorePoint | None:
    """A ScorePoint, or None if this is not a usable score Observation."""
    code = _score_code(obs)
    recorded = _effective(obs)
    if code is None or recorded is None or obs.get("status") not in RESULT_STATUSES:
        return None
    try:
        when = parse_time(recorded)
    except ValueError:
        return None
    quantity = obs.get("valueQuantity") or {}
    value = quantity.get("value")
    concept = obs.get("valueCodeableConcept") or {}
    category = next((c.get("code") for c in concept.get("coding") or [] if c.get("code")), None)
    if not isinstance(value, int | float) or isinstance(value, bool):
        value = None
    if value is None and category is None:
        return None
    notes = [str(n.get("text") or "") for n in obs.get("note") or []]
    return ScorePoint(
        code=code,
        when=when,
        recorded=recorded,
        value=float(value) if value is not None else None,
        category=str(category) if category is not None else None,
        submission=_submission(obs, recorded),
        observation=f"Observation/{obs['id']}" if obs.get("id") else None,
        prorated=any(n.startswith(PRORATED_NOTE) for n in notes),
        method=(obs.get("method") or {}).get("text"),
        status=str(obs["status"]),
        updated=str((obs.get("meta") or {}).get("lastUpdated") or ""),
    )


def points(observations: Iterable[Mapping[str, Any]]) -> list[ScorePoint]:
    """Every usable score point, oldest first; one per (submission, code), the last one read."""
    kept: dict[tuple[str, str], ScorePoint] = {}
    for obs in observations:
        point = to_point(obs)
        if point is not None:
            kept[(point.submission, point.code)] = point
    return sorted(kept.values(), key=lambda p: (*p.order, p.code))


def series(score_points: Iterable[ScorePoint]) -> dict[str, list[ScorePoint]]:
    """Score code -> its points in time order (codes in order of first appearance)."""
    out: dict[str, list[ScorePoint]] = {}
    for point in sorted(score_points, key=lambda p: p.order):
        out.setdefault(point.code, []).append(point)
    return out


def _by_submission(score_points: Iterable[ScorePoint]) -> dict[str, dict[str, ScorePoint]]:
    out: dict[str, dict[str, ScorePoint]] = {}
    for point in score_points:
        out.setdefault(point.submission, {})[point.code] = point
    return out


def plane_points(
    score_points: Iterable[ScorePoint], prefixes: Sequence[str] = PLANE_PREFIXES
) -> dict[str, list[PlanePoint]]:
    """Prefix (``ecr-r``, ``ecr``) -> its anxiety x avoidance points, oldest first."""
    out: dict[str, list[PlanePoint]] = {}
    for submission, codes in _by_submission(score_points).items():
        for prefix in prefixes:
            anxiety = codes.get(f"{prefix}-anxiety")
            avoidance = codes.get(f"{prefix}-avoidance")
            if anxiety is None or avoidance is None:
                continue
            if anxiety.value is None or avoidance.value is None:
                continue
            first = min(anxiety, avoidance, key=lambda p: p.order)
            out.setdefault(prefix, []).append(
                PlanePoint(
                    prefix=prefix,
                    when=first.when,
                    recorded=anxiety.recorded,
                    anxiety=anxiety.value,
                    avoidance=avoidance.value,
                    submission=submission,
                    updated=first.updated,
                )
            )
    for found in out.values():
        found.sort(key=lambda p: (p.when, p.updated, p.submission))
    return {prefix: out[prefix] for prefix in prefixes if prefix in out}


def relationship_scores(
    score_points: Iterable[ScorePoint], targets: Sequence[str] = TARGETS
) -> list[RelationshipScores]:
    """Per ECR-RS submission (oldest first): each target's (anxiety, avoidance)."""
    out: list[RelationshipScores] = []
    for submission, codes in _by_submission(score_points).items():
        found: dict[str, dict[str, float | None]] = {}
        times = []
        for code, point in codes.items():
            match = _RELATIONSHIP.match(code)
            if match:
                found.setdefault(match["target"], {})[match["dimension"]] = point.value
                times.append(point)
        if not times:
            continue
        first = min(times, key=lambda p: p.order)
        ordered = [t for t in targets if t in found] + sorted(set(found) - set(targets))
        out.append(
            RelationshipScores(
                when=first.when,
                recorded=first.recorded,
                submission=submission,
                targets={t: (found[t].get("anxiety"), found[t].get("avoidance")) for t in ordered},
                updated=first.updated,
            )
        )
    return sorted(out, key=lambda r: (r.when, r.updated, r.submission))


def skipped_targets(response: Mapping[str, Any], targets: Sequence[str] = TARGETS) -> set[str]:
    """ECR-RS targets the respondent skipped: the gate ``<target>.applies`` not answered true.

    Its items are then disabled and it has no score (docs/scoring-model.md). Only meaningful for
    a response to the ECR-RS: the caller decides that.
    """
    gates: dict[str, bool] = {}

    def walk(items: Any) -> None:
        for item in items or []:
            link_id = str(item.get("linkId") or "")
            if link_id.endswith(".applies"):
                answers = item.get("answer") or []
                gates[link_id.removesuffix(".applies")] = any(
                    a.get("valueBoolean") is True for a in answers
                )
            walk(item.get("item"))

    walk(response.get("item"))
    return {t for t in targets if not gates.get(t, False)}


def dimension(code: str) -> tuple[str, str] | None:
    """``(prefix, 'anxiety'|'avoidance')`` for a dimension score code, else None."""
    match = _DIMENSION.match(code)
    return (match["prefix"], match["dimension"]) if match else None
