"""The review pages' view model: one section per instrument, built from score points.

Pure: the blueprint reads the resources, :mod:`attach_fhir.history` turns Observations into
points, and this module pairs them with what each score means; :mod:`smart_app.review.figures`
draws the charts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from attach_fhir import history
from attach_fhir.history import ScorePoint
from attach_fhir.interpretation import (
    Change,
    InstrumentMeaning,
    ScoreMeaning,
    change_since_baseline,
)
from smart_app.review import figures as figs
from smart_app.review.figures import Figure, Submissions


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
    #: ECR-RS: the relationships the submission shown skipped (their names), so unscored.
    skipped: Sequence[str] = ()


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
                display=figs.label(code, meaning),
                meaning=score,
                value=figs.fmt(shown.value) if shown.value is not None else str(shown.category),
                recorded=shown.recorded,
                prorated=shown.prorated,
                method=shown.method,
                status=shown.status,
                change=change,
                baseline_recorded=baseline.recorded if change else None,
            )
        )
    return rows


def submissions(
    score_points: Sequence[ScorePoint], skipped: Mapping[str, frozenset[str]] | None = None
) -> Submissions:
    """The submissions these points come from, oldest first (ties: the order they were stored)."""
    first: dict[str, ScorePoint] = {}
    for point in score_points:
        if point.submission not in first or point.order < first[point.submission].order:
            first[point.submission] = point
    order = sorted(first, key=lambda s: first[s].order)
    dates = {s: figs.date(first[s].recorded) for s in order}
    return Submissions(order, dates, dict(skipped or {}))


def instrument_view(
    key: str,
    title: str,
    meaning: InstrumentMeaning | None,
    score_points: Sequence[ScorePoint],
    current: str | None = None,
    skipped: Mapping[str, frozenset[str]] | None = None,
) -> InstrumentView:
    """One section: rows (the ``current`` submission's values, else the latest), charts.

    ``skipped``: submission -> the ECR-RS relationships its response skipped, where the
    response was read; elsewhere a missing relationship reads "no score recorded".
    """
    subs = submissions(score_points, skipped)
    if current is not None and current in subs.order:  # shown against its own past only
        kept = set(subs.order[: subs.number(current)])
        score_points = [p for p in score_points if p.submission in kept]
        subs = submissions(score_points, skipped)
    shown = current or (subs.order[-1] if subs.order else None)
    by_code = history.series(score_points)
    figures: list[Figure] = []
    for prefix, found in history.plane_points(score_points).items():
        figures.append(figs.plane(f"{key}-{prefix}", title, found))
    figures += figs.relationship_figures(key, title, meaning, score_points, subs, shown)
    component = figs.component_bars(key, title, meaning, by_code, subs, shown)
    if component is not None:
        figures.append(component)
    labels = {code: figs.label(code, meaning) for code in by_code}
    for i, (name, codes, bounds) in enumerate(figs.line_groups(meaning, by_code)):
        chart_title = f"{title}: {name} over time"
        figures.append(
            figs.lines(f"lines-{key}-{i}", chart_title, codes, labels, by_code, bounds, subs)
        )
    listed = []
    for submission in subs.order:
        qr = submission.split("/", 1)[1] if submission.startswith("Questionnaire") else None
        listed.append((subs.dates[submission], qr))
    left_out = subs.skipped.get(shown, frozenset()) if shown else frozenset()
    return InstrumentView(
        key=key,
        title=title,
        meaning=meaning,
        rows=_rows(meaning, by_code, current),
        figures=figures,
        submissions=listed,
        skipped=[
            figs.target_label(meaning, t)
            for t in figs.targets(meaning, score_points)
            if t in left_out
        ],
    )
