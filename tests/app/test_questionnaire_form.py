"""The form view model and its HTML, checked by parsing the rendered page (no snapshots)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from jinja2 import meta

from smart_app import create_app
from smart_app.forms.questionnaire_form import build_form, html_id

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = sorted(
    p
    for p in (ROOT / "questionnaires").glob("*.json")
    if json.loads(p.read_text(encoding="utf-8")).get("resourceType") == "Questionnaire"
)
XHTML = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"
CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
VOID = {"input", "br", "meta", "link", "img", "hr"}


def control(code: str) -> list[dict[str, Any]]:
    return [{"url": CONTROL, "valueCodeableConcept": {"coding": [{"code": code}]}}]


def scale(*codes: str) -> list[dict[str, Any]]:
    return [
        {"extension": [{"url": ORDINAL, "valueDecimal": int(c)}], "valueCoding": {"code": c}}
        for c in codes
    ]


# Every supported item type, two same-option siblings (a Likert row), item controls, a gate,
# an unsupported type and an answer list the form cannot resolve. Neutral, non-clinical wording.
SYNTHETIC: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "http://example.org/Questionnaire/synthetic",
    "version": "0.1",
    "title": "Every item type",
    "status": "draft",
    "item": [
        {"linkId": "intro", "type": "display", "text": "Please answer."},
        {
            "linkId": "g",
            "type": "group",
            "text": "About you",
            "item": [
                {"linkId": "g.name", "type": "string", "text": "Name", "maxLength": 20},
                {"linkId": "g.age", "type": "integer", "text": "Age", "required": True},
                {"linkId": "g.height", "type": "decimal", "text": "Height in metres"},
                {"linkId": "g.born", "type": "date", "text": "Date of birth"},
                {"linkId": "g.notes", "type": "text", "text": "Notes"},
                {"linkId": "g.nick", "type": "string", "text": "Nicknames", "repeats": True},
            ],
        },
        {"linkId": "pets", "type": "boolean", "text": "Do you have pets?"},
        {
            "linkId": "pets.kind",
            "type": "choice",
            "text": "Which pets?",
            "repeats": True,
            "enableWhen": [{"question": "pets", "operator": "=", "answerBoolean": True}],
            "answerOption": [{"valueString": "cat"}, {"valueString": "dog"}],
        },
        {"linkId": "s1", "type": "choice", "text": "Scale one", "answerOption": scale("1", "2")},
        {"linkId": "s2", "type": "choice", "text": "Scale two", "answerOption": scale("1", "2")},
        {
            "linkId": "colour",
            "type": "open-choice",
            "text": "Colour",
            "answerOption": [{"valueCoding": {"code": "r", "display": "Red"}}],
        },
        {
            "linkId": "city",
            "type": "choice",
            "text": "City",
            "extension": control("drop-down"),
            "answerOption": [{"valueString": "Oslo"}, {"valueString": "Lima"}],
        },
        {
            "linkId": "tick",
            "type": "choice",
            "text": "Tick any",
            "extension": control("check-box"),
            "answerOption": [{"valueString": "a"}, {"valueString": "b"}],
        },
        {"linkId": "photo", "type": "attachment", "text": "A photo"},
        {"linkId": "vs", "type": "choice", "text": "Remote list", "answerValueSet": "http://x"},
        {"linkId": "calc", "type": "decimal", "text": "A total", "readOnly": True},
    ],
}


class Node:
    """A parsed element: tag, attributes, children (Nodes and text)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join("".join(parts).split())

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(
                    c.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()
                ):
                    found.append(c)
                found += c.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def up(self, tag: str) -> Node:
        node = self.parent
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, tag
        return node

    def hidden(self) -> bool:
        node: Node | None = self
        while node is not None:
            if "hidden" in node.attrs:
                return True
            node = node.parent
        return False


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.node = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        child = Node(tag, dict(attrs), self.node)
        self.node.children.append(child)
        if tag not in VOID:
            self.node = child

    def handle_endtag(self, tag: str) -> None:
        assert self.node.tag == tag, f"</{tag}> closes <{self.node.tag}>"
        assert self.node.parent is not None
        self.node = self.node.parent

    def handle_data(self, data: str) -> None:
        self.node.children.append(data)


def parse_html(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.node is builder.root, "unclosed element"
    return builder.root


REGISTRATIONS = {
    "registrations": [
        {
            "name": "form-tests",
            "iss": ["http://127.0.0.1:9/fhir"],
            "client_id": "form-tests",
            "client_type": "public",
            "allow_addresses": ["loopback"],
        }
    ]
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    data_dir = tmp_path_factory.mktemp("form-app")
    return create_app(
        {"TESTING": True, "REGISTRATIONS_DATA": REGISTRATIONS, "DATA_DIR": str(data_dir)}
    )


def render(
    app: Flask, questionnaire: dict[str, Any], values: Any = None, errors: Any = None
) -> Node:
    with app.test_request_context():
        html = render_template("assess/form.html", form=build_form(questionnaire, values, errors))
    return parse_html(html)


def raw_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for i in items for x in (i, *raw_items(i.get("item", [])))]


@pytest.mark.parametrize("path", PACKAGED, ids=[p.stem for p in PACKAGED])
def test_every_packaged_questionnaire_renders_each_item(app: Flask, path: Path) -> None:
    questionnaire = json.loads(path.read_text(encoding="utf-8"))
    page = render(app, questionnaire)
    form = page.one("form")
    named = {n.attrs["name"] for n in form.all("input") if n.attrs.get("type") == "radio"}
    expected_names = set()
    for raw in raw_items(questionnaire["item"]):
        name = f"q:{raw['linkId']}"
        if raw.get("readOnly") or raw["type"] in {"group", "display"}:
            assert name not in named
            if raw["type"] == "group" and raw.get("text"):
                assert raw["text"] in [h.text() for h in form.all("h2") + form.all("h3")]
            continue
        if raw["type"] in {"string", "text"}:
            # Free text (the attachment journal's prompts): a labelled text field, no radios.
            field = form.one("textarea" if raw["type"] == "text" else "input", name=name)
            label = form.one("label", **{"for": field.attrs["id"]}).text()
            assert label == raw["text"] + ("" if raw.get("required") else " (optional)")
            assert name not in named
            continue
        assert raw["type"] in {"choice", "boolean"}, raw["type"]
        expected_names.add(name)
        radios = [n for n in form.all("input", name=name)]
        want = (
            ["true", "false"]
            if raw["type"] == "boolean"
            else [o["valueCoding"]["code"] for o in raw["answerOption"]]
        )
        assert [r.attrs["value"] for r in radios] == want
        legend = radios[0].up("fieldset").one("legend").text()
        number = f"{raw['prefix']} " if raw.get("prefix") else ""  # the item's number, "12."
        assert legend == number + raw["text"] + ("" if raw.get("required") else " (optional)")
        container = radios[0].up("fieldset")
        if raw.get("enableWhen"):
            conditions = json.loads(container.attrs["data-when"] or "")
            assert [c["q"] for c in conditions] == [w["question"] for w in raw["enableWhen"]]
            assert container.hidden()  # the gates start unanswered
        else:
            assert not container.hidden()
    assert named == expected_names


def test_ecr_r_is_36_likert_rows_of_seven_with_labelled_endpoints(app: Flask) -> None:
    questionnaire = json.loads((ROOT / "questionnaires" / "ecr-r.json").read_text("utf-8"))
    page = render(app, questionnaire)
    rows = page.all("div", class_="opts likert")
    assert len(rows) == 36
    for row in rows:
        labels = [label.text() for label in row.all("label")]
        assert labels == ["1 Strongly disagree", "2", "3", "4", "5", "6", "7 Strongly agree"]
    assert page.all("input", type="text") == []
    score_labels = [p.text() for p in page.all("p", class_="lbl")]
    assert score_labels == ["ECR-R attachment anxiety", "ECR-R attachment avoidance"]


def test_view_model_kinds_for_every_item_type() -> None:
    form = build_form(SYNTHETIC)
    kinds = {i.link_id: i.kind for i in form.walk()}
    assert kinds == {
        "intro": "display",
        "g": "group",
        "g.name": "string",
        "g.age": "integer",
        "g.height": "decimal",
        "g.born": "date",
        "g.notes": "text",
        "g.nick": "string",
        "pets": "boolean",
        "pets.kind": "checkbox",
        "s1": "likert",
        "s2": "likert",
        "colour": "radio",
        "city": "dropdown",
        "tick": "checkbox",
        "photo": "unsupported",
        "vs": "unsupported",
        "calc": "readonly",
    }
    s1 = next(i for i in form.walk() if i.link_id == "s1")
    assert [(o.key, o.point, o.ordinal) for o in s1.options] == [("1", "1", 1), ("2", "2", 2)]


def test_synthetic_html_has_the_native_control_for_each_type(app: Flask) -> None:
    page = render(app, SYNTHETIC)
    form = page.one("form")
    by_id = {n.attrs.get("id"): n for n in form.all() if n.attrs.get("id")}
    assert by_id[html_id("g.name")].attrs["maxlength"] == "20"
    assert by_id[html_id("g.age")].attrs["inputmode"] == "numeric"
    assert by_id[html_id("g.height")].attrs["inputmode"] == "decimal"
    assert by_id[html_id("g.born")].attrs["type"] == "date"
    assert by_id[html_id("g.notes")].tag == "textarea"
    for input_id in ("g.name", "g.age", "g.height", "g.born", "g.notes"):
        label = form.one("label", for_=html_id(input_id))
        assert label.text().startswith({"g.name": "Name", "g.age": "Age"}.get(input_id, ""))
    assert form.one("label", for_=html_id("g.age")).text() == "Age"  # required: no "(optional)"
    assert form.one("section").one("h2").text() == "About you"
    assert form.one("div", class_="display").text() == "Please answer."
    assert [o.attrs["value"] for o in by_id[html_id("city")].all("option")] == ["", "Oslo", "Lima"]
    assert [n.attrs["type"] for n in form.all("input", name="q:tick")] == ["checkbox"] * 2
    gated = form.all("input", name="q:pets.kind")[0].up("fieldset")
    assert gated.hidden() and [n.attrs["type"] for n in gated.all("input")] == ["checkbox"] * 2
    assert form.one("input", name="o:colour").attrs["type"] == "text"
    notices = [n.text() for n in form.all("p", class_="q-notice")]
    assert notices == [
        "This question can’t be answered in this form: questions of type ‘attachment’ are not "
        "supported.",
        "This question can’t be answered in this form: its answer list is not included in the "
        "questionnaire.",
    ]
    assert form.all(name="q:photo") == form.all(name="q:vs") == form.all(name="q:calc") == []
    # a repeating string offers one empty input beyond its answers
    assert len(form.all("input", name="q:g.nick")) == 1
    again = render(app, SYNTHETIC, {"q:g.nick": ["Al", "Bo"]})
    assert [n.attrs["value"] for n in again.all("input", name="q:g.nick")] == ["Al", "Bo", ""]
    # the no-JS path offers a button that re-renders with the questions that now apply
    assert "data-nojs" in page.one("button", value="update").attrs


def test_enable_when_is_evaluated_on_the_current_answers(app: Flask) -> None:
    def gated_hidden(values: dict[str, list[str]]) -> bool:
        page = render(app, SYNTHETIC, values)
        return page.all("input", name="q:pets.kind")[0].up("fieldset").hidden()

    assert gated_hidden({}) is True
    assert gated_hidden({"q:pets": ["false"]}) is True
    assert gated_hidden({"q:pets": ["true"]}) is False


@pytest.mark.parametrize(
    ("condition", "behavior", "answers", "enabled"),
    [
        ({"operator": "exists", "answerBoolean": True}, "all", [], False),
        ({"operator": "exists", "answerBoolean": True}, "all", ["3"], True),
        ({"operator": "exists", "answerBoolean": False}, "all", [], True),
        ({"operator": "!=", "answerInteger": 3}, "all", [], True),
        ({"operator": "!=", "answerInteger": 3}, "all", ["3"], False),
        ({"operator": ">", "answerInteger": 3}, "all", ["10"], True),
        ({"operator": ">", "answerInteger": 3}, "all", ["2"], False),
        ({"operator": "<=", "answerInteger": 3}, "all", ["3"], True),
        ({"operator": ">", "answerInteger": 3}, "all", ["abc"], False),
        ({"operator": "=", "answerQuantity": {"value": 3}}, "all", ["3"], False),
    ],
)
def test_enable_when_operators(
    condition: dict[str, Any], behavior: str, answers: list[str], enabled: bool
) -> None:
    questionnaire = {
        "item": [
            {"linkId": "n", "type": "integer"},
            {
                "linkId": "x",
                "type": "string",
                "enableBehavior": behavior,
                "enableWhen": [{"question": "n", **condition}],
            },
        ]
    }
    form = build_form(questionnaire, {"q:n": answers})
    assert next(i for i in form.walk() if i.link_id == "x").enabled is enabled


def test_enable_when_any_all_coding_and_nesting() -> None:
    questionnaire = {
        "item": [
            {
                "linkId": "c",
                "type": "choice",
                "answerOption": [{"valueCoding": {"system": "s", "code": "a"}}],
            },
            {"linkId": "b", "type": "boolean"},
            {
                "linkId": "grp",
                "type": "group",
                "enableBehavior": "any",
                "enableWhen": [
                    {
                        "question": "c",
                        "operator": "=",
                        "answerCoding": {"system": "s", "code": "a"},
                    },
                    {"question": "b", "operator": "=", "answerBoolean": True},
                ],
                "item": [{"linkId": "inner", "type": "string"}],
            },
            # depends on an item inside the group: off whenever the group is off
            {
                "linkId": "late",
                "type": "string",
                "enableWhen": [{"question": "inner", "operator": "exists", "answerBoolean": True}],
            },
        ]
    }

    def enabled(values: dict[str, list[str]]) -> dict[str, bool]:
        return {i.link_id: i.enabled for i in build_form(questionnaire, values).walk()}

    assert enabled({"q:inner": ["x"]}) == {
        "c": True,
        "b": True,
        "grp": False,
        "inner": False,
        "late": False,
    }
    assert enabled({"q:c": ["a"], "q:inner": ["x"]})["late"] is True
    assert enabled({"q:b": ["true"], "q:inner": ["x"]})["late"] is True
    assert enabled({"q:b": ["false"], "q:inner": ["x"]})["grp"] is False


def test_a_value_posted_under_a_group_or_read_only_name_answers_no_condition() -> None:
    questionnaire = {
        "item": [
            {"linkId": "grp", "type": "group", "item": [{"linkId": "in", "type": "string"}]},
            {"linkId": "total", "type": "integer", "readOnly": True},
            *[
                {
                    "linkId": f"on-{target}",
                    "type": "string",
                    "enableWhen": [
                        {"question": target, "operator": "exists", "answerBoolean": True}
                    ],
                }
                for target in ("grp", "total", "in")
            ],
        ]
    }
    posted = {"q:grp": ["x"], "q:total": ["3"], "q:in": ["y"]}
    enabled = {i.link_id: i.enabled for i in build_form(questionnaire, posted).walk()}
    # the page has no field for a group or a read-only item: the script could never see one
    assert (enabled["on-grp"], enabled["on-total"], enabled["on-in"]) == (False, False, True)


def test_errors_show_a_linked_summary_and_described_fields(app: Flask) -> None:
    errors = {"g.age": "Enter a whole number, like 12", "s1": "Select an answer"}
    page = render(app, SYNTHETIC, {"q:g.age": ["twelve"]}, errors)
    assert page.one("title").text().startswith("Error: ")
    summary = page.one("div", class_="err-summary")
    assert summary.attrs["role"] == "alert"
    links = [(a.attrs["href"], a.text()) for a in summary.all("a")]
    assert links == [
        (f"#{html_id('g.age')}", "Age: Enter a whole number, like 12"),
        (f"#{html_id('s1')}-0", "Scale one: Select an answer"),
    ]
    for href, _ in links:
        target = page.one(id=href[1:])
        assert target.tag == "input"
        described = target if target.attrs.get("type") == "text" else target.up("fieldset")
        message = page.one(id=described.attrs["aria-describedby"] or "")
        assert message.text() in {"Error: Enter a whole number, like 12", "Error: Select an answer"}
    assert page.one("input", id=html_id("g.age")).attrs["value"] == "twelve"


def test_questionnaire_text_is_inert(app: Flask) -> None:
    evil = copy.deepcopy(SYNTHETIC)
    attack = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    evil["title"] = attack
    s1 = evil["item"][4]
    s1["text"] = attack
    s1["prefix"] = '<a href="javascript:window.pwned=3">1.</a>'
    s1["answerOption"][0]["valueCoding"]["display"] = attack
    s2 = evil["item"][5]
    s2["_text"] = {
        "extension": [
            {
                "url": XHTML,
                "valueString": "<b>Bold</b> <script>window.pwned=4</script>"
                '<a href="javascript:window.pwned=5" onclick="x()">link</a>'
                '<img src=x onerror="window.pwned=6"><p style="x">para</p>',
            }
        ]
    }
    page = render(app, evil)
    scripts = page.all("script")
    assert [s.attrs.get("src") for s in scripts] == [
        "/static/enable-when.js",
        "/static/progress.js",
    ]
    everything = page.all()
    # the harmless form's elements, plus the <b> the allow-list keeps and two of our own spans
    # (s1 now has a prefix, and its first option a display text)
    clean_tags = Counter(n.tag for n in render(app, SYNTHETIC).all())
    assert Counter(n.tag for n in everything) == clean_tags + Counter({"b": 1, "span": 2})
    for node in everything:
        for name, value in node.attrs.items():
            assert not name.startswith("on")
            assert "javascript:" not in (value or "")
    legend_s1 = page.all("input", name="q:s1")[0].up("fieldset").one("legend")
    prefix = '<a href="javascript:window.pwned=3">1.</a>'
    assert legend_s1.text() == f"{prefix} {attack} (optional)"
    legend_s2 = page.all("input", name="q:s2")[0].up("fieldset").one("legend")
    assert [n.tag for n in legend_s2.all()] == ["b", "span"]  # <b> kept; span is the "(optional)"
    # <script> goes with its content; <a>, <img> and <p> (not phrasing) go, their text stays
    assert legend_s2.text() == "Bold linkpara (optional)"
    assert page.one("h1").text() == attack


def test_html_ids_are_safe_and_distinct() -> None:
    ids = [html_id(x) for x in ("a.b", "a_b", "a b", "a-b", "é", "a_2e_b")]
    assert len(set(ids)) == len(ids)
    assert all(i.replace("-", "").replace("_", "").isalnum() and i.isascii() for i in ids)


def test_malformed_items_render_without_crashing(app: Flask) -> None:
    odd = {
        "item": [
            {"type": "choice", "text": 5, "answerOption": [{}, {"valueReference": {}}]},
            {"linkId": "q", "type": "quantity", "enableWhen": [{"question": "nowhere"}]},
            {"linkId": "g", "type": "group", "item": [{"linkId": "t", "type": "time"}]},
            {"linkId": "o", "type": "open-choice"},
        ]
    }
    page = render(app, odd)
    assert len(page.all("p", class_="q-notice")) == 3  # the choice without options, quantity, time
    assert page.one("input", name="o:o").attrs["type"] == "text"  # open-choice: free text only
    assert not page.one("input", name="o:o").hidden()


def test_the_assess_fill_page_fills_the_form_templates_blocks(app: Flask) -> None:
    """One form rendering: assess/fill.html extends assess/form.html instead of repeating it."""
    env = app.jinja_env
    assert env.loader is not None
    source = env.loader.get_source(env, "assess/fill.html")[0]
    referenced = set(meta.find_referenced_templates(env.parse(source)))
    assert "assess/form.html" in referenced
    assert not referenced & {"base.html", "assess/_form_macros.html"}
    assert {"hidden_fields", "actions"} <= set(env.get_template("assess/form.html").blocks)


def test_forms_of_a_packaged_questionnaire_do_not_share_answers_or_errors() -> None:
    from attach_fhir.instruments import library  # the frozen copy: its items are compiled once

    packaged = library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0")
    answered = build_form(packaged, {"q:1": ["3"]}, {"2": "Select an answer"})
    fresh = build_form(packaged)
    first, second = answered.items[0], answered.items[1]
    assert (first.values, second.error, len(answered.errors)) == (["3"], "Select an answer", 1)
    assert (fresh.items[0].values, fresh.items[1].error, fresh.errors) == ([], None, [])
    assert ' value="3" id="q-1-2" checked>' in str(first.choices_html())
    assert "checked" not in str(fresh.items[0].choices_html())


@pytest.mark.parametrize("qid", ["ecr", "ecr-rs", "prfq"])
def test_unlabelled_scales_show_which_end_is_agree_before_the_first_question(
    app: Flask, qid: str
) -> None:
    questionnaire = json.loads((ROOT / "questionnaires" / f"{qid}.json").read_text("utf-8"))
    with app.test_request_context():
        html = render_template("assess/form.html", form=build_form(questionnaire, None, None))
    page = parse_html(html)
    lines = [d.text() for d in page.all("div", class_="display")]
    assert lines == ["Rate each statement from 1 (disagree) to 7 (agree)."]
    assert html.index(lines[0]) < html.index("<fieldset")


def test_rq_best_fit_options_show_the_paragraphs_not_the_pattern_names(app: Flask) -> None:
    # The options' display is the CodeSystem's ("Secure"); the respondent reads the prototype
    # paragraph (rendering-xhtml), the same text the RQ rating items carry as their text.
    questionnaire = json.loads((ROOT / "questionnaires" / "rq.json").read_text("utf-8"))
    paragraphs = {i["linkId"]: i["text"] for i in questionnaire["item"][1:-1]}  # not scores
    page = render(app, questionnaire)
    radios = page.all("input", name="q:best-fit")
    shown = {r.attrs["value"]: r.up("label").text() for r in radios}
    assert shown == paragraphs
    assert not any(name in text for text in shown.values() for name in ("Secure", "Fearful"))
