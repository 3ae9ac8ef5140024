"""The fill form in headless Chromium: keyboard only, axe-core, 320 px, enableWhen with and
without JS, Questionnaire text that stays inert, and a repeating group's add button.

A test-only blueprint on the real app (``create_app``: CSP, CSRF, cookies) renders the form for a
Questionnaire and echoes the parsed QuestionnaireResponse as JSON when a submit is valid; other
actions (update, a repeating group's add or remove) come back as ``assess.fill`` does them. The
repeating-group form also auto-saves (``static/autosave.js``) to a test endpoint that keeps what
it was sent.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, render_template, request, url_for
from playwright.sync_api import Browser, BrowserContext, Page
from werkzeug.serving import make_server

from smart_app import create_app
from smart_app.forms.form_instances import form_after_action
from smart_app.forms.form_response import parse_form
from smart_app.forms.questionnaire_form import build_form

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ATTACK = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
XHTML = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"


def load(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "questionnaires" / f"{name}.json").read_text(encoding="utf-8"))


def hostile() -> dict[str, Any]:
    """The ECR-R's first items with script in text, prefix, option display and rendering-xhtml."""
    q = copy.deepcopy(load("ecr-r"))
    q["item"] = q["item"][:3]
    q["title"] = ATTACK
    q["item"][0]["text"] = ATTACK
    q["item"][0]["prefix"] = '<a href="javascript:window.pwned=3">1.</a>'
    q["item"][1]["answerOption"][0]["valueCoding"]["display"] = ATTACK
    q["item"][2]["_text"] = {
        "extension": [
            {
                "url": XHTML,
                "valueString": "<b>Bold</b><script>window.pwned=4</script>"
                '<img src=x onerror="window.pwned=5"><a href="javascript:window.pwned=6">go</a>',
            }
        ]
    }
    return q


QUESTIONNAIRES = {
    "ecr-r": load("ecr-r"),
    "ecr-rs": load("ecr-rs"),
    "hostile": hostile(),
    # none of the packaged instruments repeats a group: a test fixture in neutral wording
    "pets": json.loads(
        (ROOT / "tests" / "fixtures" / "data" / "repeating-group.questionnaire.json").read_text(
            encoding="utf-8"
        )
    ),
}
AUTOSAVED: list[dict[str, Any]] = []
REGISTRATIONS = {
    "registrations": [
        {
            "name": "form-browser-tests",
            "iss": ["http://127.0.0.1:9/fhir"],
            "client_id": "form-browser-tests",
            "client_type": "public",
            "allow_addresses": ["loopback"],
        }
    ]
}

bp = Blueprint("form_test", __name__)


@bp.route("/form/<name>", methods=["GET", "POST"])
def form_page(name: str) -> Any:
    questionnaire = QUESTIONNAIRES[name]
    autosave = url_for("form_test.autosave", name=name) if name == "pets" else None
    if request.method == "GET":
        form = build_form(questionnaire)
        return render_template("assess/form.html", form=form, autosave_url=autosave)
    action = request.form.get("action")
    parsed = parse_form(
        questionnaire, request.form, status="completed" if action == "submit" else "in-progress"
    )
    if action == "submit":
        if parsed.ok:
            return jsonify(parsed.response)
        return render_template("assess/form.html", form=parsed.form, autosave_url=autosave)
    form = form_after_action(questionnaire, parsed.values, action or "update")
    return render_template("assess/form.html", form=form, autosave_url=autosave)


@bp.post("/autosave/<name>")
def autosave(name: str) -> Any:
    AUTOSAVED.append(parse_form(QUESTIONNAIRES[name], request.form, status="in-progress").response)
    return jsonify({"ok": True})


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app: Flask = create_app(
        {
            "TESTING": True,
            "REGISTRATIONS_DATA": REGISTRATIONS,
            "DATA_DIR": str(tmp_path_factory.mktemp("form-browser")),
        }
    )
    app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context()
    yield ctx
    ctx.close()


def ecr_r_answers() -> dict[str, str]:
    # every scale point used: item n -> ((3n) mod 7) + 1
    return {str(n): str((3 * n) % 7 + 1) for n in range(1, 37)}


def active_name(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.name || ''"))


def test_ecr_r_by_keyboard_only(context: BrowserContext, base_url: str) -> None:
    page = context.new_page()
    page.goto(f"{base_url}/form/ecr-r")
    for _ in range(10):
        page.keyboard.press("Tab")
        if active_name(page) == "q:1":
            break
    answers = ecr_r_answers()
    for n in range(1, 37):
        assert active_name(page) == f"q:{n}"
        page.keyboard.press("Space")  # checks the first point
        for _ in range(int(answers[str(n)]) - 1):
            page.keyboard.press("ArrowRight")  # moves to, and checks, the next point
        if n == 1:
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline == "solid"  # visible keyboard focus
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "submit"
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.keyboard.press("Enter")
    response = posted.value.json()
    assert response["status"] == "completed"
    got = {i["linkId"]: [a["valueCoding"]["code"] for a in i["answer"]] for i in response["item"]}
    assert got == {k: [v] for k, v in answers.items()}


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    return list(
        page.evaluate(
            """async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))
                .violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))""",
            WCAG_TAGS,
        )
    )


@pytest.fixture
def axe_context(chromium: Browser) -> Iterator[BrowserContext]:
    # axe is injected as an inline script, which the app's CSP (rightly) refuses.
    ctx = chromium.new_context(bypass_csp=True)
    yield ctx
    ctx.close()


def test_axe_finds_no_wcag_violations(axe_context: BrowserContext, base_url: str) -> None:
    assert AXE.is_file(), "run scripts/bootstrap (npm ci in tests/e2e/axe)"
    page = axe_context.new_page()
    page.goto(f"{base_url}/form/ecr-r")
    assert axe_violations(page) == []
    # submit nothing: the page comes back with an error summary and 36 field errors
    page.locator("button[value=submit]").press("Enter")
    page.wait_for_selector(".err-summary")
    assert page.locator(".err-summary a").count() == 36
    assert page.evaluate("document.activeElement.className") == "err-summary"  # autofocus
    page.locator(".err-summary a").nth(4).press("Enter")
    assert page.evaluate("document.activeElement.id") == "q-5-0"  # the link lands on item 5
    assert axe_violations(page) == []


def test_320_px_wide_likert_rows_become_lists(axe_context: BrowserContext, base_url: str) -> None:
    page = axe_context.new_page()
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{base_url}/form/ecr-r")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320  # no sideways scroll
    tops = (
        page.locator("fieldset")
        .first.locator("label")
        .evaluate_all("labels => labels.map(l => l.getBoundingClientRect().top)")
    )
    assert tops == sorted(tops) and len(set(tops)) == 7  # one point per line
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 1024, "height": 768})
    tops = (
        page.locator("fieldset")
        .first.locator("label")
        .evaluate_all("labels => labels.map(l => l.getBoundingClientRect().top)")
    )
    assert len(set(tops)) == 1  # a single Likert row when there is room


def test_enable_when_with_and_without_script(chromium: Browser, base_url: str) -> None:
    with_js = chromium.new_context()
    page = with_js.new_page()
    page.goto(f"{base_url}/form/ecr-rs")
    item = page.locator("input[name='q:mother.1']").first
    assert not item.is_visible()
    assert page.locator("button[value=update]").is_hidden()  # the script hides the no-JS button
    page.locator("input[name='q:mother.applies'][value=true]").check()
    assert item.is_visible()
    page.locator("input[name='q:mother.applies'][value=false]").check()
    assert not item.is_visible()
    with_js.close()

    no_js = chromium.new_context(java_script_enabled=False)
    page = no_js.new_page()
    page.goto(f"{base_url}/form/ecr-rs")
    item = page.locator("input[name='q:mother.1']").first
    page.locator("input[name='q:mother.applies'][value=true]").check()
    assert not item.is_visible()  # nothing changes without a round trip...
    page.locator("button[value=update]").press("Enter")
    page.wait_for_load_state()
    item = page.locator("input[name='q:mother.1']").first
    assert item.is_visible()  # ...which the update button makes
    assert page.locator("input[name='q:mother.applies'][value=true]").is_checked()
    no_js.close()


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_script_in_questionnaire_text_stays_inert(
    chromium: Browser, base_url: str, bypass_csp: bool
) -> None:
    ctx = chromium.new_context(bypass_csp=bypass_csp)
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{base_url}/form/hostile")
    page.locator("label").first.hover()
    page.locator("input[name='q:2']").first.check()
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert dialogs == []
    assert page.locator("main img, main a[href^='javascript']").count() == 0
    assert page.locator("legend").first.inner_text().startswith('<a href="javascript:')
    assert page.locator("h1").inner_text() == ATTACK
    assert page.locator("legend b").inner_text() == "Bold"  # the allow-list keeps <b>
    ctx.close()


def tab_to(page: Page, test: str, most: int = 30) -> None:
    """Press Tab until ``test`` (a JS expression on ``el``, the focused element) holds."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => !!el && ({test}))(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {test}")


def test_a_repeating_group_instance_added_by_keyboard_only(
    axe_context: BrowserContext, base_url: str
) -> None:
    AUTOSAVED.clear()
    page = axe_context.new_page()
    page.goto(f"{base_url}/form/pets")
    tab_to(page, "el.name === 'q.1:pet.name'")
    page.keyboard.type("Rex")
    page.keyboard.press("Tab")
    assert active_name(page) == "q.1:pet.kind"
    page.keyboard.press("Space")  # Cat
    page.keyboard.press("ArrowRight")  # Dog: the walking route applies (enable-when.js)
    page.keyboard.press("Tab")
    assert active_name(page) == "q.1:pet.walks"
    page.keyboard.type("Park")
    tab_to(page, "el.value === 'add:pet'")
    assert page.evaluate("document.activeElement.textContent") == "Add another Pet"
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # the page again: the new instance focused, every answer kept, no error shown
    assert page.evaluate("document.activeElement.id") == "q_2-pet"
    legends = page.locator("fieldset.instance > legend").all_inner_texts()
    assert legends == ["Pet 1", "Pet 2"]
    assert page.locator("input[name='q.1:pet.name']").input_value() == "Rex"
    assert page.locator("input[name='q.1:pet.kind'][value=dog]").is_checked()
    assert page.locator("input[name='q.1:pet.walks']").input_value() == "Park"
    assert page.locator("input[name='q.2:pet.walks']").is_hidden()  # no kind yet
    assert page.locator(".err-summary").count() == 0
    remove = page.get_by_role("button", name="Remove Pet 2")
    assert remove.get_attribute("value") == "remove.2:pet"
    page.keyboard.press("Tab")
    assert active_name(page) == "q.2:pet.name"
    page.keyboard.type("Tom")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # in a text field: the hidden "update", not Remove
    assert page.locator("fieldset.instance > legend").all_inner_texts() == ["Pet 1", "Pet 2"]
    assert page.locator("input[name='q.2:pet.name']").input_value() == "Tom"
    assert page.locator(".err-summary").count() == 0
    assert axe_violations(page) == []

    # the draft saved when the page is left carries both instances (autosave.js, new names)
    tab_to(page, "el.name === 'q:household'")
    page.keyboard.type("Ada")
    page.goto("about:blank")
    deadline = time.monotonic() + 10
    while not AUTOSAVED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(AUTOSAVED) == 1
    items = AUTOSAVED[0]["item"]
    assert [i["linkId"] for i in items] == ["household", "pet", "pet"]
    answers = [{c["linkId"]: c["answer"] for c in pet["item"]} for pet in items[1:]]
    kind = {"system": "http://example.org/pet-kind", "code": "dog", "display": "Dog"}
    assert answers == [
        {
            "pet.name": [{"valueString": "Rex"}],
            "pet.kind": [{"valueCoding": kind}],
            "pet.walks": [{"valueString": "Park"}],
        },
        {"pet.name": [{"valueString": "Tom"}]},
    ]
