"""Repeating groups in the server-rendered form: one fieldset per instance, add and remove buttons
that post the whole form (no JS), one response item per instance, drafts that give the instances
back, and error links to the right instance's field.

The Questionnaire is a test fixture (none of the packaged instruments has a repeating group), in
neutral, non-clinical wording. Pages go through the real app (CSRF, CSP) with Flask's test client
and a test-only view that dispatches ``action`` the way ``smart_app.assess.routes.fill`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, render_template, request
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from smart_app import create_app
from smart_app.forms.form_fields import MAX_FORM_INSTANCES
from smart_app.forms.form_instances import form_after_action
from smart_app.forms.form_response import MSG_DATE, parse_form, response_to_values
from smart_app.forms.questionnaire_form import build_form
from tests.app.test_questionnaire_form import REGISTRATIONS, Node, parse_html

ROOT = Path(__file__).resolve().parents[2]
PETS: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "data" / "repeating-group.questionnaire.json").read_text("utf-8")
)
KIND = "http://example.org/pet-kind"
MIN_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-minOccurs"
MAX_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-maxOccurs"

# A repeating group inside a repeating group, at least two trips (minOccurs needs required).
TRIPS: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "http://example.org/fhir/Questionnaire/trips",
    "item": [
        {
            "linkId": "trip",
            "type": "group",
            "text": "Trip",
            "repeats": True,
            "required": True,
            "extension": [{"url": MIN_OCCURS, "valueInteger": 2}],
            "item": [
                {"linkId": "trip.place", "type": "string", "text": "Place"},
                {
                    "linkId": "stop",
                    "type": "group",
                    "text": "Stop",
                    "repeats": True,
                    "item": [{"linkId": "stop.town", "type": "string", "text": "Town"}],
                },
            ],
        }
    ],
}
FORMS = {"pets": PETS, "trips": TRIPS}

bp = Blueprint("repeat_test", __name__)


@bp.route("/form/<name>", methods=["GET", "POST"])
def form_page(name: str) -> Any:
    """The form; a post is dispatched as ``assess.fill`` does (submit, else add/remove/update)."""
    questionnaire = FORMS[name]
    if request.method == "GET":
        return render_template("assess/form.html", form=build_form(questionnaire))
    action = request.form.get("action", "submit")
    if action == "submit":
        parsed = parse_form(questionnaire, request.form)
        if parsed.ok:
            return jsonify(parsed.response)
        return render_template("assess/form.html", form=parsed.form), 422
    values = parse_form(questionnaire, request.form, status="in-progress").values
    return render_template(
        "assess/form.html", form=form_after_action(questionnaire, values, action)
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "REGISTRATIONS_DATA": REGISTRATIONS,
            "DATA_DIR": str(tmp_path_factory.mktemp("repeat-app")),
        }
    )
    app.register_blueprint(bp)
    return app


class Browser:
    """One test client that has loaded a form (so it holds the cookie and the CSRF token)."""

    def __init__(self, client: FlaskClient, name: str) -> None:
        self.client, self.name = client, name
        page = parse_html(client.get(f"/form/{name}").text)
        self.csrf = page.one("input", name="csrf_token").attrs["value"] or ""

    def post(self, fields: dict[str, list[str]], action: str) -> tuple[int, Node]:
        """Post the form with ``action``; the status and the parsed page."""
        data = post(fields)
        data.add("csrf_token", self.csrf)
        data.add("action", action)
        got = self.client.post(f"/form/{self.name}", data=data)
        return got.status_code, parse_html(got.text)


def legends(page: Node) -> list[str]:
    """The instances' legends (each fieldset's own, not those of the questions inside)."""
    fieldsets = page.all("fieldset", class_="instance")
    return [next(c for c in f.children if isinstance(c, Node)).text() for f in fieldsets]


def value(page: Node, name: str) -> list[str]:
    """The values the page shows for a text-like field name, in order."""
    return [n.attrs.get("value") or "" for n in page.all("input", name=name)]


def checked(page: Node, name: str) -> list[str]:
    return [n.attrs["value"] or "" for n in page.all("input", name=name) if "checked" in n.attrs]


def buttons(page: Node) -> list[tuple[str, str]]:
    return [(b.attrs.get("value") or "", b.text()) for b in page.all("button")]


def post(values: dict[str, list[str]]) -> MultiDict[str, str]:
    return MultiDict([(k, v) for k, vs in values.items() for v in vs])


def test_a_fresh_form_shows_one_instance_and_an_add_button(app: Flask) -> None:
    page = parse_html(app.test_client().get("/form/pets").text)
    form = page.one("form")
    section = form.one("section", id="q-pet")
    assert section.one("h2").text() == "Pet"
    assert legends(page) == ["Pet 1"]
    instance = section.one("fieldset", class_="instance")
    assert instance.attrs["id"] == "q_1-pet" and "autofocus" not in instance.attrs
    name = instance.one("input", name="q.1:pet.name")
    assert name.attrs["id"] == "q_1-pet_2e_name"
    assert form.one("label", for_="q_1-pet_2e_name").text() == "Name"
    kinds = instance.all("input", name="q.1:pet.kind")
    assert [(k.attrs["id"], k.attrs["value"]) for k in kinds] == [
        ("q_1-pet_2e_kind-0", "cat"),
        ("q_1-pet_2e_kind-1", "dog"),
    ]
    assert kinds[0].up("fieldset").one("legend").text() == "Kind (optional)"
    walks = instance.one("input", name="q.1:pet.walks")
    assert walks.hidden()  # the kind is not answered yet
    container = walks.parent
    assert container is not None
    assert json.loads(container.attrs["data-when"] or "") == [
        {"q": "pet.kind", "op": "=", "t": "text", "v": "dog", "s": ".1"}
    ]
    assert [v.attrs["type"] for v in instance.all("input", name="q.1:pet.visit")] == ["date"]
    assert section.one("input", name="n:pet").attrs == {
        "type": "hidden",
        "name": "n:pet",
        "value": "1",
    }
    # Enter in a text field presses the first submit button: a hidden "update"
    first = form.all("button")[0]
    assert (first.attrs["value"], "hidden" in first.attrs) == ("update", True)
    assert ("add:pet", "Add another Pet") in buttons(page)
    assert not [v for v, _ in buttons(page) if v.startswith("remove")]
    assert form.all(name="q:pet.name") == []  # nothing outside an instance


def test_add_keeps_every_answer_and_focuses_the_new_instance(app: Flask) -> None:
    browser = Browser(app.test_client(), "pets")
    status, page = browser.post(
        {
            "q:household": ["Ada"],
            "n:pet": ["1"],
            "q.1:pet.name": ["Rex"],
            "q.1:pet.kind": ["dog"],
            "q.1:pet.walks": ["Park"],
            "q.1:pet.visit": ["2024-01-05", "not a date"],
        },
        "add:pet",
    )
    assert status == 200
    assert page.all("div", class_="err-summary") == [] and page.all("p", class_="err") == []
    assert legends(page) == ["Pet 1", "Pet 2"]
    assert value(page, "q:household") == ["Ada"]
    assert value(page, "q.1:pet.name") == ["Rex"]
    assert checked(page, "q.1:pet.kind") == ["dog"]
    assert value(page, "q.1:pet.walks") == ["Park"]
    assert not page.one("input", name="q.1:pet.walks").hidden()  # a dog: the route applies
    assert value(page, "q.1:pet.visit") == ["2024-01-05", "not a date", ""]
    assert value(page, "q.2:pet.name") == [""] and checked(page, "q.2:pet.kind") == []
    assert page.one("input", name="q.2:pet.walks").hidden()
    assert value(page, "n:pet") == ["2"]
    second = page.one("fieldset", id="q_2-pet")
    assert "autofocus" in second.attrs and second.attrs["tabindex"] == "-1"
    assert "autofocus" not in page.one("fieldset", id="q_1-pet").attrs
    removes = [(v, t) for v, t in buttons(page) if v.startswith("remove")]
    assert removes == [("remove.2:pet", "Remove Pet 2")]  # "Pet 2" visually hidden
    assert second.one("button").attrs["value"] == "remove.2:pet"


THREE_PETS = {
    "n:pet": ["3"],
    "q.1:pet.name": ["Ash"],
    "q.1:pet.kind": ["cat"],
    "q.2:pet.name": ["Bo"],
    "q.2:pet.kind": ["dog"],
    "q.2:pet.walks": ["Lane"],
    "q.2:pet.visit": ["2024-02-02"],
    "q.3:pet.name": ["Cy"],
    "q.3:pet.kind": ["dog"],
    "q.3:pet.walks": ["Hill"],
    "q.3:pet.visit": ["2024-03-03", "2024-03-04", ""],
}


def test_remove_takes_one_instance_out_and_moves_the_later_ones_up(app: Flask) -> None:
    browser = Browser(app.test_client(), "pets")
    status, page = browser.post(THREE_PETS, "remove.2:pet")
    assert status == 200 and page.all("div", class_="err-summary") == []
    assert legends(page) == ["Pet 1", "Pet 2"]
    assert value(page, "n:pet") == ["2"]
    assert value(page, "q.1:pet.name") == ["Ash"] and checked(page, "q.1:pet.kind") == ["cat"]
    assert value(page, "q.2:pet.name") == ["Cy"] and checked(page, "q.2:pet.kind") == ["dog"]
    assert value(page, "q.2:pet.walks") == ["Hill"]
    assert value(page, "q.2:pet.visit") == ["2024-03-03", "2024-03-04", ""]
    assert page.all(name="q.3:pet.name") == []
    assert "Bo" not in {n.attrs.get("value") for n in page.all("input")}
    assert "autofocus" in page.one("fieldset", id="q_2-pet").attrs  # where Bo was
    assert ("add:pet", "Add another Pet") in buttons(page)  # 2 of at most 3

    _, last = browser.post(THREE_PETS, "remove.3:pet")
    assert legends(last) == ["Pet 1", "Pet 2"] and value(last, "q.2:pet.name") == ["Bo"]
    assert "autofocus" in last.one("fieldset", id="q_2-pet").attrs  # the last one left


def test_max_occurs_stops_adding_and_the_first_instance_stays(app: Flask) -> None:
    browser = Browser(app.test_client(), "pets")
    _, page = browser.post(THREE_PETS, "update")
    assert legends(page) == ["Pet 1", "Pet 2", "Pet 3"]
    assert "add:pet" not in [v for v, _ in buttons(page)]  # maxOccurs 3
    _, forced = browser.post(THREE_PETS, "add:pet")  # a hand-made post cannot go past it
    assert legends(forced) == ["Pet 1", "Pet 2", "Pet 3"]
    _, kept = browser.post(THREE_PETS, "remove.1:pet")  # the first instance has no button
    assert legends(kept) == ["Pet 1", "Pet 2", "Pet 3"]
    assert value(kept, "q.1:pet.name") == ["Ash"]
    assert [v for v, _ in buttons(page) if v.startswith("remove")] == [
        "remove.2:pet",
        "remove.3:pet",
    ]


# Written by hand from the fixture: two pets, the second a cat (so its route is not asked).
TWO_PETS_POST = {
    "q:household": ["Ada"],
    "n:pet": ["2"],
    "q.1:pet.name": ["Rex"],
    "q.1:pet.kind": ["dog"],
    "q.1:pet.walks": ["Park"],
    "q.1:pet.visit": ["2024-01-05", "2024-02-06", ""],
    "q.2:pet.name": ["Tom"],
    "q.2:pet.kind": ["cat"],
    "q.2:pet.walks": ["Not asked"],
    "q.2:pet.visit": [""],
}
TWO_PETS_RESPONSE = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "questionnaire": "http://example.org/fhir/Questionnaire/repeating-group-test|1",
    "item": [
        {"linkId": "household", "text": "Household name", "answer": [{"valueString": "Ada"}]},
        {
            "linkId": "pet",
            "text": "Pet",
            "item": [
                {"linkId": "pet.name", "text": "Name", "answer": [{"valueString": "Rex"}]},
                {
                    "linkId": "pet.kind",
                    "text": "Kind",
                    "answer": [{"valueCoding": {"system": KIND, "code": "dog", "display": "Dog"}}],
                },
                {
                    "linkId": "pet.walks",
                    "text": "Usual walking route",
                    "answer": [{"valueString": "Park"}],
                },
                {
                    "linkId": "pet.visit",
                    "text": "Vet visit dates",
                    "answer": [{"valueDate": "2024-01-05"}, {"valueDate": "2024-02-06"}],
                },
            ],
        },
        {
            "linkId": "pet",
            "text": "Pet",
            "item": [
                {"linkId": "pet.name", "text": "Name", "answer": [{"valueString": "Tom"}]},
                {
                    "linkId": "pet.kind",
                    "text": "Kind",
                    "answer": [{"valueCoding": {"system": KIND, "code": "cat", "display": "Cat"}}],
                },
            ],
        },
    ],
}


def test_instances_become_one_response_item_each_and_come_back_from_a_draft(app: Flask) -> None:
    parsed = parse_form(PETS, post(TWO_PETS_POST))
    assert parsed.errors == {}
    assert parsed.response == TWO_PETS_RESPONSE
    values = response_to_values(PETS, TWO_PETS_RESPONSE)
    assert values == {
        "q:household": ["Ada"],
        "n:pet": ["2"],
        "q.1:pet.name": ["Rex"],
        "q.1:pet.kind": ["dog"],
        "q.1:pet.walks": ["Park"],
        "q.1:pet.visit": ["2024-01-05", "2024-02-06"],
        "q.2:pet.name": ["Tom"],
        "q.2:pet.kind": ["cat"],
    }
    assert parse_form(PETS, post(values)).response == TWO_PETS_RESPONSE
    with app.test_request_context():  # the resumed draft's page
        page = parse_html(render_template("assess/form.html", form=build_form(PETS, values)))
    assert legends(page) == ["Pet 1", "Pet 2"]
    assert value(page, "q.2:pet.name") == ["Tom"] and checked(page, "q.2:pet.kind") == ["cat"]
    assert value(page, "q.1:pet.visit") == ["2024-01-05", "2024-02-06", ""]


def test_an_empty_instance_is_left_out_of_the_response() -> None:
    sent = {"n:pet": ["3"], "q.1:pet.name": ["Rex"], "q.3:pet.name": ["Tom"]}
    parsed = parse_form(PETS, post(sent), status="in-progress")
    names = [[i["answer"][0]["valueString"] for i in g["item"]] for g in parsed.response["item"]]
    assert names == [["Rex"], ["Tom"]]
    assert response_to_values(PETS, parsed.response) == {
        "n:pet": ["2"],
        "q.1:pet.name": ["Rex"],
        "q.2:pet.name": ["Tom"],
    }


def test_fields_of_an_instance_beyond_the_count_still_show() -> None:
    # a hand-made post (no count, or a stale one): no answer is dropped from the page
    form = build_form(PETS, {"q.2:pet.name": ["Tom"]})
    pet = next(i for i in form.walk() if i.kind == "repeat")
    assert [i.legend for i in pet.children] == ["Pet 1", "Pet 2"]
    assert pet.children[1].children[0].values == ["Tom"]


def test_errors_link_to_the_instance_field(app: Flask) -> None:
    browser = Browser(app.test_client(), "pets")
    sent = {
        "n:pet": ["2"],
        "q.1:pet.name": ["Rex"],
        "q.1:pet.visit": ["2024-02-30"],
        "q.2:pet.name": [""],
    }
    parsed = parse_form(PETS, post(sent))
    assert parsed.errors == {"pet.visit[1]": MSG_DATE, "pet.name[2]": "Enter an answer"}
    status, page = browser.post(sent, "submit")
    assert status == 422
    links = [(a.attrs["href"], a.text()) for a in page.one("div", class_="err-summary").all("a")]
    assert links == [
        ("#q_1-pet_2e_visit", f"Vet visit dates (Pet 1): {MSG_DATE}"),
        ("#q_2-pet_2e_name", "Name (Pet 2): Enter an answer"),
    ]
    for href, text in links:
        target = page.one(id=href[1:])
        assert target.tag == "input" and target.up("fieldset").attrs["class"] == "instance"
        message = page.one(id=target.attrs["aria-describedby"] or "")
        assert message.text() == f"Error: {text.partition(': ')[2]}"
    assert value(page, "q.1:pet.visit") == ["2024-02-30", ""]  # kept as typed


def test_too_many_instances_from_a_response_are_shown_and_refused(app: Flask) -> None:
    pet = TWO_PETS_RESPONSE["item"][2]
    response = {**TWO_PETS_RESPONSE, "item": [pet, pet, pet, pet]}
    values = response_to_values(PETS, response)
    assert values["n:pet"] == ["4"] and values["q.4:pet.name"] == ["Tom"]
    parsed = parse_form(PETS, post(values), status="in-progress")
    assert parsed.errors == {"pet": "Fill in no more than 3; remove the rest"}
    assert [e.href for e in parsed.form.errors] == ["#q_1-pet"]
    with app.test_request_context():
        page = parse_html(render_template("assess/form.html", form=parsed.form))
    assert legends(page) == ["Pet 1", "Pet 2", "Pet 3", "Pet 4"]
    assert "add:pet" not in [v for v, _ in buttons(page)]
    first = page.one("fieldset", id="q_1-pet")
    assert page.one(id=first.attrs["aria-describedby"] or "").text() == (
        "Error: Fill in no more than 3; remove the rest"
    )


def test_enable_when_reads_the_same_instance_or_the_nearest_before() -> None:
    questionnaire = json.loads(json.dumps(PETS))
    questionnaire["item"].append(
        {
            "linkId": "after",
            "type": "string",
            "text": "After the pets",
            "enableWhen": [
                {"question": "pet.kind", "operator": "=", "answerCoding": {"code": "dog"}}
            ],
        }
    )

    def enabled(kinds: list[str]) -> dict[str, bool]:
        sent = {f"q.{n}:pet.kind": [k] for n, k in enumerate(kinds, 1)}
        form = build_form(questionnaire, sent)
        return {i.key: i.enabled for i in form.walk() if i.link_id in {"pet.walks", "after"}}

    # each instance's route follows its own kind; an item after the group reads the last one
    assert enabled(["dog", "cat"]) == {"pet.walks[1]": True, "pet.walks[2]": False, "after": False}
    assert enabled(["cat", "dog"]) == {"pet.walks[1]": False, "pet.walks[2]": True, "after": True}
    after = next(i for i in build_form(questionnaire, {"n:pet": ["2"]}).walk() if i.key == "after")
    assert json.loads(after.when_json)[0]["s"] == ".2"  # the script reads the same field


def test_nested_repeating_groups_add_remove_and_round_trip(app: Flask) -> None:
    page = parse_html(app.test_client().get("/form/trips").text)
    assert legends(page) == ["Trip 1", "Stop 1", "Trip 2", "Stop 1"]  # minOccurs 2
    in_form = [v for v, _ in buttons(page) if v not in {"submit", "draft"}]
    assert in_form == ["update", "add.1:stop", "add.2:stop", "add:trip"]
    assert value(page, "n.2:stop") == ["1"] and value(page, "q.2.1:stop.town") == [""]

    browser = Browser(app.test_client(), "trips")
    sent = {
        "n:trip": ["3"],
        "q.1:trip.place": ["North"],
        "q.2:trip.place": ["East"],
        "q.3:trip.place": ["West"],
        "n.3:stop": ["2"],
        "q.3.1:stop.town": ["Ayr"],
        "q.3.2:stop.town": ["Troon"],
    }
    _, added = browser.post(sent, "add.3:stop")
    assert value(added, "n.3:stop") == ["3"]
    assert "autofocus" in added.one("fieldset", id="q_3_3-stop").attrs
    assert ("remove.3.3:stop", "Remove Stop 3") in buttons(added)
    # two trips are the minimum: only the third has a remove button
    assert [v for v, _ in buttons(added) if v.endswith(":trip")] == ["remove.3:trip", "add:trip"]
    _, removed = browser.post(sent, "remove.3:trip")
    assert legends(removed) == ["Trip 1", "Stop 1", "Trip 2", "Stop 1"]
    _, moved = browser.post({**sent, "n:trip": ["4"], "q.4:trip.place": ["South"]}, "remove.3:trip")
    assert value(moved, "q.3:trip.place") == ["South"]
    assert value(moved, "n.3:stop") == ["1"] and value(moved, "q.3.1:stop.town") == [""]
    # the trip removed was the one with stops: its towns are gone, not moved to another trip
    assert not {"Ayr", "Troon"} & {n.attrs.get("value") for n in moved.all("input")}

    parsed = parse_form(TRIPS, post(sent))
    assert parsed.errors == {}
    assert parsed.response["item"] == [
        {"linkId": "trip", "text": "Trip", "item": [place("North")]},
        {"linkId": "trip", "text": "Trip", "item": [place("East")]},
        {
            "linkId": "trip",
            "text": "Trip",
            "item": [place("West"), stop("Ayr"), stop("Troon")],
        },
    ]
    values = response_to_values(TRIPS, parsed.response)
    assert values == sent  # every field was answered: the draft gives back exactly the post
    assert parse_form(TRIPS, post(values)).response == parsed.response


def place(text: str) -> dict[str, Any]:
    return {"linkId": "trip.place", "text": "Place", "answer": [{"valueString": text}]}


def stop(town: str) -> dict[str, Any]:
    return {
        "linkId": "stop",
        "text": "Stop",
        "item": [{"linkId": "stop.town", "text": "Town", "answer": [{"valueString": town}]}],
    }


def test_min_occurs_binds_a_completed_response_only() -> None:
    one = {"n:trip": ["2"], "q.1:trip.place": ["North"]}
    assert parse_form(TRIPS, post(one)).errors == {"trip": "Fill in at least 2"}
    assert parse_form(TRIPS, post(one), status="in-progress").errors == {}
    both = {**one, "q.2:trip.place": ["East"]}
    assert parse_form(TRIPS, post(both)).errors == {}


def test_a_required_group_with_errors_inside_gets_no_second_message() -> None:
    # nothing at all: the first pet's required name says it; no "at least one" on the group too
    required = json.loads(json.dumps(PETS))
    required["item"][1]["required"] = True
    assert parse_form(required, post({})).errors == {"pet.name[1]": "Enter an answer"}
    optional_inside = json.loads(json.dumps(required))
    optional_inside["item"][1]["item"][0]["required"] = False
    assert parse_form(optional_inside, post({})).errors == {"pet": "Fill in at least one"}


def test_max_occurs_on_a_repeating_question() -> None:
    tags = {
        "item": [
            {
                "linkId": "tag",
                "type": "string",
                "text": "Tags",
                "repeats": True,
                "extension": [{"url": MAX_OCCURS, "valueInteger": 2}],
            }
        ]
    }

    def inputs(given: list[str]) -> list[str]:
        return build_form(tags, {"q:tag": given}).items[0].shown_values

    assert inputs([]) == [""] and inputs(["a", " "]) == ["a", ""]
    assert inputs(["a", "b"]) == ["a", "b"]  # no empty input beyond maxOccurs
    assert inputs(["a", "b", "c"]) == ["a", "b", "c"]  # too many: all shown, and refused
    assert parse_form(tags, post({"q:tag": ["a", "b", "c"]})).errors == {
        "tag": "Give no more than 2 answers"
    }
    assert parse_form(tags, post({"q:tag": ["a", "b", ""]})).errors == {}


def instances_per_trip(form: Any) -> list[int]:
    """How many Stop instances each Trip instance of a TRIPS form shows."""
    trips = form.items[0].children
    return [len(next(c for c in t.children if c.kind == "repeat").children) for t in trips]


def test_nested_counts_stay_within_the_forms_bound() -> None:
    # 101 fields (about 2 kB) asked for 100 trips of 100 stops: 10,100 instances, 4 MB of page
    counts = {"n:trip": ["100"], **{f"n.{t}:stop": ["100"] for t in range(1, 101)}}
    form = parse_form(TRIPS, post(counts), status="in-progress").form
    assert MAX_FORM_INSTANCES == 1000
    # spent in document order: the 100 trips, then 100 stops for each of trips 1-9 (900)
    assert instances_per_trip(form) == [100] * 9 + [0] * 91
    assert sum(1 for i in form.walk() if i.kind == "instance") == 1000
    # the same from a saved response (the EHR's draft) with that many instances
    trip = {"linkId": "trip", "item": [stop("Ayr")] * 100}
    values = response_to_values(TRIPS, {"item": [trip] * 100})
    assert instances_per_trip(build_form(TRIPS, values)) == [100] * 9 + [0] * 91


def test_a_questionnaires_min_occurs_shows_at_most_the_cap() -> None:
    # an EHR's copy of a Questionnaire is rendered: its minOccurs is no count to trust
    huge = json.loads(json.dumps(TRIPS))
    huge["item"][0]["extension"] = [{"url": MIN_OCCURS, "valueInteger": 5000}]
    huge["item"][0]["item"][1]["required"] = True
    huge["item"][0]["item"][1]["extension"] = [{"url": MIN_OCCURS, "valueInteger": 60}]
    fresh = build_form(huge)
    # 100 trips (MAX_INSTANCES); 60 stops each for trips 1-15 (900), 0 after the 1000th
    assert instances_per_trip(fresh) == [60] * 15 + [0] * 85
    assert sum(1 for i in fresh.walk() if i.kind == "instance") == 1000


_WORDS = st.sampled_from(["q", "o", "n", "add", "remove", "x", ""])
_PATHS = st.lists(
    st.sampled_from(["1", "2", "100", "101", "9999", "0", "-1", "01", "", "1e3"]), max_size=12
).map(lambda parts: "".join(f".{p}" for p in parts))
_LINK_IDS = st.sampled_from(["trip", "trip.place", "stop", "stop.town", "other", "", "a:b"])
_NAMES = st.builds(lambda w, p, link: f"{w}{p}:{link}", _WORDS, _PATHS, _LINK_IDS) | st.text(
    max_size=8
)
_HOSTILE_POSTS = st.dictionaries(
    _NAMES, st.lists(st.sampled_from(["", "x", "100", "9999", "-3", " 7", "١٠"]), max_size=2)
)


@settings(max_examples=200, deadline=None)
@given(posted=_HOSTILE_POSTS, action=_NAMES, status=st.sampled_from(["in-progress", "completed"]))
def test_hostile_field_names_and_counts_answer_only_the_questionnaires_items(
    posted: dict[str, list[str]], action: str, status: str
) -> None:
    parsed = parse_form(TRIPS, post(posted), status=status)
    link_ids: set[str] = set()
    stack = list(parsed.response.get("item", []))
    while stack:
        entry = stack.pop()
        link_ids.add(entry["linkId"])
        stack += entry.get("item", [])
    assert link_ids <= {"trip", "trip.place", "stop", "stop.town"}
    assert sum(1 for i in parsed.form.walk() if i.kind == "instance") <= MAX_FORM_INSTANCES
    after = form_after_action(TRIPS, parsed.values, action)
    assert sum(1 for i in after.walk() if i.kind == "instance") <= MAX_FORM_INSTANCES
