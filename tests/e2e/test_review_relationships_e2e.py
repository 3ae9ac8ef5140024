"""The review of the ECR-RS and the RQ: the real sandbox EHR, submissions made through the app.

One launch for the module: the clinician submits the ECR-RS twice (mother and romantic partner
answered; father answered "no" at its gate, best friend's gate left unanswered) and the RQ once,
through the assess form over HTTP; the review pages are then read over HTTP.

Expected values are computed by hand from the published keys in questionnaires/ecr-rs.json and
questionnaires/rq.json (docs/scoring-model.md):

- ECR-RS, per relationship: avoidance = mean of items 1-6, items 1-4 reverse-keyed (8 - x);
  anxiety = mean of items 7-9.
- RQ: each rating is its answer; model of self = (secure + dismissing) - (fearful +
  preoccupied); model of other = (secure + preoccupied) - (fearful + dismissing); range -12..12.

Chart positions: plane x = 56 + (avoidance - 1) * 50, y = 16 + (7 - anxiety) * 50; bars and
lines y = 16 + (hi - v) / (hi - lo) * 240 (tests/app/test_charts.py explains the frame).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser as Chromium

from attach_fhir.writeback import identifier_value
from smart_app.web.security import COOKIE_NAME
from tests.e2e.test_assess_e2e import SCOPES, Clinician, Env, app_env, outbox_item, submit
from tests.e2e.test_pages_a11y import AXE, axe_violations
from tests.e2e.test_review_e2e import SVG, svgs
from tests.fixtures.sandbox import SandboxFactory

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
QR = "QuestionnaireResponse"


def ecr_rs(mother: list[int], partner: list[int]) -> dict[str, str]:
    """Form fields: mother and partner answered (items 1-9), father "no", friend's gate blank."""
    fields = {"q:mother.applies": "true", "q:father.applies": "false"}
    fields["q:partner.applies"] = "true"
    for n in range(1, 10):
        fields[f"q:mother.{n}"] = str(mother[n - 1])
        fields[f"q:partner.{n}"] = str(partner[n - 1])
    return fields


# Submission 1. Mother [2,3,2,1, 5,6, 4,5,6]: avoidance (6+5+6+7+5+6)/6 = 35/6 = 5.83,
# anxiety (4+5+6)/3 = 5.00. Partner [6,7,5,6, 2,1, 1,2,2]: avoidance (2+1+3+2+2+1)/6 = 11/6
# = 1.83, anxiety 5/3 = 1.67.
# Submission 2. Mother [3,3,3,3, 4,4, 3,3,2]: avoidance (5*4+4+4)/6 = 28/6 = 4.67, anxiety 8/3
# = 2.67. Partner [7,7,7,7, 1,1, 1,1,1]: avoidance (1*4+1+1)/6 = 1.00, anxiety 1.00.
ECR_RS = [
    ecr_rs([2, 3, 2, 1, 5, 6, 4, 5, 6], [6, 7, 5, 6, 2, 1, 1, 2, 2]),
    ecr_rs([3, 3, 3, 3, 4, 4, 3, 3, 2], [7, 7, 7, 7, 1, 1, 1, 1, 1]),
]
#: (relationship, submission number) -> (anxiety, avoidance), as shown (two decimals).
ECR_RS_EXPECTED = {
    ("mother", 1): ("5.00", "5.83"),
    ("romantic partner", 1): ("1.67", "1.83"),
    ("mother", 2): ("2.67", "4.67"),
    ("romantic partner", 2): ("1.00", "1.00"),
}
# RQ: secure 5, fearful 3, preoccupied 6, dismissing 2 -> self (5+2)-(3+6) = -2,
# other (5+6)-(3+2) = 6.
RQ = {"q:best-fit": "preoccupied", "q:secure": "5", "q:fearful": "3"}
RQ |= {"q:preoccupied": "6", "q:dismissing": "2"}
INDIVIDUAL = "not appropriate for use in individual assessments"


@dataclass
class Reviewed:
    """The module's app, the clinician's launch, and what was submitted (oldest first)."""

    env: Env
    clinician: Clinician
    ecr_rs: list[str]
    rq: str
    day: str

    def page(self, path: str) -> str:
        """A review page over HTTP (200 asserted)."""
        url = f"{self.env.server.url}/app/{self.clinician.ctx}/review/{path}"
        response = self.clinician.browser.request("GET", url)
        assert response.status_code == 200, response.text
        return response.text


def delivered(clinician: Clinician, env: Env, instrument: str, fields: dict[str, str]) -> str:
    """Submit through the app; the id of the QuestionnaireResponse the EHR now holds."""
    sid, _ = submit(clinician, instrument, fields)
    item = outbox_item(env, sid)
    assert item.status == "delivered", item.last_error
    return str(item.receipt[f"urn:uuid:{identifier_value(sid, QR)}"]).split("/")[1]


@pytest.fixture(scope="module")
def reviewed(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reviewed]:
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("review-relationships-app")
    with app_env(sandbox, data_dir, "review-relationships-e2e", SCOPES) as env:
        clinician = Clinician(env)
        try:
            clinician.launch(ADULT)
            first, second = (delivered(clinician, env, "ecr-rs", f) for f in ECR_RS)
            rq = delivered(clinician, env, "rq", RQ)
            with clinician.fhir() as client:
                day = str(client.get(f"{QR}/{second}").json()["authored"])[:10]
            yield Reviewed(env, clinician, [first, second], rq, day)
        finally:
            clinician.close()


def data_table(page: str, chart_id: str) -> list[list[str]]:
    """The body rows of the data table that follows the chart ``chart_id``."""
    after = page[page.index(f'id="{chart_id}"') :]
    body = re.search(r'<table class="chart-data">.*?<tbody>(.*?)</tbody>', after, re.S)
    assert body, f"no data table after {chart_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)] for r in rows]


def by_id(page: str) -> dict[str, ET.Element]:
    """Every chart on the page by its id."""
    return {s.get("id", ""): s for kind in ("plane", "bars", "lines") for s in svgs(page, kind)}


def tracks(plane: ET.Element) -> dict[str, list[tuple[str, str, str, float, float]]]:
    """Relationship -> (order, anxiety, avoidance, cx, cy) per drawn point."""
    out = {}
    for group in plane.iter(f"{SVG}g"):
        if (group.get("class") or "").startswith("track "):
            out[group.get("data-label", "")] = [
                (
                    c.get("data-order", ""),
                    c.get("data-anxiety", ""),
                    c.get("data-avoidance", ""),
                    float(c.get("cx", "")),
                    float(c.get("cy", "")),
                )
                for c in group.findall(f"{SVG}circle")
            ]
    return out


def series(lines: ET.Element) -> dict[str, list[str]]:
    """Line label -> its points' values, oldest first."""
    return {
        g.get("data-label", ""): [c.get("data-value", "") for c in g.findall(f"{SVG}circle")]
        for g in lines.iter(f"{SVG}g")
        if (g.get("class") or "").startswith("series ")
    }


def test_ecr_rs_sets_each_relationship_side_by_side_and_says_which_were_skipped(
    reviewed: Reviewed,
) -> None:
    page = reviewed.page(f"responses/{reviewed.ecr_rs[1]}")
    # The values of this response, and their change since the first submission:
    # mother avoidance 28/6 - 35/6 = -1.17, anxiety 8/3 - 5 = -2.33; partner avoidance
    # 1 - 11/6 = -0.83, anxiety 1 - 5/3 = -0.67.
    for code, value, change in [
        ("ecr-rs-mother-avoidance", "4.67", "-1.17"),
        ("ecr-rs-mother-anxiety", "2.67", "-2.33"),
        ("ecr-rs-partner-avoidance", "1.00", "-0.83"),
        ("ecr-rs-partner-anxiety", "1.00", "-0.67"),
    ]:
        row = re.search(rf'<tr id="score-{code}">(.*?)</tr>', page, re.S)
        assert row, code
        assert f'data-code="{code}">{value}<' in row.group(1)
        assert f"{change} since {reviewed.day}" in row.group(1)
    assert 'data-code="ecr-rs-father' not in page and 'data-code="ecr-rs-friend' not in page
    skipped = re.search(r'id="skipped-ecr-rs">(.*?)</p>', page, re.S)
    assert skipped and "Skipped relationships: father, best friend." in skipped.group(1)
    assert "No reliable-change figure: the only reliability figures" in page
    assert "ecr-rs-relationship-means version 1.0.0" in page
    assert "Fraley, R. C., Heffernan, M. E., Vicary, A. M., &amp; Brumbaugh, C. C. (2011)" in page

    charts = by_id(page)
    # One plane, a track per answered relationship, both submissions on it.
    drawn = tracks(charts["plane-ecr-rs"])
    assert drawn == {
        # mother 1: x 56 + (35/6 - 1)*50 = 297.67, y 16 + 2*50 = 116;
        # mother 2: x 56 + (28/6 - 1)*50 = 239.33, y 16 + (7 - 8/3)*50 = 232.67.
        "mother": [("1", "5.00", "5.83", 297.67, 116.0), ("2", "2.67", "4.67", 239.33, 232.67)],
        # partner 1: x 56 + (11/6 - 1)*50 = 97.67, y 16 + (7 - 5/3)*50 = 282.67; 2: (56, 316).
        "romantic partner": [
            ("1", "1.67", "1.83", 97.67, 282.67),
            ("2", "1.00", "1.00", 56.0, 316.0),
        ],
    }
    desc = charts["plane-ecr-rs"].find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert "father: skipped, not drawn; best friend: skipped, not drawn" in desc.text
    # Its table carries the same numbers, and says "skipped" where nothing is drawn.
    expected_rows = []
    for n in (1, 2):
        for name in ("mother", "father", "romantic partner", "best friend"):
            ax, av = ECR_RS_EXPECTED.get((name, n), ("skipped", "skipped"))
            expected_rows.append([str(n), reviewed.day, name, av, ax])
    assert data_table(page, "plane-ecr-rs") == expected_rows

    # Side by side for this response: bars for the answered, "skipped" said for the others.
    bars = charts["bars-ecr-rs"]
    drawn_bars = {
        (g.get("data-label"), r.get("data-series")): (r.get("data-value"), float(r.get("y", "")))
        for g in bars.iter(f"{SVG}g")
        for r in g.findall(f"{SVG}rect")
    }
    assert drawn_bars == {  # y = 16 + (7 - v) * 40
        ("mother", "anxiety"): ("2.67", 189.33),
        ("mother", "avoidance"): ("4.67", 109.33),
        ("romantic partner", "anxiety"): ("1.00", 256.0),
        ("romantic partner", "avoidance"): ("1.00", 256.0),
    }
    said = [t.text for t in bars.iter(f"{SVG}text") if t.get("class") == "not-scored"]
    assert said == ["skipped", "skipped"]
    assert data_table(page, "bars-ecr-rs") == [
        ["mother", "2.67", "4.67"],
        ["father", "skipped", "skipped"],
        ["romantic partner", "1.00", "1.00"],
        ["best friend", "skipped", "skipped"],
    ]

    # The first response is shown against its own past only: one point per relationship.
    first = by_id(reviewed.page(f"responses/{reviewed.ecr_rs[0]}"))
    assert {k: [p[:3] for p in v] for k, v in tracks(first["plane-ecr-rs"]).items()} == {
        "mother": [("1", "5.00", "5.83")],
        "romantic partner": [("1", "1.67", "1.83")],
    }


def test_history_has_a_line_per_relationship_and_reads_the_skips_from_the_responses(
    reviewed: Reviewed,
) -> None:
    page = reviewed.page("")
    lines = [s for k, s in by_id(page).items() if k.startswith("lines-ecr-rs")]
    assert len(lines) == 2  # avoidance, anxiety: a line per relationship in each
    values = {label: v for s in lines for label, v in series(s).items()}
    assert values == {
        "ECR-RS attachment avoidance (mother)": ["5.83", "4.67"],
        "ECR-RS attachment avoidance (romantic partner)": ["1.83", "1.00"],
        "ECR-RS attachment anxiety (mother)": ["5.00", "2.67"],
        "ECR-RS attachment anxiety (romantic partner)": ["1.67", "1.00"],
    }
    # The skips come from the two responses (one search), not from the missing scores.
    assert data_table(page, "plane-ecr-rs")[1] == [
        "1",
        reviewed.day,
        "father",
        "skipped",
        "skipped",
    ]
    for qr_id in reviewed.ecr_rs:
        assert f"/review/responses/{qr_id}" in page


def test_rq_shows_its_ratings_its_dimensions_and_the_authors_restriction_first(
    reviewed: Reviewed,
) -> None:
    page = reviewed.page(f"responses/{reviewed.rq}")
    restriction = re.search(r'id="restrictions-rq">(.*?)</div>', page, re.S)
    assert restriction and INDIVIDUAL in restriction.group(1)
    assert page.index('id="restrictions-rq"') < page.index('id="scores-rq"')
    for code, value in [
        ("rq-secure", "5.00"),
        ("rq-fearful", "3.00"),
        ("rq-preoccupied", "6.00"),
        ("rq-dismissing", "2.00"),
        ("rq-model-of-self", "-2.00"),
        ("rq-model-of-other", "6.00"),
    ]:
        assert f'data-code="{code}">{value}<' in page, code
    assert "Computed as rq-secure + rq-dismissing - rq-fearful - rq-preoccupied" in page
    assert "rq-prototype-ratings version 1.0.0" in page

    charts = by_id(page)
    # The four ratings side by side: one bar each, x = 56 + g * 120 + 12, y = 16 + (7 - v) * 40.
    bars = {
        g.get("data-label"): (r.get("data-value"), float(r.get("x", "")), float(r.get("y", "")))
        for g in charts["bars-rq"].iter(f"{SVG}g")
        for r in g.findall(f"{SVG}rect")
    }
    assert bars == {
        "secure": ("5.00", 68.0, 96.0),
        "fearful": ("3.00", 188.0, 176.0),
        "preoccupied": ("6.00", 308.0, 56.0),
        "dismissing": ("2.00", 428.0, 216.0),
    }
    assert data_table(page, "bars-rq") == [
        ["RQ secure rating", "5.00"],
        ["RQ fearful rating", "3.00"],
        ["RQ preoccupied rating", "6.00"],
        ["RQ dismissing rating", "2.00"],
    ]
    # Model of self and other on their -12..12 range: one time, centred at x = 296;
    # y = 16 + (12 - v) / 24 * 240: self -2 -> 156, other 6 -> 76.
    [dimensions] = [
        s for k, s in charts.items() if k.startswith("lines-rq") and "RQ model of self" in series(s)
    ]
    points = {
        g.get("data-label"): [
            (c.get("data-value"), float(c.get("cx", "")), float(c.get("cy", "")))
            for c in g.findall(f"{SVG}circle")
        ]
        for g in dimensions.iter(f"{SVG}g")
        if (g.get("class") or "").startswith("series ")
    }
    assert points == {
        "RQ model of self": [("-2.00", 296.0, 156.0)],
        "RQ model of other": [("6.00", 296.0, 76.0)],
    }
    assert data_table(page, dimensions.get("id", "")) == [["1", reviewed.day, "-2.00", "6.00"]]


@pytest.mark.parametrize("instrument", ["ecr-rs", "rq"])
def test_the_printable_view_renders_for_each(reviewed: Reviewed, instrument: str) -> None:
    qr_id = reviewed.rq if instrument == "rq" else reviewed.ecr_rs[1]
    page = reviewed.page(f"responses/{qr_id}/print")
    assert 'class="review-nav"' not in page and 'class="app-header"' not in page
    assert 'id="patient-name">' in page
    if instrument == "rq":
        assert INDIVIDUAL in page
        assert len(svgs(page, "bars")) == 1 and 'data-code="rq-model-of-self">-2.00<' in page
    else:
        assert len(tracks(svgs(page, "plane")[0])) == 2
        assert "Skipped relationships: father, best friend." in page


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 320])
def test_the_ecr_rs_review_passes_axe_at_desktop_and_320_px(
    reviewed: Reviewed, chromium: Chromium, width: int
) -> None:
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    server = reviewed.env.server.url
    sid = reviewed.clinician.browser.cookies[httpx.URL(server).netloc.decode()][COOKIE_NAME]
    context = chromium.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
    try:
        context.add_cookies([{"name": COOKIE_NAME, "value": sid, "url": server}])
        page = context.new_page()
        url = f"{server}/app/{reviewed.clinician.ctx}/review/responses/{reviewed.ecr_rs[1]}"
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert page.locator("svg#plane-ecr-rs g.track").count() == 2
        assert axe_violations(page) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()
