"""Build QuestionnaireResponses for the scoring tests, from the Questionnaire's own items.

Kept independent of the scorer: enableWhen is evaluated here with the few operators the
instruments use (a boolean gate, ``=``), so a response the generator calls complete is complete
by a second reading of the data, not by the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

Json = dict[str, Any]


def canonical(questionnaire: Json) -> str:
    """``url|version`` of a Questionnaire, as a response names it."""
    return f"{questionnaire['url']}|{questionnaire['version']}"


def coding(item: Json, code: str) -> Json:
    """The answer option of ``item`` whose code is ``code``, as an answer."""
    for option in item["answerOption"]:
        if option["valueCoding"]["code"] == code:
            return {"valueCoding": dict(option["valueCoding"])}
    raise KeyError(f"item {item['linkId']} has no option {code}")


def _enabled(item: Json, answered: Mapping[str, object]) -> bool:
    conditions = item.get("enableWhen", [])
    results = []
    for c in conditions:
        assert c["operator"] == "=", "the test generator knows only '='"
        expected = c.get("answerBoolean", c.get("answerCoding", {}).get("code"))
        results.append(answered.get(c["question"]) == expected)
    if not results:
        return True
    return any(results) if item.get("enableBehavior") == "any" else all(results)


def build_response(
    questionnaire: Json,
    choose: Callable[[Json], object],
    status: str = "completed",
) -> Json:
    """A response whose answer to each enabled, writable item is ``choose(item)``.

    ``choose`` returns an option code (choice), a bool (boolean) or None (leave unanswered).
    Items disabled by enableWhen, and the children of disabled groups, are left out.
    """
    answered: dict[str, object] = {}

    def fill(items: list[Json]) -> list[Json]:
        out = []
        for item in items:
            if item.get("readOnly") or item["type"] == "display" or not _enabled(item, answered):
                continue
            if item["type"] == "group":
                children = fill(item.get("item", []))
                if children:
                    out.append({"linkId": item["linkId"], "item": children})
                continue
            value = choose(item)
            if value is None:
                continue
            answered[item["linkId"]] = value
            answer = {"valueBoolean": value} if item["type"] == "boolean" else coding(item, value)
            out.append({"linkId": item["linkId"], "answer": [answer]})
        return out

    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical(questionnaire),
        "status": status,
        "item": fill(questionnaire["item"]),
    }


def from_answers(
    questionnaire: Json, answers: Mapping[str, object], status: str = "completed"
) -> Json:
    """A response with exactly these answers (linkId -> option code or bool)."""
    return build_response(questionnaire, lambda item: answers.get(item["linkId"]), status)


def random_chooser(rng: random.Random) -> Callable[[Json], object]:
    """Answers every choice item with a random option and every gate at random."""

    def choose(item: Json) -> object:
        if item["type"] == "boolean":
            return rng.random() < 0.7
        if item["type"] == "choice":
            if not item.get("required") and rng.random() < 0.3:
                return None
            return rng.choice(item["answerOption"])["valueCoding"]["code"]
        return None

    return choose
