"""The review's figures: each chart with the data table that carries the same numbers.

Pure: built from score points (:mod:`attach_fhir.history`), the instrument's meaning and the
submissions in order. A value the chart does not draw is said in words in the table and the
chart's description (``skipped``, ``no score recorded``), never drawn as zero.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from attach_fhir import history
from attach_fhir.history import ScorePoint
from attach_fhir.interpretation import InstrumentMeaning
from attach_fhir.reading import for_reading
from smart_app.web import charts

#: An ECR-RS relationship the respondent chose not to answer about (its gate not true).
SKIPPED = "skipped"
#: No score for this submission, and the response does not say why (or was not readable).
NO_SCORE = "no score recorded"

_PAREN = re.compile(r"\(([^()]*)\)\s*$")
_RELATIONSHIP = re.compile(r"^ecr-rs-(?P<target>[a-z]+)-(?P<dimension>anxiety|avoidance)$")
_WORD = re.compile(r"^[a-z][a-z-]*$")


@dataclass(frozen=True)
class Figure:
    """A chart with its caption and the data table that stands in for it."""

    svg: Markup
    caption: str
    head: Sequence[str]
    rows: Sequence[Sequence[str]]
    #: (CSS class, label) per series, for the legend.
    legend: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class Submissions:
    """An instrument's submissions oldest first (numbered from 1) and what each left unscored."""

    order: Sequence[str]
    dates: Mapping[str, str]
    #: Submission -> the ECR-RS targets its response skipped (only where the response was read).
    skipped: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def number(self, submission: str) -> int:
        """The submission's number, 1 for the oldest."""
        return self.order.index(submission) + 1

    def missing(self, submission: str, target: str | None) -> str:
        """Why a score of this submission has no value, in words."""
        return SKIPPED if target in self.skipped.get(submission, frozenset()) else NO_SCORE


def fmt(value: float | None) -> str:
    """A score for display: two decimals."""
    return "" if value is None else for_reading(value)


def date(recorded: str) -> str:
    """The day of a recorded FHIR dateTime."""
    return recorded[:10]


def label(code: str, meaning: InstrumentMeaning | None) -> str:
    """A score's display name, else its code."""
    score = meaning.scores.get(code) if meaning else None
    return score.display if score else code


def target_label(meaning: InstrumentMeaning | None, target: str) -> str:
    """A relationship target's name as the score display gives it (``romantic partner``)."""
    score = meaning.scores.get(f"ecr-rs-{target}-anxiety") if meaning else None
    match = _PAREN.search(score.display) if score else None
    return match.group(1) if match else target


def relationship_target(code: str) -> str | None:
    """The ECR-RS target a score code names (``ecr-rs-mother-anxiety`` -> ``mother``)."""
    match = _RELATIONSHIP.match(code)
    return match["target"] if match else None


def targets(meaning: InstrumentMeaning | None, score_points: Sequence[ScorePoint]) -> list[str]:
    """The relationship targets: the instrument's, in its order, else those in the data."""
    named = [s.focus for s in meaning.scores.values() if s.focus] if meaning else []
    found = [t for p in score_points if (t := relationship_target(p.code))]
    ordered = named or [t for t in history.TARGETS if t in found]
    return list(dict.fromkeys([*ordered, *sorted(set(found) - set(ordered))]))


def plane(key: str, title: str, found: Sequence[history.PlanePoint]) -> Figure:
    """The anxiety x avoidance plane of one two-dimensional instrument (ECR-R, ECR)."""
    data = [charts.PlaneDatum(date(p.recorded), p.anxiety, p.avoidance) for p in found]
    svg = charts.plane_chart(f"plane-{key}", data, title=f"{title}: anxiety and avoidance")
    rows = [
        [str(i), d.label, fmt(d.avoidance), fmt(d.anxiety)] for i, d in enumerate(data, start=1)
    ]
    return Figure(svg, charts.PLANE_CAPTION, ["#", "Date", "Avoidance", "Anxiety"], rows)


def _value(value: float | None, missing: str) -> str:
    return fmt(value) if value is not None else missing


def relationship_figures(
    key: str,
    title: str,
    meaning: InstrumentMeaning | None,
    score_points: Sequence[ScorePoint],
    subs: Submissions,
    shown: str | None,
) -> list[Figure]:
    """ECR-RS: every relationship on one plane over time, and side by side for one submission."""
    found = history.relationship_scores(score_points)
    if not found:
        return []
    names = targets(meaning, score_points)
    tracks: list[charts.PlaneTrack] = []
    absent: list[tuple[str, str]] = []
    plane_rows: list[list[str]] = []
    for target in names:
        name = target_label(meaning, target)
        drawn = []
        for r in found:
            ax, av = r.targets.get(target, (None, None))
            n = subs.number(r.submission)
            if ax is not None and av is not None:
                drawn.append((n, charts.PlaneDatum(date(r.recorded), ax, av)))
        if drawn:
            tracks.append(charts.PlaneTrack(name, drawn))
        else:
            words = {subs.missing(r.submission, target) for r in found}
            absent.append((name, SKIPPED if words == {SKIPPED} else NO_SCORE))
    for r in found:
        for target in names:
            ax, av = r.targets.get(target, (None, None))
            missing = subs.missing(r.submission, target)
            plane_rows.append(
                [
                    str(subs.number(r.submission)),
                    date(r.recorded),
                    target_label(meaning, target),
                    _value(av, missing),
                    _value(ax, missing),
                ]
            )
    svg = charts.relationship_plane(
        f"plane-{key}",
        tracks,
        title=f"{title}: anxiety and avoidance by relationship",
        absent=absent,
    )
    legend = [(f"series-{i % len(charts.DASHES)}", t.label) for i, t in enumerate(tracks)]
    caption = (
        "Each relationship is its own track: its points are numbered by submission (oldest "
        "first), joined in time order, the latest one filled and named. A skipped relationship "
        f"has no score and is not drawn. {charts.PLANE_CAPTION}"
    )
    head = ["#", "Date", "Relationship", "Avoidance", "Anxiety"]
    figures = [Figure(svg, caption, head, plane_rows, legend)]
    current = next((r for r in found if r.submission == shown), found[-1])
    figures.append(_relationship_bars(key, title, meaning, names, current, subs))
    return figures


def _relationship_bars(
    key: str,
    title: str,
    meaning: InstrumentMeaning | None,
    names: Sequence[str],
    scores: history.RelationshipScores,
    subs: Submissions,
) -> Figure:
    groups = []
    for target in names:
        ax, av = scores.targets.get(target, (None, None))
        missing = subs.missing(scores.submission, target)
        groups.append(
            charts.BarGroup(
                target_label(meaning, target), [("anxiety", ax), ("avoidance", av)], missing
            )
        )
    svg = charts.bar_chart(
        f"bars-{key}",
        groups,
        title=f"{title}: by relationship, {date(scores.recorded)}",
        lo=1,
        hi=7,
    )
    rows = [
        [g.label, _value(g.bars[0][1], g.missing), _value(g.bars[1][1], g.missing)] for g in groups
    ]
    legend = [("bar-0", "anxiety"), ("bar-1", "avoidance")]
    caption = (
        f"Submission {subs.number(scores.submission)} ({date(scores.recorded)}): anxiety and "
        "avoidance side by side for each relationship, bars rising from the scale minimum 1."
    )
    return Figure(svg, caption, ["Relationship", "Anxiety", "Avoidance"], rows, legend)


def _short(code: str, meaning: InstrumentMeaning | None) -> str:
    """A one-word name for a bar: a one-item score's item (the RQ's ``secure``), else its name."""
    score = meaning.scores.get(code) if meaning else None
    if score and score.method == "mean" and len(score.items) == 1 and _WORD.match(score.items[0]):
        return score.items[0]
    return label(code, meaning)


def component_bars(
    key: str,
    title: str,
    meaning: InstrumentMeaning | None,
    by_code: Mapping[str, list[ScorePoint]],
    subs: Submissions,
    shown: str | None,
) -> Figure | None:
    """The scores a combined score is computed from (the RQ's four ratings), side by side."""
    if meaning is None:
        return None
    combined = [s for s in meaning.scores.values() if s.method == "linear"]
    inputs = [c for s in combined for c in s.inputs]
    parts = [c for c in meaning.scores if c in inputs and by_code.get(c)]
    submission = shown or (subs.order[-1] if subs.order else None)
    if not parts or submission is None:
        return None
    values = {c: next((p for p in by_code[c] if p.submission == submission), None) for c in parts}
    if not any(v is not None and v.value is not None for v in values.values()):
        return None
    ranges = {meaning.scores[c].range for c in parts}
    shared = next(iter(ranges)) if len(ranges) == 1 else None
    lo, hi = shared or _data_range([p for c in parts for p in by_code[c]])
    groups = [
        charts.BarGroup(_short(c, meaning), [(label(c, meaning), v.value if v else None)], NO_SCORE)
        for c, v in values.items()
    ]
    day = subs.dates.get(submission, "")
    svg = charts.bar_chart(
        f"bars-{key}", groups, title=f"{title}: component scores, {day}", lo=lo, hi=hi
    )
    rows = [
        [label(c, meaning), _value(v.value if v else None, NO_SCORE)] for c, v in values.items()
    ]
    made = " and ".join(s.display for s in combined)
    caption = (
        f"Submission {subs.number(submission)} ({day}), side by side: the scores {made} are "
        "computed from."
    )
    return Figure(svg, caption, ["Score", "Value"], rows)


def line_groups(
    meaning: InstrumentMeaning | None, by_code: Mapping[str, list[ScorePoint]]
) -> list[tuple[str, list[str], tuple[float, float]]]:
    """(name, codes, range) per line chart: ECR-RS by dimension, others by shared range."""
    order = list(meaning.scores) if meaning else []
    codes = [c for c in order if c in by_code] + [c for c in by_code if c not in order]
    groups: dict[tuple[str, tuple[float, float]], list[str]] = {}
    for code in codes:
        found = by_code[code]
        score = meaning.scores.get(code) if meaning else None
        if not any(p.value is not None for p in found):
            continue
        bounds = score.range if score and score.range else _data_range(found)
        relation = _RELATIONSHIP.match(code)
        if relation:
            name = f"attachment {relation['dimension']} by relationship"
        else:
            name = f"scores ({bounds[0]:g} to {bounds[1]:g})"
        groups.setdefault((name, bounds), []).append(code)
    return [(name, codes, bounds) for (name, bounds), codes in groups.items()]


def _data_range(found: Sequence[ScorePoint]) -> tuple[float, float]:
    values = [p.value for p in found if p.value is not None]
    lo, hi = min(values), max(values)
    return (lo - 1, hi + 1) if lo == hi else (lo, hi)


def lines(
    chart_id: str,
    title: str,
    codes: Sequence[str],
    labels: Mapping[str, str],
    by_code: Mapping[str, list[ScorePoint]],
    bounds: tuple[float, float],
    subs: Submissions,
) -> Figure:
    """One line per score over time; the table has a row per submission."""
    series = [
        charts.Series(labels[c], [(p.when, p.value) for p in by_code[c] if p.value is not None])
        for c in codes
    ]
    svg = charts.line_chart(chart_id, series, title=title, lo=bounds[0], hi=bounds[1])
    seen = {p.submission for c in codes for p in by_code[c]}
    rows = []
    for submission in (s for s in subs.order if s in seen):
        cells = []
        for c in codes:
            point = next((p for p in by_code[c] if p.submission == submission), None)
            missing = subs.missing(submission, relationship_target(c))
            cells.append(_value(point.value if point else None, missing))
        rows.append([str(subs.number(submission)), subs.dates[submission], *cells])
    legend = [(f"series-{i % len(charts.DASHES)}", labels[c]) for i, c in enumerate(codes)]
    return Figure(svg, "", ["#", "Date", *(labels[c] for c in codes)], rows, legend)
