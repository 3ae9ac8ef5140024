"""Input checks: every problem type, all reported at once, and the fast path agreeing with them."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.canonical import AGREEMENT_7_SYSTEM, questionnaire_url
from attach_fhir.instruments import library
from attach_fhir.response_check import InvalidResponse, _thorough_check, check_response
from attach_fhir.scoring_model import ScoringModel, compile_model
from tests.lib.scoring_examples import cycle, rs_target
from tests.lib.scoring_responses import from_answers

Json = dict[str, Any]


def instrument(qid: str) -> Json:
    return library().questionnaire(questionnaire_url(qid))


@cache
def model(qid: str) -> ScoringModel:
    return compile_model(instrument(qid))


def ecr_r(status: str = "completed") -> Json:
    return from_answers(instrument("ecr-r"), cycle(1, 36), status)


def problems(qid: str, response: object) -> list[dict[str, str]]:
    with pytest.raises(InvalidResponse) as caught:
        check_response(model(qid), response)
    error = caught.value
    assert error.to_dict()["problems"] == error.problems
    assert error.code == "invalid_response"
    return error.problems


def answer(code: str, system: str = AGREEMENT_7_SYSTEM) -> Json:
    return {"valueCoding": {"system": system, "code": code}}


def test_a_valid_response_passes_with_its_answers() -> None:
    checked = check_response(model("ecr-r"), ecr_r())
    assert checked.answers["1"] == "1"
    assert checked.answers["36"] == "1"  # item 36 -> ((36 - 1) mod 7) + 1 = 1
    assert len(checked.answers) == 36
    assert checked.repeated == {}
    assert checked.disabled == frozenset()


def test_unknown_link_id() -> None:
    response = ecr_r()
    response["item"].append({"linkId": "37", "answer": [answer("4")]})
    assert problems("ecr-r", response) == [
        {
            "code": "unknown-link-id",
            "path": "QuestionnaireResponse.item[36]",
            "message": "linkId '37' is not in the Questionnaire",
        }
    ]


def test_a_known_link_id_in_the_wrong_place() -> None:
    questionnaire = instrument("ecr-rs")
    response = from_answers(questionnaire, rs_target("mother", True, [4] * 9))
    response["item"].append({"linkId": "mother.1", "answer": [answer("4")]})
    [problem] = problems("ecr-rs", response)
    assert problem["code"] == "unknown-link-id"
    assert problem["message"] == "item 'mother.1' is not expected here"


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        (answer("8"), "QuestionnaireResponse.item[4].answer[0].valueCoding"),
        (
            answer("4", system="http://example.org/other"),
            "QuestionnaireResponse.item[4].answer[0].valueCoding",
        ),
        ({"valueString": "4"}, "QuestionnaireResponse.item[4].answer[0]"),
        ({"valueInteger": 4}, "QuestionnaireResponse.item[4].answer[0]"),
    ],
    ids=["code-outside-scale", "wrong-system", "string", "integer"],
)
def test_an_answer_outside_the_options(bad: Json, path: str) -> None:
    response = ecr_r()
    response["item"][4]["answer"] = [bad]
    [problem] = problems("ecr-r", response)
    assert (problem["code"], problem["path"]) == ("invalid-answer", path)


def test_a_gate_answered_with_a_coding_is_refused() -> None:
    questionnaire = instrument("ecr-rs")
    response = from_answers(questionnaire, rs_target("mother", True, [4] * 9))
    response["item"][0]["item"][0]["answer"] = [answer("1")]
    codes = [p["code"] for p in problems("ecr-rs", response)]
    # the gate no longer reads true, so the mother items are also answered while disabled
    assert codes[0] == "invalid-answer"
    assert set(codes[1:]) == {"disabled-answered"}


@pytest.mark.parametrize(
    "canonical",
    [
        "http://attach-fhir.org/fhir/Questionnaire/ecr|1.1.0",
        "http://attach-fhir.org/fhir/Questionnaire/ecr-r|0.9.0",
        "http://attach-fhir.org/fhir/Questionnaire/ecr-r",
        None,
    ],
)
def test_the_wrong_questionnaire(canonical: str | None) -> None:
    response = ecr_r()
    response["questionnaire"] = canonical
    [problem] = problems("ecr-r", response)
    assert problem["code"] == "wrong-questionnaire"
    assert problem["path"] == "QuestionnaireResponse.questionnaire"


def test_an_item_given_twice() -> None:
    response = ecr_r()
    response["item"].append(copy.deepcopy(response["item"][0]))
    [problem] = problems("ecr-r", response)
    assert problem == {
        "code": "duplicate",
        "path": "QuestionnaireResponse.item[36]",
        "message": "item '1' appears more than once",
    }


def test_two_answers_to_a_single_answer_item() -> None:
    response = ecr_r()
    response["item"][0]["answer"].append(answer("5"))
    [problem] = problems("ecr-r", response)
    assert problem["code"] == "duplicate"
    assert problem["path"] == "QuestionnaireResponse.item[0].answer"


def test_missing_required_items_in_a_completed_response() -> None:
    response = ecr_r()
    del response["item"][4]  # item "5"
    del response["item"][9]  # item "11"
    assert problems("ecr-r", response) == [
        {
            "code": "missing-required",
            "path": f"QuestionnaireResponse.item.where(linkId='{n}')",
            "message": f"required item '{n}' has no answer",
        }
        for n in ("5", "11")
    ]


def test_an_in_progress_response_may_leave_required_items_out() -> None:
    response = ecr_r("in-progress")
    del response["item"][4]
    checked = check_response(model("ecr-r"), response)
    assert "5" not in checked.answers


def test_items_disabled_by_enable_when_are_not_required() -> None:
    questionnaire = instrument("ecr-rs")
    answers = {
        **rs_target("mother", False, None),
        **rs_target("father", True, [3] * 9),
        **rs_target("partner", False, None),
        **rs_target("friend", False, None),
    }
    checked = check_response(model("ecr-rs"), from_answers(questionnaire, answers))
    assert checked.disabled == {
        f"{t}.{n}" for t in ("mother", "partner", "friend") for n in range(1, 10)
    }


def test_items_disabled_by_enable_when_must_not_be_answered() -> None:
    questionnaire = instrument("ecr-rs")
    response = from_answers(questionnaire, rs_target("mother", True, [4] * 9))
    response["item"][0]["item"][0]["answer"] = [{"valueBoolean": False}]
    found = problems("ecr-rs", response)
    assert [p["code"] for p in found] == ["disabled-answered"] * 9
    assert {p["path"] for p in found} == {
        f"QuestionnaireResponse.item[0].item[{n}]" for n in range(1, 10)
    }


def test_a_group_takes_no_answer() -> None:
    questionnaire = instrument("ecr-rs")
    response = from_answers(questionnaire, rs_target("mother", False, None))
    response["item"][0]["answer"] = [{"valueBoolean": True}]
    [problem] = problems("ecr-rs", response)
    assert problem["path"] == "QuestionnaireResponse.item[0].answer"
    assert problem["message"] == "a group item takes no answer"


@pytest.mark.parametrize(
    ("response", "path"),
    [
        ([], "QuestionnaireResponse"),
        ({**ecr_r(), "resourceType": "Patient"}, "QuestionnaireResponse.resourceType"),
        ({**ecr_r(), "status": "done"}, "QuestionnaireResponse.status"),
        ({**ecr_r(), "status": "entered-in-error"}, "QuestionnaireResponse.status"),
        ({**ecr_r(), "item": {"linkId": "1"}}, "QuestionnaireResponse"),
        ({**ecr_r(), "item": ["1"]}, "QuestionnaireResponse.item[0]"),
    ],
    ids=["not-an-object", "resource-type", "status", "entered-in-error", "item-object", "item-str"],
)
def test_malformed_responses(response: object, path: str) -> None:
    found = problems("ecr-r", response)
    assert found[0]["path"] == path


def test_every_problem_is_reported_in_one_error() -> None:
    response = ecr_r()
    response["questionnaire"] = "http://attach-fhir.org/fhir/Questionnaire/prfq|1.1.0"
    response["item"][0]["answer"] = [answer("9")]
    response["item"].append({"linkId": "x"})
    del response["item"][20]  # item "21"
    found = problems("ecr-r", response)
    # The response's own problems first (an item the Questionnaire cannot place among them),
    # then the items' in the Questionnaire's order.
    assert [p["code"] for p in found] == [
        "wrong-questionnaire",
        "unknown-link-id",
        "invalid-answer",
        "missing-required",
    ]


# The fast path must accept exactly what the thorough walk accepts.

MUTATIONS = [
    lambda r, i: r["item"].pop(i),
    lambda r, i: r["item"].append(copy.deepcopy(r["item"][i])),
    lambda r, i: r["item"][i]["answer"].append(answer("2")),
    lambda r, i: r["item"][i].update(answer=[]),
    lambda r, i: r["item"][i].update(answer=answer("3")),
    lambda r, i: r["item"][i]["answer"][0]["valueCoding"].update(code="0"),
    lambda r, i: r["item"][i]["answer"][0]["valueCoding"].pop("system"),
    lambda r, i: r["item"][i]["answer"][0].update(item=[]),
    lambda r, i: r["item"][i]["answer"][0].update(item=[{"linkId": "2"}]),
    lambda r, i: r["item"][i]["answer"][0].update(valueString="x"),
    lambda r, i: r["item"][i].update(linkId=int(r["item"][i]["linkId"])),
    lambda r, i: r["item"][i].update(item=[{"linkId": "2"}]),
    lambda r, i: r["item"][i].update(text="label"),
    lambda r, i: r["item"].insert(i, "junk"),
    lambda r, i: r.update(status="in-progress"),
    lambda r, i: r.update(item=r["item"][:i]),
]


def outcome(check: Any, checked_model: ScoringModel, response: Json) -> object:
    try:
        result = check(checked_model, copy.deepcopy(response))
    except InvalidResponse as error:
        return ("invalid", json.dumps(error.problems))
    return ("valid", dict(result.answers), dict(result.repeated), result.disabled)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(MUTATIONS) - 1), st.integers(0, 30)), min_size=0, max_size=3
    )
)
def test_the_fast_path_agrees_with_the_thorough_walk(steps: list[tuple[int, int]]) -> None:
    response = ecr_r()
    for mutation, index in steps:
        if index < len(response["item"]) and isinstance(response["item"][index], dict):
            try:
                MUTATIONS[mutation](response, index)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError):
                pass  # a mutation that does not fit the shape an earlier one left is skipped
    checked_model = model("ecr-r")
    assert outcome(check_response, checked_model, response) == outcome(
        _thorough_check, checked_model, response
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"resourceType": st.just("QuestionnaireResponse"), "status": st.just("completed")},
        optional={"item": json_values, "questionnaire": json_values},
    )
    | json_values
)
def test_arbitrary_json_is_either_scored_or_refused_with_problems(response: object) -> None:
    for qid in ("ecr-r", "ecr-rs"):
        try:
            check_response(model(qid), response)
        except InvalidResponse as error:
            assert error.problems
            assert all(set(p) == {"code", "path", "message"} for p in error.problems)
