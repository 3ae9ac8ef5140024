"""The form's "12 of 36 answered": the questions on show and those answered, as the server
writes them into every page (counted by hand from the packaged Questionnaires)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smart_app.forms.questionnaire_form import build_form

ROOT = Path(__file__).resolve().parents[2]


def packaged(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "questionnaires" / name).read_text("utf-8"))
    return data


def test_a_fresh_ecr_r_has_none_of_36_answered() -> None:
    assert build_form(packaged("ecr-r.json")).progress == (0, 36)


def test_twelve_answers_posted_come_back_as_12_of_36() -> None:
    posted = {f"q:{n}": ["4"] for n in range(1, 13)}
    assert build_form(packaged("ecr-r.json"), posted).progress == (12, 36)


def test_a_blank_answer_is_not_an_answer() -> None:
    posted = {"q:1": ["4"], "q:2": ["  "]}
    assert build_form(packaged("ecr-r.json"), posted).progress == (1, 36)


def test_ecr_rs_counts_only_the_relationships_shown() -> None:
    # Fresh: the four "do you want to answer about..." questions; the statements are hidden.
    assert build_form(packaged("ecr-rs.json")).progress == (0, 4)
    # Yes for the mother shows her 9 statements: 4 + 9 asked; the yes and 3 statements answered.
    posted = {"q:mother.applies": ["true"], **{f"q:mother.{n}": ["5"] for n in (1, 2, 3)}}
    assert build_form(packaged("ecr-rs.json"), posted).progress == (4, 13)
