"""Portable scores in CSIRO Smart Forms, a second renderer we did not write, with no terminology
server at all: the ECR's scores and its four-category classification come out as the Python
scorer computes them.

Smart Forms 1.4.0 (``tests/e2e/smart_forms``: the renderer built for the browser with vite by
scripts/bootstrap, served from a loopback server in the test) runs in headless Chromium. Each
answer pattern is a QuestionnaireResponse given to ``buildForm``; ``getResponse`` reads back
what the renderer computed. The terminology server URL points at a loopback port where nothing
listens, so no display or code can come from terminology.

The ECR category expression picks its Coding from the item's own answerOptions through SDC's
``%questionnaire``. Smart Forms 1.4.0 does not set that variable itself; a host gives it through
``buildForm``'s ``additionalContext``. With it, every category is right. Without it, Smart Forms
evaluates nothing for the category: the item stays empty, never a wrong pattern (the failure
the display fix of issue 15 removed was "secure" for everyone).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, send_from_directory
from playwright.sync_api import Browser, Page

from attach_fhir.scoring import Scorer
from ehr_sandbox.runner import ServerThread
from tests.e2e.portable_scores import answers_held, differences, load, patterns

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HERE = Path(__file__).resolve().parent / "smart_forms"
RENDERER = HERE / "node_modules" / "@aehrc" / "smart-forms-renderer"
BUILT = HERE / "dist"
CATEGORY = "scores.ecr-category"
RENDER = """async ([questionnaire, response, terminology, sdcQuestionnaire]) =>
  window.renderForm(questionnaire, response, terminology, sdcQuestionnaire)"""
# The renderer evaluates every variable in one pass, after the form is built: once the anxiety
# score is in the response, the category has been evaluated too (or failed to).
COMPUTED = """() => { const walk = (items) => (items || []).some(
  (i) => (i.linkId === 'scores.ecr-anxiety' && (i.answer || []).length > 0) || walk(i.item));
  return walk(window.smartFormsResponse().item); }"""
Json = dict[str, Any]


def smart_forms_app() -> Flask:
    """The built test page and its assets, nothing else."""
    app = Flask(__name__)

    @app.get("/")
    def index() -> Response:
        return send_from_directory(BUILT, "index.html")

    @app.get("/<path:name>")
    def asset(name: str) -> Response:
        return send_from_directory(BUILT, name)

    return app


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def smart_forms_url() -> Iterator[str]:
    manifest = RENDERER / "package.json"
    assert manifest.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/smart_forms)"
    pinned = json.loads((HERE / "package.json").read_text(encoding="utf-8"))["dependencies"]
    installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    assert installed == pinned["@aehrc/smart-forms-renderer"]
    assert (BUILT / "index.html").is_file(), "run scripts/bootstrap (vite build of the page)"
    server = ServerThread(0)
    server.start(smart_forms_app())
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    yield context.new_page()
    context.close()


def render(page: Page, url: str, questionnaire: Json, response: Json, sdc: bool) -> Json:
    """Smart Forms' response after it computed the calculated items for ``response``."""
    nobody = f"http://127.0.0.1:{unused_port()}/fhir"
    page.goto(url)
    page.wait_for_function("() => window.smartFormsReady === true")
    page.evaluate(RENDER, [questionnaire, response, nobody, sdc])
    page.wait_for_function(COMPUTED, timeout=60_000)
    held: Json = page.evaluate("() => window.smartFormsResponse()")
    return held


def test_with_sdc_context_smart_forms_computes_every_ecr_score_and_category(
    page: Page, smart_forms_url: str
) -> None:
    questionnaire = load("ecr")
    found: dict[str, list[str]] = {}
    categories = set()
    for name, response in patterns("ecr", questionnaire):
        held = render(page, smart_forms_url, questionnaire, response, sdc=True)
        found[name] = differences(questionnaire, response, answers_held(held), "Smart Forms")
        category = Scorer(questionnaire).score(response).scores["ecr-category"].category
        if category is not None:
            categories.add(category["code"])
    assert {name: d for name, d in found.items() if d} == {}
    assert categories == {"secure", "fearful", "preoccupied", "dismissing"}


def test_without_sdc_context_the_category_stays_empty_never_wrong(
    page: Page, smart_forms_url: str
) -> None:
    questionnaire = load("ecr")
    wrong = {}
    for name, response in patterns("ecr", questionnaire):
        held = answers_held(render(page, smart_forms_url, questionnaire, response, sdc=False))
        numbers = differences(questionnaire, response, held, "Smart Forms")
        category = Scorer(questionnaire).score(response).scores["ecr-category"].category
        given = held.get(CATEGORY, {}).get("valueCoding")
        if given is not None and (category is None or given["code"] != category["code"]):
            wrong[name] = given
        # The two dimension scores need no %questionnaire: they must be right either way.
        assert [d for d in numbers if not d.startswith(CATEGORY)] == [], name
    assert wrong == {}
