"""The review pages against the real sandbox EHR: three ECR-R submissions written with the
write-back builders through the FHIR client, then read back by the app after a real launch.

The sandbox is this module's own (the Questionnaire copy with a hostile title must not leak into
other tests). Expected values are computed by hand from the answers and the published key
(ECR-R: anxiety = mean of items 1-18, avoidance = mean of 19-36, reversed items 8 - x).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from attach_fhir.instruments import library
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.scoring import Scorer
from attach_fhir.writeback import WritebackContext, build_transaction
from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import ehr_copy, ehr_writer
from tests.fixtures.smart_app_server import (
    PRACTITIONER,
    AppServer,
    Browser,
    ehr_launch,
    launch_base,
    registered_app,
)

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
OTHER = "sandbox-parent-41"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
HOSTILE_TITLE = "<script>alert('title')</script> ECR-R <img src=x onerror=alert(1)>"
ANXIETY_REVERSED = {9, 11}
AVOIDANCE_REVERSED = {20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}
SVG = "{http://www.w3.org/2000/svg}"


def answers(anxiety: Callable[[int], int], avoidance: Callable[[int], int]) -> dict[str, int]:
    """Raw answers: ``anxiety(n)`` for items 1-18, ``avoidance(n)`` for items 19-36."""
    return {str(n): anxiety(n) if n <= 18 else avoidance(n) for n in range(1, 37)}


def keyed(target: int, reversed_items: set[int]) -> Callable[[int], int]:
    """Answer so that every item scores ``target`` after reverse keying (8 - x)."""
    return lambda n: 8 - target if n in reversed_items else target


# Submission 1: anxiety 6, avoidance 2. Submission 2: every answer 4 -> 4 and 4.
# Submission 3: anxiety items 1-11 score 2 and 12-18 score 3 -> (11*2 + 7*3)/18 = 43/18;
# avoidance items score 2 except item 19 answered 5 -> (5 + 17*2)/18 = 39/18.
SUBMISSIONS = [
    ("2024-01-10T09:00:00Z", answers(keyed(6, ANXIETY_REVERSED), keyed(2, AVOIDANCE_REVERSED))),
    ("2024-03-10T09:00:00Z", answers(lambda n: 4, lambda n: 4)),
    (
        "2024-05-10T09:00:00Z",
        answers(
            lambda n: (6 if n in ANXIETY_REVERSED else 2) if n <= 11 else 3,
            lambda n: 5 if n == 19 else keyed(2, AVOIDANCE_REVERSED)(n),
        ),
    ),
]
EXPECTED = [(6.0, 2.0), (4.0, 4.0), (43 / 18, 39 / 18)]  # (anxiety, avoidance)


def response(values: dict[str, int]) -> dict[str, Any]:
    """A completed ECR-R response with these scale points."""
    items = [
        {
            "linkId": link_id,
            "answer": [
                {
                    "valueCoding": {
                        "system": "http://attach-fhir.org/fhir/CodeSystem/agreement-7",
                        "code": str(value),
                    }
                }
            ],
        }
        for link_id, value in values.items()
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{ECR_R}|1.0.0",
        "status": "completed",
        "item": items,
    }


@dataclass
class ReviewEnv:
    """The module's sandbox, app, a writer client and the ids it wrote."""

    sandbox: Sandbox
    server: AppServer
    writer: FhirClient
    qr_ids: list[str]
    other_qr: str


def submit(writer: FhirClient, patient: str, authored: str, values: dict[str, int], n: int) -> str:
    """Score and write one submission as one transaction; the QuestionnaireResponse id."""
    questionnaire = library().questionnaire(f"{ECR_R}|1.0.0")
    qr = response(values)
    result = Scorer(questionnaire).score(qr)
    ctx = WritebackContext(
        submission_id=f"review-e2e-{patient}-{n}",
        patient=f"Patient/{patient}",
        author=PRACTITIONER,
        authored=authored,
    )
    reply = writer.transaction(build_transaction(qr, questionnaire, result, ctx))
    location = reply["entry"][0]["response"]["location"]
    assert location.startswith("QuestionnaireResponse/"), location
    return str(location.split("/")[1])


@pytest.fixture(scope="module")
def env(
    sandbox_factory: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReviewEnv]:
    sandbox = sandbox_factory(with_app=False)
    server = registered_app(sandbox, "symmetric", tmp_path_factory.mktemp("review-app"))
    http = httpx.Client(timeout=30)
    try:
        writer = ehr_writer(sandbox, http, PRACTITIONER)
        # The EHR's copy of the ECR-R (same url and version), under a hostile title.
        writer.create(ehr_copy(f"{ECR_R}|1.0.0", title=HOSTILE_TITLE))
        qr_ids = [
            submit(writer, ADULT, when, values, i) for i, (when, values) in enumerate(SUBMISSIONS)
        ]
        other = submit(writer, OTHER, "2024-02-01T09:00:00Z", SUBMISSIONS[1][1], 9)
        yield ReviewEnv(sandbox, server, writer, qr_ids, other)
    finally:
        http.close()
        server.thread.stop()
        server.transport.shutdown()


@pytest.fixture
def launched(env: ReviewEnv) -> Iterator[tuple[Browser, str]]:
    """A browser after an EHR launch for the adult; the launch's ``/app/<ctx>`` URL."""
    browser = Browser()
    yield browser, launch_base(env.server, ehr_launch(browser, env.sandbox, env.server, ADULT))
    browser.close()


def svgs(page: str, kind: str) -> list[ET.Element]:
    """Every inline chart of ``kind`` (plane, lines, bars), parsed as XML."""
    found = re.findall(rf'<svg [^>]*class="chart chart-{kind}".*?</svg>', page, re.S)
    return [ET.fromstring(svg) for svg in found]


def test_scores_page_shows_three_points_and_the_values_of_the_response(
    env: ReviewEnv, launched: tuple[Browser, str]
) -> None:
    browser, base = launched
    page = browser.request("GET", f"{base}/review/responses/{env.qr_ids[2]}")
    assert page.status_code == 200, page.text
    html = page.text

    # The values of this response, as the EHR's Observations hold them.
    assert 'data-code="ecr-r-anxiety">2.39<' in html  # 43/18 = 2.3889
    assert 'data-code="ecr-r-avoidance">2.17<' in html  # 39/18 = 2.1667
    [plane] = svgs(html, "plane")
    points = plane.findall(f".//{SVG}circle")
    assert [
        (float(c.get("data-anxiety", "")), float(c.get("data-avoidance", ""))) for c in points
    ] == [(round(ax, 2), round(av, 2)) for ax, av in EXPECTED]
    # x = 56 + (avoidance - 1) * 50, y = 16 + (7 - anxiety) * 50 (the plane's 1-7 scale).
    xy = [(float(c.get("cx", "")), float(c.get("cy", ""))) for c in points]
    assert xy == [(106.0, 66.0), (206.0, 166.0), (114.33, 246.56)]
    # Change since the first submission: anxiety 43/18 - 6 = -3.61, avoidance 39/18 - 2 = +0.17.
    assert "-3.61 since 2024-01-10" in html
    assert "+0.17 since 2024-01-10" in html
    assert "No reliable-change figure" in html
    assert "ecr-r-subscale-means version 1.0.0" in html
    assert "Fraley, R. C., Waller, N. G., &amp; Brennan, K. A. (2000)" in html


def test_the_questionnaire_title_from_the_ehr_stays_inert(
    env: ReviewEnv, launched: tuple[Browser, str]
) -> None:
    browser, base = launched
    page = browser.request("GET", f"{base}/review/responses/{env.qr_ids[0]}")
    assert page.status_code == 200, page.text
    assert "<script" not in page.text.lower()
    assert "<img" not in page.text.lower()
    assert (
        'id="questionnaire-title">&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt; ECR-R '
        "&lt;img src=x onerror=alert(1)&gt;<" in page.text
    )
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    # An older response is shown against its own past only: one point.
    [plane] = svgs(page.text, "plane")
    assert len(plane.findall(f".//{SVG}circle")) == 1


def test_history_page_has_every_submission_and_a_line_per_score(
    env: ReviewEnv, launched: tuple[Browser, str]
) -> None:
    browser, base = launched
    page = browser.request("GET", f"{base}/review/")
    assert page.status_code == 200, page.text
    [lines] = svgs(page.text, "lines")
    series = lines.findall(f".//{SVG}g[@class]")
    values = {
        g.get("data-label"): [float(c.get("data-value", "")) for c in g.findall(f"{SVG}circle")]
        for g in series
        if (g.get("class") or "").startswith("series ")
    }
    assert values == {
        "ECR-R attachment anxiety": [6.0, 4.0, 2.39],
        "ECR-R attachment avoidance": [2.0, 4.0, 2.17],
    }
    for qr_id in env.qr_ids:
        assert f"/review/responses/{qr_id}" in page.text
    assert env.other_qr not in page.text


def test_printable_view_has_no_navigation_and_names_the_patient(
    env: ReviewEnv, launched: tuple[Browser, str]
) -> None:
    browser, base = launched
    page = browser.request("GET", f"{base}/review/responses/{env.qr_ids[2]}/print")
    assert page.status_code == 200, page.text
    assert 'class="review-nav"' not in page.text
    assert 'class="app-header"' not in page.text
    assert 'id="patient-name">' in page.text
    assert "@media print" in browser.request("GET", f"{env.server.url}/static/review.css").text


def test_another_patients_response_is_not_shown(
    env: ReviewEnv, launched: tuple[Browser, str]
) -> None:
    browser, base = launched
    page = browser.request("GET", f"{base}/review/responses/{env.other_qr}")
    # The sandbox refuses to read outside the patient compartment (403).
    assert page.status_code == 403
    assert "ecr-r-anxiety" not in page.text
