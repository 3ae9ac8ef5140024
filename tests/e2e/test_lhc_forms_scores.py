"""Portable scores: NLM LHC-Forms, a renderer we did not write, computes every calculated item of
every packaged Questionnaire, the ECR category included, as the Python scorer does.

LHC-Forms 40.1.3 (``tests/e2e/lhc_forms``, installed by scripts/bootstrap, served from a loopback
server in the test: no CDN) runs in headless Chromium. Each answer pattern is a
QuestionnaireResponse merged into the form with LHC-Forms' own
``LForms.Util.mergeFHIRDataIntoLForms``; the calculated items are read back with
``LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', ...)`` and compared with
``Scorer`` on the same response. Patterns: every item at its lowest option, every item at its
highest, two seeded random ones, and for the ECR the hand-computed examples, one per category.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, Response, send_from_directory
from playwright.sync_api import Browser, Page

from attach_fhir.scoring import Scorer
from ehr_sandbox.runner import ServerThread
from tests.e2e.portable_scores import SCORED, answers_held, differences, load, patterns

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HERE = Path(__file__).resolve().parent / "lhc_forms"
LFORMS = HERE / "node_modules" / "lforms"


# Merge the answers, then render. A merged form counts as saved data, which LHC-Forms does not
# recalculate on load (it keeps what was saved); these answers are a new respondent's, so the
# flag is cleared and LHC-Forms computes every calculatedExpression from them.
RENDER = """async ([questionnaire, response]) => {
  const form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, 'R4');
  const merged = LForms.Util.mergeFHIRDataIntoLForms('QuestionnaireResponse', response, form, 'R4');
  merged.hasSavedData = false;
  await LForms.Util.addFormToPage(merged, 'form', {fhirVersion: 'R4'});
}"""
READ = "() => LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', '#form')"


def lhc_app() -> Flask:
    """The test page and LHC-Forms' built files, nothing else."""
    app = Flask(__name__)
    root = LFORMS / "dist" / "lforms"

    @app.get("/")
    def index() -> Response:
        return send_from_directory(HERE, "index.html")

    @app.get("/lforms/<path:name>")
    def lforms(name: str) -> Response:
        return send_from_directory(root, name)

    return app


@pytest.fixture(scope="module")
def lhc_url() -> Iterator[str]:
    """LHC-Forms' page on a loopback port."""
    manifest = LFORMS / "package.json"
    assert manifest.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/lhc_forms)"
    pinned = json.loads((HERE / "package.json").read_text(encoding="utf-8"))["dependencies"]
    assert json.loads(manifest.read_text(encoding="utf-8"))["version"] == pinned["lforms"]
    server = ServerThread(0)  # the sandbox's loopback werkzeug thread, quiet
    server.start(lhc_app())
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()


@pytest.fixture
def page(chromium: Browser, lhc_url: str) -> Iterator[Page]:
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(lhc_url)
    page.wait_for_function("() => window.LForms && window.LForms.Util")
    yield page
    context.close()
    assert errors == []


@pytest.mark.parametrize("qid", SCORED)
def test_lhc_forms_computes_every_score_as_the_python_scorer(
    page: Page, lhc_url: str, qid: str
) -> None:
    questionnaire = load(qid)
    cases = patterns(qid, questionnaire)
    found: dict[str, list[str]] = {}
    categories = set()
    for name, response in cases:
        page.goto(lhc_url)
        page.wait_for_function("() => window.LForms && window.LForms.Util")
        page.evaluate(RENDER, [questionnaire, response])
        filled = page.evaluate(READ)
        found[name] = differences(questionnaire, response, answers_held(filled), "LHC-Forms")
        result = Scorer(questionnaire).score(response).scores
        categories |= {s.category["code"] for s in result.values() if s.category is not None}
    assert {name: d for name, d in found.items() if d} == {}
    if qid == "ecr":
        # One pattern per category, so each of the four is filled in by LHC-Forms.
        assert categories == {"secure", "fearful", "preoccupied", "dismissing"}


def test_every_scored_instrument_is_run() -> None:
    assert set(SCORED) >= {"ecr-r", "ecr-rs", "ecr", "rq", "prfq"}
