"""What the portable-score tests share: the packaged Questionnaires with calculated items, the
answer patterns each renderer is given, and the comparison of a renderer's calculated answers
with the Python scorer's (tests/e2e/test_lhc_forms_scores.py, test_smart_forms_scores.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.expressions import calculated_items
from attach_fhir.scoring import Scorer
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import build_response, from_answers, random_chooser

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
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


def answers_held(response: Json) -> dict[str, Json]:
    """linkId -> the single answer a renderer's response holds for it, at any depth."""
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


def differences(
    questionnaire: Json, response: Json, held: dict[str, Json], renderer: str
) -> list[str]:
    """Each calculated item whose value in the renderer is not the Python scorer's."""
    scores = Scorer(questionnaire).score(response).scores
    out = []
    for item, _ in calculated_items(questionnaire):
        link_id, score = item["linkId"], scores[score_code(item)]
        got = held.get(link_id)
        if score.category is not None:
            if got is None or got.get("valueCoding", {}).get("code") != score.category["code"]:
                out.append(f"{link_id}: {renderer} {got}, Python {dict(score.category)}")
            elif {k: got["valueCoding"].get(k) for k in ("system", "display")} != {
                k: score.category.get(k) for k in ("system", "display")
            }:
                out.append(f"{link_id}: {renderer} {got['valueCoding']}, Python {score.category}")
        elif score.value is None:
            if got is not None:
                out.append(f"{link_id}: {renderer} {got}, Python {score.status}")
        else:
            number = None if got is None else got.get("valueDecimal", got.get("valueInteger"))
            if number is None or abs(float(number) - float(score.value)) > 1e-9:
                out.append(f"{link_id}: {renderer} {got}, Python {score.value}")
    return out
