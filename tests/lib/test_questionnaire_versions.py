"""Responses to an earlier published version still score, and score as they did.

The library answers ``url|1.0.0`` with 1.1.0 only because 1.1.0 declares that it scores 1.0.0
identically; each declaration is checked here against the published 1.0.0 file
(tests/fixtures/data/published/), which scores the responses a second time on its own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.instruments import UnknownInstrument, earlier_versions, library
from attach_fhir.response_check import InvalidResponse
from attach_fhir.scoring import Scorer
from tests.lib.scoring_responses import build_response, random_chooser

Json = dict[str, Any]
PUBLISHED = Path(__file__).parents[1] / "fixtures" / "data" / "published"
SCORING_MODEL = "http://attach-fhir.org/fhir/StructureDefinition/scoring-model"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"


def _published() -> list[Json]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(PUBLISHED.glob("*.json"))]


def _walk(items: list[Json]) -> list[Json]:
    out = []
    for item in items:
        out.append(item)
        out += _walk(item.get("item", []))
    return out


def _ordinals(option: Json) -> list[object]:
    exts = option.get("extension", []) + option.get("valueCoding", {}).get("extension", [])
    return [e.get("valueDecimal") for e in exts if e.get("url") == ORDINAL]


def scored_part(questionnaire: Json) -> Json:
    """What decides a score: the scoring model and every answerable item's shape and options.

    Wording, displays and display items are left out: they may change between versions that
    score the same.
    """
    model = [e["valueString"] for e in questionnaire["extension"] if e["url"] == SCORING_MODEL]
    items = [
        {
            "linkId": item["linkId"],
            "type": item["type"],
            "required": item.get("required", False),
            "repeats": item.get("repeats", False),
            "readOnly": item.get("readOnly", False),
            "enableWhen": item.get("enableWhen"),
            "enableBehavior": item.get("enableBehavior"),
            "options": [
                (o["valueCoding"]["system"], o["valueCoding"]["code"], _ordinals(o))
                for o in item.get("answerOption", [])
            ],
        }
        for item in _walk(questionnaire["item"])
        if item["type"] != "display"
    ]
    return {"model": model, "items": items}


def test_every_declared_earlier_version_has_its_published_file() -> None:
    published = {(q["url"], q["version"]) for q in _published()}
    declared = [
        (q["url"], v)
        for q in library().files.values()
        if q["resourceType"] == "Questionnaire"
        for v in earlier_versions(q)
    ]
    assert declared, "no Questionnaire declares an earlier version"
    assert set(declared) <= published


@pytest.mark.parametrize("old", _published(), ids=lambda q: f"{q['id']}-{q['version']}")
def test_the_newer_version_keeps_everything_that_decides_a_score(old: Json) -> None:
    current = library().questionnaire(f"{old['url']}|{old['version']}")
    assert current["version"] != old["version"]
    assert old["version"] in earlier_versions(current)
    assert scored_part(current) == scored_part(old)


@pytest.mark.parametrize("old", _published(), ids=lambda q: f"{q['id']}-{q['version']}")
def test_a_response_to_the_earlier_version_scores_as_it_did(old: Json) -> None:
    rng = random.Random(f"{old['id']}-{old['version']}")
    by_the_library = Scorer(library().questionnaire(f"{old['url']}|{old['version']}"))
    by_the_published_file = Scorer(old)
    for _ in range(25):
        response = build_response(old, random_chooser(rng))
        assert response["questionnaire"] == f"{old['url']}|{old['version']}"
        then = by_the_published_file.score(response, prorate=True).scores
        now = by_the_library.score(response, prorate=True).scores
        assert {c: (s.value, s.status) for c, s in now.items()} == {
            c: (s.value, s.status) for c, s in then.items()
        }


def test_a_version_nobody_declared_is_still_unknown_and_not_scored() -> None:
    old = _published()[0]
    with pytest.raises(UnknownInstrument):
        library().questionnaire(f"{old['url']}|0.9.0")
    response = build_response(old, random_chooser(random.Random(1)))
    response["questionnaire"] = f"{old['url']}|0.9.0"
    with pytest.raises(InvalidResponse) as caught:
        Scorer(library().questionnaire(old["url"])).score(response)
    assert "wrong-questionnaire" in {p["code"] for p in caught.value.problems}


def test_a_questionnaire_that_is_no_string_is_refused_not_crashed() -> None:
    current = library().questionnaire(_published()[0]["url"])
    response = build_response(current, random_chooser(random.Random(2)))
    response["questionnaire"] = [response["questionnaire"]]
    with pytest.raises(InvalidResponse):
        Scorer(current).score(response)
