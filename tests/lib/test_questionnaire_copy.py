"""Whether an EHR's copy of a packaged Questionnaire means the same: the same items, in the same
order, with the same answer codes, displays and ordinal values. Each tampered copy below is made
from the packaged file by one edit, and the expected phrase is written from that edit."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.canonical import ORDINAL_VALUE_EXT
from attach_fhir.questionnaire_copy import differences

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
PACKAGED = {
    p.stem: json.loads(p.read_text("utf-8"))
    for p in sorted(QUESTIONNAIRES.glob("*.json"))
    if json.loads(p.read_text("utf-8"))["resourceType"] == "Questionnaire"
}
ECR_R = PACKAGED["ecr-r"]


def edited() -> dict[str, Any]:
    """A deep copy of the packaged ECR-R to tamper with."""
    return copy.deepcopy(ECR_R)


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_a_faithful_copy_with_its_own_title_and_metadata_means_the_same(name: str) -> None:
    theirs = copy.deepcopy(PACKAGED[name])
    theirs.pop("id", None)
    theirs["meta"] = {"versionId": "7", "lastUpdated": "2024-01-01T00:00:00Z"}
    theirs["title"] = "Our EHR's title"
    theirs["publisher"] = "Another hospital"
    assert list(differences(theirs, PACKAGED[name])) == []


def test_swapped_answer_labels_are_found_on_every_item() -> None:
    theirs = edited()
    questions = [i for i in theirs["item"] if "answerOption" in i]
    for item in questions:
        first, last = (
            item["answerOption"][0]["valueCoding"],
            item["answerOption"][-1]["valueCoding"],
        )
        first["display"], last["display"] = last["display"], first["display"]
    found = list(differences(theirs, ECR_R))
    assert (
        found[0]
        == 'item 1: answer 1 reads "Strongly agree" where the instrument has "Strongly disagree"'
    )
    assert (
        found[1]
        == 'item 1: answer 7 reads "Strongly disagree" where the instrument has "Strongly agree"'
    )
    assert len(found) == 2 * len(questions) == 2 * 36


def test_a_label_on_an_unlabelled_scale_point_is_found() -> None:
    theirs = edited()
    theirs["item"][4]["answerOption"][3]["valueCoding"]["display"] = "Neutral"
    assert list(differences(theirs, ECR_R)) == [
        'item 5: answer 4 reads "Neutral" where the instrument has ""'
    ]


def test_a_changed_code_and_a_changed_ordinal_value_are_found() -> None:
    theirs = edited()
    theirs["item"][0]["answerOption"][1]["valueCoding"]["code"] = "9"
    [ordinal] = [
        e
        for e in theirs["item"][8]["answerOption"][0]["extension"]
        if e["url"] == ORDINAL_VALUE_EXT
    ]
    ordinal["valueDecimal"] = 7
    assert list(differences(theirs, ECR_R)) == [
        "item 1: answer 2 has code 9, not 2",
        "item 9: answer 1 counts 7, not 1",
    ]


def test_reordered_missing_and_reworded_items_are_found() -> None:
    reordered = edited()
    reordered["item"][0], reordered["item"][1] = reordered["item"][1], reordered["item"][0]
    assert list(differences(reordered, ECR_R)) == ["item 2 stands where item 1 should be"]

    missing = edited()
    del missing["item"][-1]  # the calculated scores group
    assert list(differences(missing, ECR_R)) == ["item scores is missing"]

    reworded = edited()
    reworded["item"][2]["text"] = "I rarely worry about my partner leaving me."
    reworded["item"][3]["type"] = "string"
    assert list(differences(reworded, ECR_R)) == [
        "item 3 is worded differently",
        "item 4 is of type string, not choice",
    ]


def test_a_changed_condition_inside_a_group_is_found() -> None:
    ecr_rs = PACKAGED["ecr-rs"]
    theirs = copy.deepcopy(ecr_rs)
    path = [
        (g["linkId"], i["linkId"])
        for g in theirs["item"]
        for i in g.get("item", [])
        if "enableWhen" in i
    ]
    group_id, item_id = path[0]
    group = next(g for g in theirs["item"] if g["linkId"] == group_id)
    item = next(i for i in group["item"] if i["linkId"] == item_id)
    del item["enableWhen"]
    assert list(differences(theirs, ecr_rs)) == [f"item {item_id} differs in when it is asked"]


def test_a_long_label_is_quoted_short() -> None:
    theirs = edited()
    theirs["item"][0]["answerOption"][0]["valueCoding"]["display"] = "x" * 10_000
    [found] = differences(theirs, ECR_R)
    assert (
        found
        == f'item 1: answer 1 reads "{"x" * 59}\u2026" where the instrument has "Strongly disagree"'
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(item=JSON, option=JSON)
def test_any_json_in_a_copy_is_a_difference_never_an_error(item: Any, option: Any) -> None:
    theirs = edited()
    theirs["item"][0] = item
    theirs["item"][1]["answerOption"][0] = option
    if isinstance(item, dict) and item == ECR_R["item"][0]:
        return  # drew the packaged item itself
    assert list(differences(theirs, ECR_R)) != []
