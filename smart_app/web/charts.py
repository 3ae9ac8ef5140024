"""Server-rendered SVG charts: no script, no library, accessible, every text escaped.

Each chart is one ``<svg role="img" aria-labelledby="<id>-title <id>-desc">`` with a ``<title>``
and a ``<desc>`` that states the data in words; the page puts a data table beside it. Colours
come from classes in ``static/review.css`` (the CSP forbids inline styles); SVG presentation
attributes (``stroke-dasharray``) tell series apart without colour.

The anxiety x avoidance plane draws no boundary: no validated cut-offs exist for these scores
(the ECR-R's midpoint split is unverified), so the four names of the two-dimensional model sit in
the corners they point to, over shading that fades towards the middle. See docs/review.md.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from attach_fhir.reading import for_reading

# Plane: a square plot, 50 px per scale point on the 1-7 range.
PLANE_LEFT, PLANE_TOP, PLANE_SIZE = 56.0, 16.0, 300.0
PLANE_WIDTH = PLANE_HEIGHT = PLANE_LEFT + PLANE_SIZE + 16 + 0.0
# Line and bar charts share one frame.
FRAME_LEFT, FRAME_TOP, FRAME_WIDTH, FRAME_HEIGHT = 56.0, 16.0, 480.0, 240.0
FRAME_SVG_WIDTH, FRAME_SVG_HEIGHT = FRAME_LEFT + FRAME_WIDTH + 16, FRAME_TOP + FRAME_HEIGHT + 56
#: Dash patterns by series index, so series differ without colour.
DASHES = ("none", "6 3", "2 3", "8 3 2 3", "12 4", "1 2", "4 4", "10 2 2 2")
#: Corner of each region name: (fraction across, fraction down) of the plot.
REGIONS = (
    ("secure", 0.0, 1.0),
    ("preoccupied", 0.0, 0.0),
    ("dismissing", 1.0, 1.0),
    ("fearful", 1.0, 0.0),
)
PLANE_CAPTION = (
    "Region names mark directions in the two-dimensional model of attachment (the four patterns "
    "of Bartholomew & Horowitz 1991 placed on anxiety and avoidance, Brennan, Clark & Shaver "
    "1998), not zones: no validated cut-offs exist for these scores, so no boundary is drawn."
)


@dataclass(frozen=True, slots=True)
class Axis:
    """A linear scale from ``[lo, hi]`` onto ``length`` pixels from ``start``."""

    lo: float
    hi: float
    start: float
    length: float
    #: True for a vertical axis: higher values are drawn higher up (smaller y).
    inverted: bool = False

    def place(self, value: float) -> float:
        """The pixel coordinate of ``value``."""
        fraction = (value - self.lo) / (self.hi - self.lo)
        if self.inverted:
            fraction = 1 - fraction
        return self.start + fraction * self.length

    def ticks(self) -> list[float]:
        """At most nine round tick values from lo to hi."""
        span = self.hi - self.lo
        step = next(s for s in (0.5, 1, 2, 4, 5, 10, 20, 50, 100) if span / s <= 8)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]


@dataclass(frozen=True, slots=True)
class PlaneDatum:
    """One point on the plane: when, and its two scores."""

    label: str
    anxiety: float
    avoidance: float


@dataclass(frozen=True, slots=True)
class PlaneTrack:
    """One relationship's points on the plane, oldest first, each with its submission number."""

    label: str
    points: Sequence[tuple[int, PlaneDatum]]


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its name and its (time, value) points in time order."""

    label: str
    points: Sequence[tuple[dt.datetime, float]]


@dataclass(frozen=True, slots=True)
class BarGroup:
    """One group of bars (a relationship target): bar label -> value (None: not scored)."""

    label: str
    bars: Sequence[tuple[str, float | None]]
    #: Said (in the chart and its description) where a bar has no value: never drawn as zero.
    missing: str = "not scored"


def _markup(parts: list[str]) -> Markup:
    """Join the pieces; every text and attribute value in them went through ``escape``."""
    return Markup("".join(parts))  # noqa: S704 - built from escaped values only


def _closed(out: list[str]) -> Markup:
    """The chart so far, its svg element closed."""
    out.append("</svg>")
    return _markup(out)


def _n(value: float) -> str:
    return f"{value:.2f}"


def _r(value: float) -> str:
    """A value a person reads (titles, descriptions): rounded for reading."""
    return for_reading(value)


def _v(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _open(chart_id: str, kind: str, width: float, height: float, title: str, desc: str) -> str:
    cid = escape(chart_id)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" id="{cid}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" height="{_n(height)}" '
        f'role="img" aria-labelledby="{cid}-title {cid}-desc">'
        f'<title id="{cid}-title">{escape(title)}</title>'
        f'<desc id="{cid}-desc">{escape(desc)}</desc>'
    )


def _polyline(css_class: str, points: Sequence[tuple[float, float]], dash: str | None) -> list[str]:
    """A line through ``points`` in order (none for fewer than two), dashed by ``dash``."""
    if len(points) < 2:
        return []
    joined = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
    dashed = f' stroke-dasharray="{dash}"' if dash is not None else ""
    return [f'<polyline class="{css_class}" points="{joined}" fill="none"{dashed}/>']


def _y_axis(axis: Axis, left: float, right: float, label: str) -> list[str]:
    out = ['<g class="axis axis-y">']
    for tick in axis.ticks():
        y = _n(axis.place(tick))
        out.append(f'<line class="grid" x1="{_n(left)}" y1="{y}" x2="{_n(right)}" y2="{y}"/>')
        out.append(
            f'<text class="tick-label" x="{_n(left - 6)}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(_v(tick))}</text>'
        )
    middle = _n(axis.start + axis.length / 2)
    out.append(
        f'<text class="axis-label" x="14" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle})">{escape(label)}</text></g>'
    )
    return out


def plane_chart(
    chart_id: str,
    data: Sequence[PlaneDatum],
    *,
    title: str,
    x_label: str = "Attachment avoidance",
    y_label: str = "Attachment anxiety",
    lo: float = 1,
    hi: float = 7,
) -> Markup:
    """Anxiety (y) against avoidance (x), points numbered oldest first, the latest emphasised."""
    x = Axis(lo, hi, PLANE_LEFT, PLANE_SIZE)
    y = Axis(lo, hi, PLANE_TOP, PLANE_SIZE, inverted=True)
    described = "; ".join(
        f"{i}: {d.label}, avoidance {_r(d.avoidance)}, anxiety {_r(d.anxiety)}"
        for i, d in enumerate(data, 1)
    )
    desc = f"{len(data)} point(s), oldest first. {described}. {PLANE_CAPTION}"
    out = _plane_frame(chart_id, title, desc, x, y, x_label, y_label)
    placed = [(x.place(d.avoidance), y.place(d.anxiety), d) for d in data]
    out += _polyline("trajectory", [(px, py) for px, py, _ in placed], None)
    out.append('<g class="points">')
    for i, (px, py, d) in enumerate(placed, 1):
        latest = " latest" if i == len(placed) else ""
        out.append(
            f'<circle class="point{latest}" cx="{_n(px)}" cy="{_n(py)}" r="{6 if latest else 5}" '
            f'data-order="{i}" data-avoidance="{_n(d.avoidance)}" data-anxiety="{_n(d.anxiety)}">'
            f"<title>{i}: {escape(d.label)}, avoidance {_r(d.avoidance)}, anxiety "
            f"{_r(d.anxiety)}</title></circle>"
            f'<text class="point-label" x="{_n(px + 8)}" y="{_n(py - 8)}">{i}</text>'
        )
    out.append("</g></svg>")
    return _markup(out)


def relationship_plane(
    chart_id: str,
    tracks: Sequence[PlaneTrack],
    *,
    title: str,
    absent: Sequence[tuple[str, str]] = (),
    lo: float = 1,
    hi: float = 7,
) -> Markup:
    """One labelled track per relationship (ECR-RS) on the plane: its points over time, joined.

    Each point carries its submission number; the latest point of a relationship is filled and
    named. ``absent`` lists (relationship, why) for those with no point: said, never drawn.
    """
    x = Axis(lo, hi, PLANE_LEFT, PLANE_SIZE)
    y = Axis(lo, hi, PLANE_TOP, PLANE_SIZE, inverted=True)
    parts = [
        f"{t.label}: "
        + ", ".join(
            f"{n} {d.label} avoidance {_r(d.avoidance)}, anxiety {_r(d.anxiety)}"
            for n, d in t.points
        )
        for t in tracks
    ]
    parts += [f"{label}: {why}, not drawn" for label, why in absent]
    desc = (
        "One point per relationship and submission (numbered oldest first), the latest of "
        f"each relationship named. {'; '.join(parts) or 'No data'}. {PLANE_CAPTION}"
    )
    out = _plane_frame(chart_id, title, desc, x, y, "Attachment avoidance", "Attachment anxiety")
    for i, track in enumerate(tracks):
        style = i % len(DASHES)
        placed = [(x.place(d.avoidance), y.place(d.anxiety), n, d) for n, d in track.points]
        label = escape(track.label)
        out.append(f'<g class="track series-{style}" data-label="{label}">')
        out += _polyline("trajectory", [(px, py) for px, py, _, _ in placed], DASHES[style])
        for j, (px, py, n, d) in enumerate(placed, 1):
            last = j == len(placed)
            name = f"{label} ({n})" if last else str(n)
            out.append(
                f'<circle class="point{" latest" if last else ""}" cx="{_n(px)}" cy="{_n(py)}" '
                f'r="{6 if last else 5}" data-order="{n}" data-avoidance="{_n(d.avoidance)}" '
                f'data-anxiety="{_n(d.anxiety)}"><title>{label} {n}: {escape(d.label)}, '
                f"avoidance {_r(d.avoidance)}, anxiety {_r(d.anxiety)}</title></circle>"
                f'<text class="point-label" x="{_n(px + 8)}" y="{_n(_label_y(py))}">{name}</text>'
            )
        out.append("</g>")
    return _closed(out)


def _label_y(py: float) -> float:
    """A point label's baseline: above the point, clear of the corner names top and bottom."""
    if py - 8 > PLANE_TOP + PLANE_SIZE - 24:  # would sit on "secure" / "dismissing"
        return py - 22
    if py - 8 < PLANE_TOP + 24:  # would sit on "preoccupied" / "fearful"
        return py + 20
    return py - 8


def _plane_frame(
    chart_id: str, title: str, desc: str, x: Axis, y: Axis, x_label: str, y_label: str
) -> list[str]:
    """The plane up to its points: svg element, corner shading and names, frame, both axes."""
    cid = escape(chart_id)
    out = [_open(chart_id, "plane", PLANE_WIDTH, PLANE_HEIGHT, title, desc), "<defs>"]
    for name, cx, cy in REGIONS:
        out.append(
            f'<radialGradient id="{cid}-{name}" cx="{cx}" cy="{cy}" r="0.55">'
            '<stop offset="0" stop-color="#5b7fa3" stop-opacity="0.3"/>'
            '<stop offset="1" stop-color="#5b7fa3" stop-opacity="0"/></radialGradient>'
        )
    out.append('</defs><g class="regions">')
    size = _n(PLANE_SIZE)
    box = f'x="{_n(PLANE_LEFT)}" y="{_n(PLANE_TOP)}" width="{size}" height="{size}"'
    for name, _, _ in REGIONS:
        out.append(f'<rect class="region region-{name}" {box} fill="url(#{cid}-{name})"/>')
    for name, cx, cy in REGIONS:
        tx = PLANE_LEFT + (8 if cx == 0 else PLANE_SIZE - 8)
        ty = PLANE_TOP + (18 if cy == 0 else PLANE_SIZE - 8)
        anchor = "start" if cx == 0 else "end"
        out.append(
            f'<text class="region-label" x="{_n(tx)}" y="{_n(ty)}" text-anchor="{anchor}">'
            f"{escape(name)}</text>"
        )
    out.append(f'</g><rect class="plot-frame" {box} fill="none"/>')
    out.extend(_y_axis(y, PLANE_LEFT, PLANE_LEFT + PLANE_SIZE, y_label))
    out.append('<g class="axis axis-x">')
    bottom = PLANE_TOP + PLANE_SIZE
    for tick in x.ticks():
        tk = _n(x.place(tick))
        out.append(
            f'<line class="grid" x1="{tk}" y1="{_n(PLANE_TOP)}" x2="{tk}" y2="{_n(bottom)}"/>'
        )
        out.append(
            f'<text class="tick-label" x="{tk}" y="{_n(bottom + 16)}" text-anchor="middle">'
            f"{escape(_v(tick))}</text>"
        )
    out.append(
        f'<text class="axis-label" x="{_n(PLANE_LEFT + PLANE_SIZE / 2)}" y="{_n(bottom + 40)}" '
        f'text-anchor="middle">{escape(x_label)}</text></g>'
    )
    return out


def _time_axis(times: Sequence[dt.datetime]) -> tuple[dt.datetime, float]:
    first, last = min(times), max(times)
    return first, (last - first).total_seconds()


def time_x(when: dt.datetime, first: dt.datetime, span_seconds: float) -> float:
    """The x of a time on the frame: proportional to elapsed time; a single time is centred."""
    if span_seconds <= 0:
        return FRAME_LEFT + FRAME_WIDTH / 2
    return FRAME_LEFT + (when - first).total_seconds() / span_seconds * FRAME_WIDTH


def _framed(
    chart_id: str, kind: str, title: str, described: str, y: Axis, y_label: str
) -> list[str]:
    """The start of a framed chart: the svg element, the plot frame and the y axis."""
    return [
        _open(chart_id, kind, FRAME_SVG_WIDTH, FRAME_SVG_HEIGHT, title, described or "No data."),
        f'<rect class="plot-frame" x="{_n(FRAME_LEFT)}" y="{_n(FRAME_TOP)}" '
        f'width="{_n(FRAME_WIDTH)}" height="{_n(FRAME_HEIGHT)}" fill="none"/>',
        *_y_axis(y, FRAME_LEFT, FRAME_LEFT + FRAME_WIDTH, y_label),
    ]


def _score_axis(lo: float, hi: float) -> Axis:
    """The y axis of a framed chart: the score's range, rising up the frame."""
    return Axis(lo, hi, FRAME_TOP, FRAME_HEIGHT, inverted=True)


def line_chart(
    chart_id: str,
    lines: Sequence[Series],
    *,
    title: str,
    lo: float,
    hi: float,
    y_label: str = "Score",
) -> Markup:
    """One line per score over time (x proportional to elapsed time, y on the score's range)."""
    y = _score_axis(lo, hi)
    times = [when for s in lines for when, _ in s.points]
    described = "; ".join(
        f"{s.label}: " + ", ".join(f"{when.date().isoformat()} {_r(v)}" for when, v in s.points)
        for s in lines
    )
    out = _framed(chart_id, "lines", title, described, y, y_label)
    bottom = FRAME_TOP + FRAME_HEIGHT
    if not times:
        return _closed(out)
    first, span = _time_axis(times)
    distinct = sorted(set(times))
    labelled = distinct if len(distinct) <= 6 else [distinct[0], distinct[-1]]
    out.append('<g class="axis axis-x">')
    for when in distinct:
        tk = _n(time_x(when, first, span))
        out.append(
            f'<line class="tick" x1="{tk}" y1="{_n(bottom)}" x2="{tk}" y2="{_n(bottom + 5)}"/>'
        )
        if when in labelled:
            out.append(
                f'<text class="tick-label" x="{tk}" y="{_n(bottom + 20)}" text-anchor="middle">'
                f"{escape(when.date().isoformat())}</text>"
            )
    out.append("</g>")
    for i, line in enumerate(lines):
        dash = DASHES[i % len(DASHES)]
        placed = [(time_x(when, first, span), y.place(v), when, v) for when, v in line.points]
        out.append(f'<g class="series series-{i % len(DASHES)}" data-label="{escape(line.label)}">')
        out += _polyline("series-line", [(px, py) for px, py, _, _ in placed], dash)
        for px, py, when, v in placed:
            out.append(
                f'<circle class="series-point" cx="{_n(px)}" cy="{_n(py)}" r="4" '
                f'data-value="{_n(v)}" data-when="{escape(when.isoformat())}">'
                f"<title>{escape(line.label)}: {escape(when.date().isoformat())} {_n(v)}</title>"
                "</circle>"
            )
        out.append("</g>")
    return _closed(out)


def bar_chart(
    chart_id: str,
    groups: Sequence[BarGroup],
    *,
    title: str,
    lo: float,
    hi: float,
    y_label: str = "Score",
) -> Markup:
    """Grouped bars (e.g. ECR-RS anxiety and avoidance per relationship), rising from ``lo``."""
    y = _score_axis(lo, hi)
    described = "; ".join(
        f"{g.label}: "
        + ", ".join(f"{name} {_n(v) if v is not None else g.missing}" for name, v in g.bars)
        for g in groups
    )
    out = _framed(chart_id, "bars", title, described, y, y_label)
    bottom = FRAME_TOP + FRAME_HEIGHT
    if not groups:
        return _closed(out)
    group_width = FRAME_WIDTH / len(groups)
    pad = group_width * 0.1
    for g, group in enumerate(groups):
        left = FRAME_LEFT + g * group_width
        bar_width = (group_width - 2 * pad) / max(len(group.bars), 1)
        out.append(f'<g class="bar-group" data-label="{escape(group.label)}">')
        for j, (name, value) in enumerate(group.bars):
            bx = left + pad + j * bar_width
            if value is None:
                continue
            top = y.place(value)
            out.append(
                f'<rect class="bar bar-{j % len(DASHES)}" x="{_n(bx)}" y="{_n(top)}" '
                f'width="{_n(bar_width)}" height="{_n(y.place(lo) - top)}" '
                f'data-value="{_n(value)}" '
                f'data-series="{escape(name)}"><title>{escape(group.label)}, {escape(name)}: '
                f"{_n(value)}</title></rect>"
                f'<text class="bar-value" x="{_n(bx + bar_width / 2)}" y="{_n(top - 4)}" '
                f'text-anchor="middle">{_n(value)}</text>'
            )
        if all(v is None for _, v in group.bars):
            out.append(
                f'<text class="not-scored" x="{_n(left + group_width / 2)}" '
                f'y="{_n(bottom - 8)}" text-anchor="middle">{escape(group.missing)}</text>'
            )
        out.append(
            f'<text class="tick-label" x="{_n(left + group_width / 2)}" y="{_n(bottom + 20)}" '
            f'text-anchor="middle">{escape(group.label)}</text></g>'
        )
    return _closed(out)
