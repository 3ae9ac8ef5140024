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
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, send_from_directory
from playwright.sync_api import Browser, Page

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.expressions import calculated_items
from attach_fhir.scoring import Scorer
from ehr_sandbox.runner import ServerThread
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import build_response, from_answers, random_chooser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "lhc_forms"
LFORMS = HERE / "node_modules" / "lforms"
QUESTIONNAIRES = ROOT / "questionnaires"
Json = dict[str, Any]


def _scored() -> list[str]:
    """Ids of the packaged Questionnaires that carry calculatedExpressions."""
    out = []
    for path in sorted(QUESTIONNAIRES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource["resourceType"] == "Questionnaire" and any(calculated_items(resource)):
            out.append(resource["id"])
    return out


SCORED = _scored()

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


def load(qid: str) -> Json:
    data: Json = json.loads((QUESTIONNAIRES / f"{qid}.json").read_text(encoding="utf-8"))
    return data


def at(index: int) -> Callable[[Json], object]:
    """Every gate true and every choice item at option ``index`` (0 lowest, -1 highest)."""

    def choose(item: Json) -> object:
        if item["type"] == "boolean":
            return True
        if item["type"] == "choice":
            return item["answerOption"][index]["valueCoding"]["code"]
        return None

    return choose


def patterns(qid: str, questionnaire: Json) -> list[tuple[str, Json]]:
    """(name, response) pairs to answer ``questionnaire`` with."""
    out = [
        ("lowest", build_response(questionnaire, at(0))),
        ("highest", build_response(questionnaire, at(-1))),
    ]
    for seed in (9, 15):
        out.append(
            (f"random {seed}", build_response(questionnaire, random_chooser(random.Random(seed))))
        )
    for example in EXAMPLES:
        if example.instrument == qid:
            out.append((example.name, from_answers(questionnaire, example.answers)))
    return out


def lhc_values(response: Json) -> dict[str, Json]:
    """linkId -> the single answer LHC-Forms holds for it, at any depth."""
    out: dict[str, Json] = {}
    stack = list(response.get("item", []))
    while stack:
        item = stack.pop()
        answers = item.get("answer", [])
        assert len(answers) <= 1, item
        if answers:
            out[item["linkId"]] = answers[0]
        stack.extend(item.get("item", []))
        stack.extend(child for a in answers for child in a.get("item", []))
    return out


def score_code(item: Json) -> str:
    return next(c["code"] for c in item["code"] if c["system"] == SCORES_SYSTEM)


def differences(questionnaire: Json, response: Json, lhc: dict[str, Json]) -> list[str]:
    """Each calculated item whose LHC-Forms value is not the Python scorer's."""
    scores = Scorer(questionnaire).score(response).scores
    out = []
    for item, _ in calculated_items(questionnaire):
        link_id, score = item["linkId"], scores[score_code(item)]
        got = lhc.get(link_id)
        if score.category is not None:
            if got is None or got.get("valueCoding", {}).get("code") != score.category["code"]:
                out.append(f"{link_id}: LHC-Forms {got}, Python {dict(score.category)}")
            elif {k: got["valueCoding"].get(k) for k in ("system", "display")} != {
                k: score.category.get(k) for k in ("system", "display")
            }:
                out.append(f"{link_id}: LHC-Forms {got['valueCoding']}, Python {score.category}")
        elif score.value is None:
            if got is not None:
                out.append(f"{link_id}: LHC-Forms {got}, Python {score.status}")
        else:
            number = None if got is None else got.get("valueDecimal", got.get("valueInteger"))
            if number is None or abs(float(number) - float(score.value)) > 1e-9:
                out.append(f"{link_id}: LHC-Forms {got}, Python {score.value}")
    return out


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
        found[name] = differences(questionnaire, response, lhc_values(filled))
        result = Scorer(questionnaire).score(response).scores
        categories |= {s.category["code"] for s in result.values() if s.category is not None}
    assert {name: d for name, d in found.items() if d} == {}
    if qid == "ecr":
        # One pattern per category, so each of the four is filled in by LHC-Forms.
        assert categories == {"secure", "fearful", "preoccupied", "dismissing"}


def test_every_scored_instrument_is_run() -> None:
    assert set(SCORED) >= {"ecr-r", "ecr-rs", "ecr", "rq", "prfq"}
