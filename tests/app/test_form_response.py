"""Posted form <-> QuestionnaireResponse: round trips, validation that keeps every answer,
enableWhen-disabled answers dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from smart_app.forms.form_items import walk
from smart_app.forms.form_response import (
    STATUSES,
    UnknownResponseStatus,
    parse_form,
    response_to_values,
)
from smart_app.forms.questionnaire_form import compiled_items

ROOT = Path(__file__).resolve().parents[2]
AGREEMENT = "http://attach-fhir.org/fhir/CodeSystem/agreement-7"


def load(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "questionnaires" / f"{name}.json").read_text(encoding="utf-8"))


# Neutral, non-clinical items: one of each answer type, plus a gate and a read-only total.
SYNTHETIC: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "http://example.org/Questionnaire/parse",
    "version": "2",
    "item": [
        {
            "linkId": "g",
            "type": "group",
            "text": "Group",
            "item": [
                {"linkId": "name", "type": "string", "text": "Name", "maxLength": 5},
                {"linkId": "count", "type": "integer", "text": "Count", "required": True},
                {"linkId": "size", "type": "decimal", "text": "Size"},
                {"linkId": "day", "type": "date", "text": "Day"},
                {"linkId": "notes", "type": "text", "text": "Notes"},
            ],
        },
        {"linkId": "gate", "type": "boolean", "text": "Gate", "required": True},
        {
            "linkId": "kinds",
            "type": "choice",
            "text": "Kinds",
            "repeats": True,
            "required": True,
            "enableWhen": [{"question": "gate", "operator": "=", "answerBoolean": True}],
            "answerOption": [{"valueString": "cat"}, {"valueString": "dog"}],
        },
        {
            "linkId": "colour",
            "type": "open-choice",
            "text": "Colour",
            "answerOption": [{"valueCoding": {"system": "s", "code": "r", "display": "Red"}}],
        },
        {"linkId": "tags", "type": "string", "text": "Tags", "repeats": True},
        {"linkId": "total", "type": "decimal", "text": "Total", "readOnly": True},
    ],
}

# Written by hand from the items above: what a complete, valid response must be.
SYNTHETIC_RESPONSE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "questionnaire": "http://example.org/Questionnaire/parse|2",
    "item": [
        {
            "linkId": "g",
            "text": "Group",
            "item": [
                {"linkId": "name", "text": "Name", "answer": [{"valueString": "Ann"}]},
                {"linkId": "count", "text": "Count", "answer": [{"valueInteger": -3}]},
                {"linkId": "size", "text": "Size", "answer": [{"valueDecimal": 2.5}]},
                {"linkId": "day", "text": "Day", "answer": [{"valueDate": "2024-02-29"}]},
                {"linkId": "notes", "text": "Notes", "answer": [{"valueString": "a\nb"}]},
            ],
        },
        {"linkId": "gate", "text": "Gate", "answer": [{"valueBoolean": True}]},
        {
            "linkId": "kinds",
            "text": "Kinds",
            "answer": [{"valueString": "cat"}, {"valueString": "dog"}],
        },
        {
            "linkId": "colour",
            "text": "Colour",
            "answer": [{"valueCoding": {"system": "s", "code": "r", "display": "Red"}}],
        },
        {"linkId": "tags", "text": "Tags", "answer": [{"valueString": "x"}, {"valueString": "y"}]},
    ],
}

SYNTHETIC_POST = {
    "csrf_token": ["ignored"],
    "action": ["submit"],
    "q:name": ["Ann"],
    "q:count": ["-3"],
    "q:size": ["2.5"],
    "q:day": ["2024-02-29"],
    "q:notes": ["a\r\nb"],
    "q:gate": ["true"],
    "q:kinds": ["cat", "dog"],
    "q:colour": ["r"],
    "o:colour": [""],
    "q:tags": ["x", "y", ""],
}


def post(values: dict[str, list[str]]) -> MultiDict[str, str]:
    return MultiDict([(k, v) for k, vs in values.items() for v in vs])


def test_synthetic_post_becomes_the_hand_written_response() -> None:
    parsed = parse_form(SYNTHETIC, post(SYNTHETIC_POST))
    assert parsed.errors == {}
    assert parsed.ok
    assert parsed.response == SYNTHETIC_RESPONSE


def test_synthetic_response_round_trips_through_form_values() -> None:
    values = response_to_values(SYNTHETIC, SYNTHETIC_RESPONSE)
    assert values == {
        "q:name": ["Ann"],
        "q:count": ["-3"],
        "q:size": ["2.5"],
        "q:day": ["2024-02-29"],
        "q:notes": ["a\nb"],
        "q:gate": ["true"],
        "q:kinds": ["cat", "dog"],
        "q:colour": ["r"],
        "q:tags": ["x", "y"],
    }
    assert parse_form(SYNTHETIC, post(values)).response == SYNTHETIC_RESPONSE


def ecr_r_answers() -> dict[str, str]:
    # a fixed pattern covering every scale point: item n -> ((3n) mod 7) + 1
    return {str(n): str((3 * n) % 7 + 1) for n in range(1, 37)}


def test_ecr_r_round_trip_keeps_all_36_codings() -> None:
    questionnaire = load("ecr-r")
    answers = ecr_r_answers()
    parsed = parse_form(questionnaire, post({f"q:{k}": [v] for k, v in answers.items()}))
    assert parsed.ok
    response = parsed.response
    assert response["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    got = {i["linkId"]: i["answer"] for i in response["item"]}
    assert list(got) == [str(n) for n in range(1, 37)]  # scores are the scorer's job
    for link_id, answer in got.items():
        ((coding,),) = [[a["valueCoding"] for a in answer]]
        assert (coding["system"], coding["code"]) == (AGREEMENT, answers[link_id])
    # item 7 -> 1, item 2 -> 7 (the labelled endpoints); item 1 -> 4 (unlabelled)
    assert got["7"][0]["valueCoding"]["display"] == "Strongly disagree"
    assert got["2"][0]["valueCoding"]["display"] == "Strongly agree"
    assert "display" not in got["1"][0]["valueCoding"]
    values = response_to_values(questionnaire, response)
    assert values == {f"q:{k}": [v] for k, v in answers.items()}


def test_validation_errors_keep_every_answer() -> None:
    questionnaire = load("ecr-r")
    sent = {f"q:{n}": [str(n % 7 + 1)] for n in range(1, 37)}
    del sent["q:5"]  # required, missing
    sent["q:9"] = ["8"]  # not an option on a 1-7 scale
    sent["q:12"] = ["3", "4"]  # two answers to a single-answer item
    parsed = parse_form(questionnaire, post(sent))
    assert parsed.errors == {
        "5": "Select an answer",
        "9": "Select one of the answers listed",
        "12": "Give only one answer",
    }
    assert parsed.values == sent
    assert [e.href for e in parsed.form.errors] == ["#q-5-0", "#q-9-0", "#q-12-0"]
    shown = {i.link_id: i.values for i in parsed.form.walk() if i.kind == "likert"}
    assert shown == {str(n): sent.get(f"q:{n}", []) for n in range(1, 37)}
    # the response still carries the 33 good answers (e.g. for a draft)
    assert len(parsed.response["item"]) == 33


def test_parse_errors_for_numbers_dates_and_lengths() -> None:
    bad = dict(SYNTHETIC_POST)
    bad.update(
        {
            "q:name": ["toolong"],
            "q:count": ["12a"],
            "q:size": ["1,5"],
            "q:day": ["2023-02-29"],
            "q:gate": ["maybe"],
            "o:colour": ["teal"],
        }
    )
    parsed = parse_form(SYNTHETIC, post(bad))
    assert parsed.errors == {
        "name": "Enter 5 characters or fewer",
        "count": "Enter a whole number, like 12",
        "size": "Enter a number, like 2.5",
        "day": "Enter a real date as YYYY-MM-DD, like 2024-03-27",
        "gate": "Select yes or no",
        "colour": "Select an answer or type your own, not both",
    }
    assert parsed.values == {k: v for k, v in bad.items() if k.startswith(("q:", "o:"))}
    shown = {i.link_id: (i.values, i.other, i.error) for i in parsed.form.walk()}
    assert shown["count"] == (["12a"], "", "Enter a whole number, like 12")
    assert shown["colour"] == (["r"], "teal", "Select an answer or type your own, not both")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2147483647", True),
        ("2147483648", False),
        ("-2147483648", True),
        (" 7 ", True),
        ("1e3", False),
        ("0000000012", True),
        ("1" * 5000, False),  # int() raised past 4300 digits: a 500
    ],
)
def test_integer_range(text: str, ok: bool) -> None:
    parsed = parse_form(SYNTHETIC, post({**SYNTHETIC_POST, "q:count": [text]}))
    assert ("count" not in parsed.errors) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2024", True),
        ("2024-13", False),
        ("2024-02", True),
        ("0000", False),
        ("\u0662\u0660\u0662\u0664-\u0660\u0663", False),  # Arabic-Indic digits: no FHIR date
    ],
)
def test_partial_dates(text: str, ok: bool) -> None:
    parsed = parse_form(SYNTHETIC, post({**SYNTHETIC_POST, "q:day": [text]}))
    assert ("day" not in parsed.errors) is ok


def test_open_choice_free_text_answer() -> None:
    parsed = parse_form(SYNTHETIC, post({**SYNTHETIC_POST, "q:colour": [], "o:colour": ["teal"]}))
    answers = {i["linkId"]: i.get("answer") for i in parsed.response["item"]}
    assert answers["colour"] == [{"valueString": "teal"}]
    assert response_to_values(SYNTHETIC, parsed.response)["o:colour"] == ["teal"]


def test_draft_skips_required_but_still_reports_bad_values() -> None:
    parsed = parse_form(SYNTHETIC, post({"q:size": ["x"]}), status="in-progress")
    assert parsed.response["status"] == "in-progress"
    assert parsed.errors == {"size": "Enter a number, like 2.5"}
    complete = parse_form(SYNTHETIC, post({"q:size": ["x"]}))
    assert complete.errors == {
        "count": "Enter an answer",
        "size": "Enter a number, like 2.5",
        "gate": "Select an answer",
    }  # "kinds" is required too, but disabled while the gate is unanswered


def test_enable_when_disabled_answers_are_dropped() -> None:
    questionnaire = load("ecr-rs")
    sent = {"q:mother.applies": ["false"], "q:mother.1": ["3"], "q:father.applies": ["true"]}
    sent |= {f"q:father.{n}": [str(n % 7 + 1)] for n in range(1, 10)}
    parsed = parse_form(questionnaire, post(sent), status="in-progress")
    assert parsed.errors == {}
    groups = {g["linkId"]: [i["linkId"] for i in g["item"]] for g in parsed.response["item"]}
    assert groups == {
        "mother": ["mother.applies"],
        "father": ["father.applies", *[f"father.{n}" for n in range(1, 10)]],
    }
    assert parsed.values["q:mother.1"] == ["3"]  # kept for re-display, not in the response
    # completed: the disabled mother items are not required, the enabled father ones are
    del sent["q:father.4"]
    assert parse_form(questionnaire, post(sent)).errors == {"father.4": "Select an answer"}


def test_read_only_items_are_never_taken_from_the_post() -> None:
    questionnaire = load("ecr-r")
    sent = {f"q:{n}": ["1"] for n in range(1, 37)} | {"q:scores.ecr-r-anxiety": ["1"]}
    linked = [i["linkId"] for i in parse_form(questionnaire, post(sent)).response["item"]]
    assert "scores" not in linked and len(linked) == 36


def test_unknown_status_is_refused() -> None:
    with pytest.raises(UnknownResponseStatus):
        parse_form(SYNTHETIC, post({}), status="amended")


ITEM_TYPES = ["group", "display", "choice", "open-choice", "boolean", "integer", "decimal"]
ITEM_TYPES += ["string", "text", "date", "dateTime", "quantity", "attachment", "", "no-such"]
LINK_IDS = st.sampled_from(["a", "b", "c", "a.b", "x y", "é"])
ANSWERS = st.sampled_from(
    [{"valueString": "s"}, {"valueCoding": {"code": "a"}}, {"valueInteger": 1}, {"nothing": 1}]
)
ITEM = st.fixed_dictionaries(
    {"linkId": LINK_IDS, "type": st.sampled_from(ITEM_TYPES)},
    optional={
        "text": st.text(max_size=5),
        "required": st.booleans(),
        "repeats": st.booleans(),
        "readOnly": st.booleans(),
        "answerOption": st.lists(ANSWERS, max_size=3),
        "answerValueSet": st.sampled_from(["#vs", "http://x", "#"]),
        "enableWhen": st.lists(
            st.fixed_dictionaries(
                {
                    "question": LINK_IDS,
                    "operator": st.sampled_from(["exists", "=", "!=", ">", "<", "?"]),
                },
                optional={"answerBoolean": st.booleans(), "answerString": st.text(max_size=2)},
            ),
            max_size=2,
        ),
        "enableBehavior": st.sampled_from(["all", "any"]),
    },
)
ITEMS = st.recursive(
    st.lists(ITEM, max_size=4),
    lambda children: st.lists(
        st.builds(lambda item, kids: {**item, "item": kids}, ITEM, children), max_size=3
    ),
    max_leaves=8,
)
POSTS = st.dictionaries(
    st.sampled_from(
        [
            *["q:a", "q:b", "q:c", "o:a", "q:a.b", "q:x y", "q:é", "other"],
            # fields of repeating-group instances, and instance counts
            *["q.1:a", "q.2:b", "o.1:a", "q.1.2:c", "n:a", "n:b", "n.1:c"],
        ]
    ),
    st.lists(st.text(max_size=4), max_size=3),
)


@given(items=ITEMS, posted=POSTS, status=st.sampled_from(STATUSES))
@settings(max_examples=60, deadline=None)
def test_any_questionnaire_shape_parses_without_crashing(
    items: list[dict[str, Any]], posted: dict[str, list[str]], status: str
) -> None:
    questionnaire = {"resourceType": "Questionnaire", "item": items}
    parsed = parse_form(questionnaire, post(posted), status=status)
    assert parsed.response["status"] == status
    assert parsed.values == {k: v for k, v in posted.items() if k != "other" and v}
    assert set(parsed.errors) <= {i.key for i in parsed.form.walk()}
    # what was accepted shows again as the same values, and parses to the same response
    again = response_to_values(questionnaire, parsed.response)
    link_ids = [i.link_id for i in walk(compiled_items(questionnaire))]
    if not parsed.errors and len(set(link_ids)) == len(link_ids):
        assert parse_form(questionnaire, post(again), status=status).response == parsed.response


def test_rq_best_fit_answer_carries_the_codesystem_display_without_the_paragraph() -> None:
    questionnaire = load("rq")
    parsed = parse_form(questionnaire, post({"q:best-fit": ["fearful"]}), status="in-progress")
    [item] = [i for i in parsed.response["item"] if i["linkId"] == "best-fit"]
    assert item["answer"] == [
        {
            "valueCoding": {
                "system": "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern",
                "code": "fearful",
                "display": "Fearful",
            }
        }
    ]
