"""The outcomes report as files: a self-contained HTML page (inline CSS and SVG, printable) and
per-patient rows for CSV or NDJSON (docs/outcomes.md). Pure: figures in, text out.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from attach_fhir.outcomes import (
    SMALL_CELL,
    MeanChange,
    PatientChange,
    Population,
    Schedule,
    assessed,
    changes,
    days_to_goal,
    goal_states,
    mean_changes,
    reassessment,
)
from attach_fhir.reading import for_reading

#: Width of one bar of the change histogram, in score points.
BIN = 0.5
COLUMNS = (
    "patient",
    "instrument",
    "score",
    "first_date",
    "first_value",
    "latest_date",
    "latest_value",
    "change",
    "assessments",
)
NO_RULES = (
    "No cut-off, norm or reliable-change rule is applied: none is verified in the instrument "
    "reference data this project scores from. Changes are differences of mean item scores."
)


@dataclass(frozen=True)
class Report:
    """Everything the report shows."""

    as_of: dt.date
    identified: bool
    assessed: Mapping[str, int]
    rows: Sequence[PatientChange]
    means: Sequence[MeanChange]
    goals: Mapping[str, int]
    schedule: Schedule
    days_to_goal: Sequence[int]
    problems: Mapping[str, int]


def report_of(
    found: Population, titles: Mapping[str, str], as_of: dt.date, identified: bool
) -> Report:
    """The report's figures from what was read (``titles``: instrument URL -> title)."""
    table = changes(found, titles)
    return Report(
        as_of=as_of,
        identified=identified,
        assessed=assessed(found, titles),
        rows=table,
        means=mean_changes(table),
        goals=goal_states(found.goals),
        schedule=reassessment(found, as_of),
        days_to_goal=days_to_goal(found),
        problems=dict(found.problems),
    )


def _days(value: float) -> str:
    """A number of days as read: whole days as they are, else one decimal."""
    return str(int(value)) if value == int(value) else for_reading(value, 1)


def cell(count: int, identified: bool) -> str:
    """A count as shown: suppressed ("fewer than 5") when small and the report de-identified."""
    if not identified and 0 < count < SMALL_CELL:
        return f"fewer than {SMALL_CELL}"
    return str(count)


def rows(report: Report, name: Callable[[str], str]) -> list[dict[str, str | int | float | None]]:
    """One row per patient and score; ``name`` turns a patient reference into what is shown."""
    return [
        {
            "patient": name(r.patient),
            "instrument": r.instrument,
            "score": r.code,
            "first_date": r.first.recorded[:10],
            "first_value": r.first.value,
            "latest_date": r.latest.recorded[:10],
            "latest_value": r.latest.value,
            "change": r.change,
            "assessments": r.assessments,
        }
        for r in report.rows
    ]


def to_csv(table: Sequence[Mapping[str, object]]) -> str:
    """The rows as CSV with a header line (full precision: this is data, not reading)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return out.getvalue()


def _bins(changes: Sequence[float]) -> list[tuple[float, int]]:
    """(lower edge, count) of each BIN-wide bar from the lowest to the highest change."""
    if not changes:
        return []
    low = math.floor(min(changes) / BIN) * BIN
    high = math.floor(max(changes) / BIN) * BIN
    counts = {}
    edge = low
    while edge <= high + 1e-9:
        counts[round(edge, 6)] = 0
        edge += BIN
    for change in changes:
        counts[round(math.floor(change / BIN) * BIN, 6)] += 1
    return sorted(counts.items())


def histogram(mean: MeanChange, identified: bool) -> str:
    """An inline SVG bar chart of one score's changes; small bars hatched, not counted."""
    bins = _bins(mean.changes)
    width, height, pad = 36 * max(len(bins), 1) + 40, 160, 24
    top = max((c for _, c in bins), default=1) or 1
    parts = [
        f'<svg class="hist" role="img" viewBox="0 0 {width} {height + 2 * pad}" '
        f'width="{width}" height="{height + 2 * pad}" '
        f'aria-label="Distribution of change in {html.escape(mean.code)}">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<path d="M0 6 L6 0" stroke="#555" stroke-width="1"/></pattern></defs>',
    ]
    for n, (edge, count) in enumerate(bins):
        x = 20 + 36 * n
        hidden = not identified and 0 < count < SMALL_CELL
        shown = SMALL_CELL if hidden else count
        bar = 0 if count == 0 else max(2, round(height * shown / max(top, SMALL_CELL)))
        fill = "url(#hatch)" if hidden else "#2b5d8a"
        label = cell(count, identified)
        parts.append(
            f'<rect x="{x}" y="{pad + height - bar}" width="30" height="{bar}" fill="{fill}">'
            f"<title>{for_reading(edge)} to {for_reading(edge + BIN)}: {label}</title></rect>"
        )
        parts.append(
            f'<text x="{x + 15}" y="{pad + height + 14}" font-size="10" text-anchor="middle">'
            f"{for_reading(edge)}</text>"
        )
        if count and not hidden:
            parts.append(
                f'<text x="{x + 15}" y="{pad + height - bar - 4}" font-size="10" '
                f'text-anchor="middle">{count}</text>'
            )
    parts.append("</svg>")
    any_hidden = any(0 < c < SMALL_CELL for _, c in bins) and not identified
    parts.append(
        f"<p class='note'>Patients by change (latest minus first), in bins of {for_reading(BIN)} "
        "starting at the value under each bar."
        + (
            f" Hatched bars: fewer than {SMALL_CELL} patients, count not shown."
            if any_hidden
            else ""
        )
        + "</p>"
    )
    return "".join(parts)


STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#111}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #bbb;padding:.25rem .6rem;
text-align:left;white-space:nowrap}td.n{text-align:right}.note{color:#333;font-size:.92rem}
svg.hist{display:block;margin:.5rem 0 1rem}@media print{body{margin:0}h2{break-after:avoid}}"""


def to_html(report: Report) -> str:
    """The report page: counts, paired change per score with its distribution, goals,
    re-assessment on schedule, time to goal, and what was left aside."""
    e = html.escape
    ident = report.identified
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>attach-fhir outcomes report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Outcomes report</h1>",
        f"<p>As of {report.as_of.isoformat()}. "
        + (
            "Identified: patient references are included."
            if ident
            else f"De-identified: pseudonymous ids, no names or birth dates; counts under "
            f"{SMALL_CELL} are suppressed."
        )
        + "</p>",
        f"<p class='note'>{e(NO_RULES)}</p>",
        "<h2>Patients assessed</h2><table><tr><th>Instrument</th><th>Patients</th></tr>",
    ]
    for title, count in report.assessed.items():
        out.append(f"<tr><td>{e(title)}</td><td class='n'>{cell(count, ident)}</td></tr>")
    out.append("</table>")
    out.append("<h2>First and latest scores (patients assessed twice or more)</h2>")
    if not report.means:
        out.append("<p>No patient has been assessed twice yet.</p>")
    for mean in report.means:
        out.append(f"<h3>{e(mean.instrument)}: {e(mean.code)}</h3>")
        if not ident and mean.n < SMALL_CELL:
            out.append(f"<p>Fewer than {SMALL_CELL} patients: not shown.</p>")
            continue
        ci = (
            f"{for_reading(mean.low)} to {for_reading(mean.high)}"
            if mean.low is not None and mean.high is not None
            else "not computed (one patient)"
        )
        out.append(
            "<table><tr><th>Patients</th><th>Mean first</th><th>Mean latest</th>"
            "<th>Mean change</th><th>95% confidence interval</th></tr>"
            f"<tr><td class='n'>{mean.n}</td><td class='n'>{for_reading(mean.mean_first)}</td>"
            f"<td class='n'>{for_reading(mean.mean_latest)}</td>"
            f"<td class='n'>{for_reading(mean.mean)}</td><td>{ci}</td></tr></table>"
        )
        out.append(histogram(mean, ident))
    goals = report.goals
    out.append("<h2>Goals</h2><table><tr><th>State</th><th>Goals</th></tr>")
    for state, count in goals.items():
        out.append(f"<tr><td>{e(state)}</td><td class='n'>{cell(count, ident)}</td></tr>")
    out.append("</table>")
    schedule = report.schedule
    out.append("<h2>Re-assessed on schedule</h2>")
    if schedule.due == 0:
        out.append("<p>No plan's first re-assessment was due by this date.</p>")
    else:
        share = Decimal(100 * schedule.on_time) / Decimal(schedule.due)
        out.append(
            f"<p>{cell(schedule.on_time, ident)} of {cell(schedule.due, ident)} plans due "
            + (
                f"({share.quantize(Decimal('1'), rounding=ROUND_HALF_UP)}%) "
                if ident or schedule.due >= SMALL_CELL
                else ""
            )
            + "were re-assessed by their first due date.</p>"
        )
    days = report.days_to_goal
    out.append("<h2>Time from first assessment to goal achieved</h2>")
    if not days or (not ident and len(days) < SMALL_CELL):
        out.append(f"<p>{cell(len(days), ident)} goals achieved: no summary shown.</p>")
    else:
        q = statistics.quantiles(days, n=4, method="inclusive") if len(days) > 1 else [days[0]] * 3
        out.append(
            f"<p>{len(days)} goals achieved; median {_days(statistics.median(days))} days "
            f"(quartiles {_days(q[0])} to {_days(q[2])}).</p>"
        )
    if report.problems:
        out.append("<h2>Left aside</h2><table><tr><th>What</th><th>Count</th></tr>")
        for what, count in sorted(report.problems.items()):
            out.append(f"<tr><td>{e(what)}</td><td class='n'>{count}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
