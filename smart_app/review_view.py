"""The review pages' view model: one section per instrument, built from score points.

Pure: the blueprint reads the resources, :mod:`attach_fhir.history` turns Observations into
points, and this module pairs them with what each score means and draws the charts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from attach_fhir import history
from attach_fhir.history import ScorePoint
from attach_fhir.interpretation import (
    Change,
    InstrumentMeaning,
    ScoreMeaning,
    change_since_baseline,
)
from smart_app import charts

_PAREN = re.compile(r"\(([^()]*)\)\s*$")


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
class ScoreRow:
    """One score: its meaning, its value in the submission shown, and its change."""

    code: str
    display: str
    meaning: ScoreMeaning | None
    value: str
    recorded: str
    prorated: bool
    method: str | None
    status: str
    change: Change | None
    baseline_recorded: str | None


@dataclass(frozen=True)
class InstrumentView:
    """One instrument's section of a review page."""

    key: str
    title: str
    meaning: InstrumentMeaning | None
    rows: Sequence[ScoreRow]
    figures: Sequence[Figure]
    #: (date, QuestionnaireResponse id) per submission, oldest first.
    submissions: Sequence[tuple[str, str | None]] = field(default_factory=list)


def fmt(value: float | None) -> str:
    """A score for display: two decimals."""
    return "" if value is None else f"{value:.2f}"


def _date(point_recorded: str) -> str:
    return point_recorded[:10]


def _label(code: str, meaning: InstrumentMeaning | None) -> str:
    score = meaning.scores.get(code) if meaning else None
    return score.display if score else code


def target_label(meaning: InstrumentMeaning | None, target: str) -> str:
    """A relationship target's name as the score display gives it (``romantic partner``)."""
    score = meaning.scores.get(f"ecr-rs-{target}-anxiety") if meaning else None
    match = _PAREN.search(score.display) if score else None
    return match.group(1) if match else target


def _rows(
    meaning: InstrumentMeaning | None,
    by_code: Mapping[str, list[ScorePoint]],
    current: str | None,
) -> list[ScoreRow]:
    order = list(meaning.scores) if meaning else []
    codes = order + [c for c in by_code if c not in order]
    rows = []
    for code in codes:
        found = by_code.get(code, [])
        shown = next((p for p in found if p.submission == current), None) if current else None
        shown = shown or (found[-1] if found and not current else None)
        score = meaning.scores.get(code) if meaning else None
        if shown is None:
            continue
        change = None
        baseline = found[0]
        if (
            score is not None
            and meaning is not None
            and shown.value is not None
            and baseline.value is not None
            and baseline.submission != shown.submission
        ):
            change = change_since_baseline(meaning.id, score, baseline.value, shown.value)
        rows.append(
            ScoreRow(
                code=code,
                display=_label(code, meaning),
                meaning=score,
                value=fmt(shown.value) if shown.value is not None else str(shown.category),
                recorded=shown.recorded,
                prorated=shown.prorated,
                method=shown.method,
                status=shown.status,
                change=change,
                baseline_recorded=baseline.recorded if change else None,
            )
        )
    return rows


def _plane(key: str, title: str, found: Sequence[history.PlanePoint]) -> Figure:
    data = [charts.PlaneDatum(_date(p.recorded), p.anxiety, p.avoidance) for p in found]
    svg = charts.plane_chart(f"plane-{key}", data, title=f"{title}: anxiety and avoidance")
    rows = [
        [str(i), d.label, fmt(d.avoidance), fmt(d.anxiety)] for i, d in enumerate(data, start=1)
    ]
    return Figure(svg, charts.PLANE_CAPTION, ["#", "Date", "Avoidance", "Anxiety"], rows)


def _lines(
    chart_id: str,
    title: str,
    codes: Sequence[str],
    labels: Mapping[str, str],
    by_code: Mapping[str, list[ScorePoint]],
    bounds: tuple[float, float],
) -> Figure:
    lines = [
        charts.Series(labels[c], [(p.when, p.value) for p in by_code[c] if p.value is not None])
        for c in codes
    ]
    svg = charts.line_chart(chart_id, lines, title=title, lo=bounds[0], hi=bounds[1])
    recorded = sorted({(p.when, _date(p.recorded)) for c in codes for p in by_code[c]})
    rows = []
    for when, day in recorded:
        values = {c: next((p for p in by_code[c] if p.when == when), None) for c in codes}
        rows.append([day, *(fmt(v.value) if v else "" for v in values.values())])
    legend = [(f"series-{i % len(charts.DASHES)}", labels[c]) for i, c in enumerate(codes)]
    return Figure(svg, "", ["Date", *(labels[c] for c in codes)], rows, legend)


def _line_groups(
    meaning: InstrumentMeaning | None, by_code: Mapping[str, list[ScorePoint]]
) -> list[tuple[str, list[str], tuple[float, float]]]:
    """(title, codes, range) per line chart: ECR-RS by dimension, others by shared range."""
    groups: dict[tuple[str, tuple[float, float]], list[str]] = {}
    for code, found in by_code.items():
        score = meaning.scores.get(code) if meaning else None
        if not any(p.value is not None for p in found):
            continue
        bounds = score.range if score and score.range else _data_range(found)
        relation = re.match(r"^ecr-rs-[a-z]+-(anxiety|avoidance)$", code)
        name = f"Attachment {relation.group(1)} by relationship" if relation else "Scores"
        groups.setdefault((name, bounds), []).append(code)
    return [(name, codes, bounds) for (name, bounds), codes in groups.items()]


def _data_range(found: Sequence[ScorePoint]) -> tuple[float, float]:
    values = [p.value for p in found if p.value is not None]
    lo, hi = min(values), max(values)
    return (lo - 1, hi + 1) if lo == hi else (lo, hi)


def _bars(
    key: str, title: str, meaning: InstrumentMeaning | None, scores: history.RelationshipScores
) -> Figure:
    groups = [
        charts.BarGroup(target_label(meaning, t), [("anxiety", ax), ("avoidance", av)])
        for t, (ax, av) in scores.targets.items()
    ]
    svg = charts.bar_chart(
        f"bars-{key}",
        groups,
        title=f"{title}: by relationship, {_date(scores.recorded)}",
        lo=1,
        hi=7,
    )
    rows = [[g.label, fmt(g.bars[0][1]), fmt(g.bars[1][1])] for g in groups]
    legend = [("bar-0", "anxiety"), ("bar-1", "avoidance")]
    return Figure(svg, "", ["Relationship", "Anxiety", "Avoidance"], rows, legend)


def instrument_view(
    key: str,
    title: str,
    meaning: InstrumentMeaning | None,
    score_points: Sequence[ScorePoint],
    current: str | None = None,
) -> InstrumentView:
    """One section: rows (the ``current`` submission's values, else the latest), charts."""
    if current is not None:  # an older response is shown against its own past only
        cutoff = max((p.when for p in score_points if p.submission == current), default=None)
        score_points = [p for p in score_points if cutoff is None or p.when <= cutoff]
    by_code = history.series(score_points)
    figures: list[Figure] = []
    for prefix, found in history.plane_points(score_points).items():
        figures.append(_plane(f"{key}-{prefix}", title, found))
    relations = history.relationship_scores(score_points)
    if relations:
        shown = next((r for r in relations if r.submission == current), relations[-1])
        figures.append(_bars(key, title, meaning, shown))
    labels = {code: _label(code, meaning) for code in by_code}
    for i, (name, codes, bounds) in enumerate(_line_groups(meaning, by_code)):
        chart_title = f"{title}: {name.lower()} over time"
        figures.append(_lines(f"lines-{key}-{i}", chart_title, codes, labels, by_code, bounds))
    submissions: dict[str, tuple[str, str | None]] = {}
    for p in sorted(score_points, key=lambda p: p.when):
        qr = p.submission.split("/", 1)[1] if p.submission.startswith("Questionnaire") else None
        submissions.setdefault(p.submission, (_date(p.recorded), qr))
    return InstrumentView(
        key=key,
        title=title,
        meaning=meaning,
        rows=_rows(meaning, by_code, current),
        figures=figures,
        submissions=list(submissions.values()),
    )
