"""The SVG charts, parsed as XML: points where the axis scale puts them, computed by hand.

Plane: plot 300 px square at (56, 16) for the 1-7 scale, so 50 px per point:
x = 56 + (avoidance - 1) * 50, y = 16 + (7 - anxiety) * 50.
Lines and bars: frame 480 x 240 px at (56, 16); y = 16 + (hi - v) / (hi - lo) * 240.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from smart_app.web.charts import (
    PLANE_CAPTION,
    BarGroup,
    PlaneDatum,
    PlaneTrack,
    Series,
    bar_chart,
    line_chart,
    plane_chart,
    relationship_plane,
)

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def floats(element: ET.Element, *names: str) -> tuple[float, ...]:
    return tuple(float(element.get(n, "nan")) for n in names)


def test_plane_places_points_by_avoidance_across_and_anxiety_up() -> None:
    data = [PlaneDatum("2024-01-10", 6.0, 2.0), PlaneDatum("2024-03-10", 4.0, 4.0)]
    data.append(PlaneDatum("2024-05-10", 43 / 18, 39 / 18))
    root = parse(plane_chart("p", data, title="ECR-R"))
    circles = root.findall(f"{NS}g/{NS}circle")
    assert [floats(c, "cx", "cy") for c in circles] == [
        (106.0, 66.0),  # 56 + 1*50, 16 + 1*50
        (206.0, 166.0),  # 56 + 3*50, 16 + 3*50
        (114.33, 246.56),  # 56 + (39/18 - 1)*50 = 114.333, 16 + (7 - 43/18)*50 = 246.556
    ]
    assert [c.get("class") for c in circles] == ["point", "point", "point latest"]
    line = root.find(f"{NS}polyline")
    assert line is not None
    assert line.get("points") == "106.00,66.00 206.00,166.00 114.33,246.56"


def test_plane_draws_no_boundary_and_names_regions_by_their_corner() -> None:
    root = parse(plane_chart("p", [PlaneDatum("d", 1.0, 7.0)], title="t"))
    labels = {
        t.text: floats(t, "x", "y")
        for t in root.iter(f"{NS}text")
        if t.get("class") == "region-label"
    }
    # Low avoidance is left, high anxiety is up: preoccupied top left, fearful top right.
    assert labels == {
        "secure": (64.0, 308.0),
        "preoccupied": (64.0, 34.0),
        "dismissing": (348.0, 308.0),
        "fearful": (348.0, 34.0),
    }
    # Every straight line is a uniform grid line at a scale point: none is singled out as a cut-off.
    lines = list(root.iter(f"{NS}line"))
    assert {ln.get("class") for ln in lines} == {"grid"}
    assert len(lines) == 14  # 7 vertical + 7 horizontal
    [point] = root.findall(f"{NS}g/{NS}circle")
    assert floats(point, "cx", "cy") == (356.0, 316.0)  # avoidance 7, anxiety 1: bottom right
    desc = root.find(f"{NS}desc")
    assert desc is not None and desc.text is not None and PLANE_CAPTION in desc.text


def test_charts_are_accessible_images_without_inline_styles() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    svgs = [
        plane_chart("a", [PlaneDatum("d", 2.0, 3.0)], title="Plane"),
        line_chart("b", [Series("s", [(when, 2.0)])], title="Lines", lo=1, hi=7),
        bar_chart("c", [BarGroup("g", [("anxiety", 2.0)])], title="Bars", lo=1, hi=7),
    ]
    for svg, cid, title in zip(svgs, "abc", ["Plane", "Lines", "Bars"], strict=True):
        root = parse(svg)
        assert root.get("role") == "img"
        assert root.get("aria-labelledby") == f"{cid}-title {cid}-desc"
        title_el = root.find(f"{NS}title")
        assert title_el is not None and title_el.get("id") == f"{cid}-title"
        assert title_el.text == title
        assert root.find(f"{NS}desc") is not None
        assert all(e.get("style") is None for e in root.iter())
        assert "style=" not in svg


def test_every_text_is_escaped() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    svgs = [
        plane_chart(HOSTILE, [PlaneDatum(HOSTILE, 2.0, 3.0)], title=HOSTILE),
        line_chart("l", [Series(HOSTILE, [(when, 2.0)])], title=HOSTILE, lo=1, hi=7),
        bar_chart("b", [BarGroup(HOSTILE, [(HOSTILE, 2.0)])], title=HOSTILE, lo=1, hi=7),
    ]
    for svg in svgs:
        assert "<script" not in svg
        root = parse(svg)  # still well-formed XML
        title = root.find(f"{NS}title")
        assert title is not None and title.text == HOSTILE


def test_line_chart_spaces_points_by_elapsed_time() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    anxiety = Series(
        "anxiety",
        [(start, 6.0), (start + dt.timedelta(days=10), 4.0), (start + dt.timedelta(days=30), 1.0)],
    )
    avoidance = Series("avoidance", [(start + dt.timedelta(days=30), 7.0)])
    root = parse(line_chart("l", [anxiety, avoidance], title="t", lo=1, hi=7))
    groups = [g for g in root.iter(f"{NS}g") if (g.get("class") or "").startswith("series ")]
    assert [g.get("data-label") for g in groups] == ["anxiety", "avoidance"]
    # x = 56 + days/30 * 480: 56, 216, 536; y = 16 + (7 - v) / 6 * 240: 56, 136, 256.
    first = [floats(c, "cx", "cy") for c in groups[0].findall(f"{NS}circle")]
    assert first == [(56.0, 56.0), (216.0, 136.0), (536.0, 256.0)]
    assert [floats(c, "cx", "cy") for c in groups[1].findall(f"{NS}circle")] == [(536.0, 16.0)]
    line = groups[0].find(f"{NS}polyline")
    assert line is not None and line.get("stroke-dasharray") == "none"
    assert groups[1].find(f"{NS}polyline") is None  # one point: no line


def test_line_chart_on_the_rq_dimension_range() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    root = parse(line_chart("l", [Series("self", [(when, 6.0)])], title="t", lo=-12, hi=12))
    [point] = [c for c in root.iter(f"{NS}circle")]
    # One time: centred, x = 56 + 240; y = 16 + (12 - 6) / 24 * 240 = 76.
    assert floats(point, "cx", "cy") == (296.0, 76.0)
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick-label"]
    assert ticks[:7] == ["-12", "-8", "-4", "0", "4", "8", "12"]


def test_bars_stand_side_by_side_per_relationship() -> None:
    groups = [
        BarGroup("mother", [("anxiety", 2.0), ("avoidance", 5.5)]),
        BarGroup("father", [("anxiety", None), ("avoidance", None)]),
        BarGroup("romantic partner", [("anxiety", 7.0), ("avoidance", 1.0)]),
        BarGroup("best friend", [("anxiety", 4.0), ("avoidance", 3.0)]),
    ]
    root = parse(bar_chart("b", groups, title="t", lo=1, hi=7))
    bars = {
        (g.get("data-label"), r.get("data-series")): floats(r, "x", "y", "width", "height")
        for g in root.iter(f"{NS}g")
        for r in g.findall(f"{NS}rect")
    }
    # Group width 480/4 = 120, padding 12, bar width 48; x = 56 + g*120 + 12 + j*48.
    # y = 16 + (7 - v) * 40, height = 256 - y.
    assert bars == {
        ("mother", "anxiety"): (68.0, 216.0, 48.0, 40.0),
        ("mother", "avoidance"): (116.0, 76.0, 48.0, 180.0),
        ("romantic partner", "anxiety"): (308.0, 16.0, 48.0, 240.0),
        ("romantic partner", "avoidance"): (356.0, 256.0, 48.0, 0.0),
        ("best friend", "anxiety"): (428.0, 136.0, 48.0, 120.0),
        ("best friend", "avoidance"): (476.0, 176.0, 48.0, 80.0),
    }
    not_scored = [t for t in root.iter(f"{NS}text") if t.get("class") == "not-scored"]
    assert [floats(t, "x") for t in not_scored] == [(236.0,)]  # father: 56 + 120 + 60


def test_relationship_plane_draws_one_named_track_per_relationship_and_skips_none_as_zero() -> None:
    tracks = [
        PlaneTrack(
            "mother", [(1, PlaneDatum("2024-01-05", 5.0, 2.0)), (2, PlaneDatum("d", 3.0, 4.0))]
        ),
        PlaneTrack("romantic partner", [(2, PlaneDatum("2024-06-05", 7.0, 1.0))]),
    ]
    root = parse(relationship_plane("r", tracks, title="ECR-RS", absent=[("father", "skipped")]))
    groups = [g for g in root.iter(f"{NS}g") if (g.get("class") or "").startswith("track ")]
    assert [(g.get("data-label"), g.get("class")) for g in groups] == [
        ("mother", "track series-0"),
        ("romantic partner", "track series-1"),
    ]
    mother = [floats(c, "cx", "cy", "data-order") for c in groups[0].findall(f"{NS}circle")]
    # x = 56 + (avoidance - 1) * 50, y = 16 + (7 - anxiety) * 50.
    assert mother == [(106.0, 116.0, 1.0), (206.0, 216.0, 2.0)]
    line = groups[0].find(f"{NS}polyline")
    assert line is not None and line.get("points") == "106.00,116.00 206.00,216.00"
    assert line.get("stroke-dasharray") == "none"
    [partner] = groups[1].findall(f"{NS}circle")
    assert floats(partner, "cx", "cy") == (56.0, 16.0)  # avoidance 1, anxiety 7: top left
    assert groups[1].find(f"{NS}polyline") is None
    labels = [t.text for g in groups for t in g.findall(f"{NS}text")]
    assert labels == ["1", "mother (2)", "romantic partner (2)"]  # the latest of each named
    # Labels sit 8 px above their point, except near the top (or bottom) edge, where the corner
    # names are: the partner's point at y 16 gets its label below it, at 16 + 20.
    label_y = [float(t.get("y", "")) for g in groups for t in g.findall(f"{NS}text")]
    assert label_y == [108.0, 208.0, 36.0]
    assert [c.get("class") for g in groups for c in g.findall(f"{NS}circle")] == [
        "point",
        "point latest",
        "point latest",
    ]
    # Nothing is drawn for the skipped relationship; the description says so.
    assert len(list(root.iter(f"{NS}circle"))) == 3
    desc = root.find(f"{NS}desc")
    assert desc is not None and desc.text is not None
    assert "father: skipped, not drawn" in desc.text
    assert "mother: 1 2024-01-05 avoidance 2.00, anxiety 5.00, 2 d avoidance 4.00" in desc.text


def test_a_bar_group_without_values_says_why_instead_of_a_zero_bar() -> None:
    groups = [
        BarGroup("mother", [("anxiety", 2.0), ("avoidance", 3.0)]),
        BarGroup("father", [("anxiety", None), ("avoidance", None)], "skipped"),
    ]
    root = parse(bar_chart("b", groups, title="t", lo=1, hi=7))
    assert [r.get("data-value") for r in root.iter(f"{NS}rect") if r.get("data-value")] == [
        "2.00",
        "3.00",
    ]
    said = [
        (t.text, floats(t, "x")) for t in root.iter(f"{NS}text") if t.get("class") == "not-scored"
    ]
    assert said == [("skipped", (416.0,))]  # the father group's middle: 56 + 240 + 120
    desc = root.find(f"{NS}desc")
    assert desc is not None and desc.text == (
        "mother: anxiety 2.00, avoidance 3.00; father: anxiety skipped, avoidance skipped"
    )
