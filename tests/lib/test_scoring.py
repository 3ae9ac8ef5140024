"""The Python scorer against hand-computed scores, missing data, prorating and bad models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from attach_fhir.canonical import ATTACHMENT_PATTERN_SYSTEM, SCORING_MODEL_EXT, questionnaire_url
from attach_fhir.instruments import library
from attach_fhir.scoring import Scorer, score_response
from attach_fhir.scoring_model import InvalidScoringModel, compile_model
from tests.lib.scoring_examples import EXAMPLES, Example, cycle
from tests.lib.scoring_responses import canonical, from_answers

Json = dict[str, Any]


def instrument(qid: str) -> Json:
    return library().questionnaire(questionnaire_url(qid))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_fixed_examples_match_the_hand_computed_scores(example: Example) -> None:
    questionnaire = instrument(example.instrument)
    result = score_response(questionnaire, from_answers(questionnaire, example.answers))
    for code, expected in example.expected.items():
        score = result.scores[code]
        assert score.status == "final", code
        if isinstance(expected, str):
            assert score.value == expected
            # The category carries the attachment-pattern CodeSystem's display ("Secure").
            assert score.category == {
                "system": ATTACHMENT_PATTERN_SYSTEM,
                "code": expected,
                "display": expected.capitalize(),
            }
        else:
            assert score.value == pytest.approx(expected, abs=1e-12), code
    for code in example.not_applicable:
        assert result.scores[code].status == "not-applicable"
        assert result.scores[code].value is None
    assert set(result.scores) == set(example.expected) | example.not_applicable


def test_ecr_rs_scores_carry_their_focus_and_skipped_targets_are_not_applicable() -> None:
    example = next(e for e in EXAMPLES if e.instrument == "ecr-rs")
    questionnaire = instrument("ecr-rs")
    out = score_response(questionnaire, from_answers(questionnaire, example.answers)).to_json()
    assert out["scores"]["ecr-rs-mother-anxiety"]["focus"] == "mother"
    assert out["scores"]["ecr-rs-father-avoidance"] == {
        "value": None,
        "status": "not-applicable",
        "answered": 0,
        "expected": 6,
        "focus": "father",
        "reason": "enableWhen disables every item",
    }


def test_the_result_names_the_questionnaire_version_and_the_algorithm() -> None:
    questionnaire = instrument("ecr-r")
    model = next(
        json.loads(e["valueString"])
        for e in questionnaire["extension"]
        if e["url"] == SCORING_MODEL_EXT
    )
    response = from_answers(questionnaire, cycle(1, 36))
    out = score_response(questionnaire, response).to_json()
    assert out["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    assert out["algorithm"] == model["algorithm"]
    assert out["algorithm"]["id"] == "ecr-r-subscale-means"
    assert json.loads(json.dumps(out)) == out


def in_progress(qid: str, answers: dict[str, object]) -> tuple[Json, Json]:
    questionnaire = instrument(qid)
    return questionnaire, from_answers(questionnaire, answers, status="in-progress")


def test_a_subscale_with_an_item_missing_is_not_scored_by_default() -> None:
    answers = cycle(1, 36, {n: 7 for n in range(1, 37)})
    del answers["5"]
    questionnaire, response = in_progress("ecr-r", answers)
    out = score_response(questionnaire, response).to_json()["scores"]
    assert out["ecr-r-anxiety"] == {
        "value": None,
        "status": "not-scored",
        "answered": 17,
        "expected": 18,
        "reason": "1 of 18 items unanswered",
        "missing": ["5"],
    }
    # the other subscale is complete: 54 / 18 as in the all-7 example
    assert out["ecr-r-avoidance"]["status"] == "final"
    assert out["ecr-r-avoidance"]["value"] == pytest.approx(54 / 18)


def test_prorating_is_explicit_and_recorded_on_the_score() -> None:
    answers = cycle(1, 36, {n: 7 for n in range(1, 37)})
    del answers["5"]
    questionnaire, response = in_progress("ecr-r", answers)
    score = score_response(questionnaire, response, prorate=True).to_json()["scores"]
    # 17 answered: 15 plain x 7 + items 9, 11 reversed to 1 = 107, over 17 answered
    assert score["ecr-r-anxiety"] == {
        "value": pytest.approx(107 / 17),
        "status": "prorated",
        "prorated": True,
        "answered": 17,
        "expected": 18,
    }
    assert score["ecr-r-avoidance"]["status"] == "final"
    assert "prorated" not in score["ecr-r-avoidance"]


def test_prorating_refuses_below_the_minimum_answered_fraction() -> None:
    answers = cycle(1, 36)
    for n in ("1", "2", "3", "4"):  # 14 of 18 answered = 0.78 < the default 0.8
        del answers[n]
    questionnaire, response = in_progress("ecr-r", answers)
    scorer = Scorer(questionnaire)
    assert scorer.score(response, prorate=True).scores["ecr-r-anxiety"].status == "not-scored"
    relaxed = scorer.score(response, prorate=True, min_answered=0.75).scores["ecr-r-anxiety"]
    assert (relaxed.status, relaxed.answered) == ("prorated", 14)
    with pytest.raises(ValueError):
        scorer.score(response, prorate=True, min_answered=0)


def test_a_derived_score_waits_for_the_scores_it_combines() -> None:
    questionnaire, response = in_progress("rq", {"secure": "6", "preoccupied": "3"})
    out = score_response(questionnaire, response, prorate=True).to_json()["scores"]
    # a one-item score with its item missing cannot be prorated
    assert out["rq-fearful"]["status"] == "not-scored"
    assert out["rq-model-of-self"]["status"] == "not-scored"
    assert "rq-fearful" in out["rq-model-of-self"]["reason"]
    assert out["rq-secure"]["value"] == 6.0


def test_a_category_from_prorated_means_is_marked_prorated() -> None:
    answers = {k: v for k, v in cycle(1, 36, {n: 4 for n in range(1, 37)}).items() if k != "2"}
    questionnaire, response = in_progress("ecr", answers)
    out = score_response(questionnaire, response, prorate=True).to_json()["scores"]
    # every answer 4 -> both means 4 -> fearful (see scoring_examples "ecr all 4")
    assert out["ecr-anxiety"]["status"] == "prorated"
    assert out["ecr-category"]["value"] == "fearful"
    assert out["ecr-category"]["status"] == "prorated"
    assert (out["ecr-category"]["answered"], out["ecr-category"]["expected"]) == (35, 36)


# A toy, non-clinical Questionnaire: adding an instrument is adding data, and reverse keys use the
# item's own range (0-4 here, so reversed = 4 - x).
def toy(model: Json | None = None, options: int = 5) -> Json:
    def scale() -> list[Json]:
        return [
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                        "valueDecimal": p,
                    }
                ],
                "valueCoding": {"system": "urn:toy", "code": f"p{p}"},
            }
            for p in range(options)
        ]

    model = model or {
        "algorithm": {"id": "toy", "version": "0.1.0"},
        "scores": [
            {
                "code": "toy-mean",
                "linkId": "scores.toy-mean",
                "method": "mean",
                "items": [{"linkId": "a"}, {"linkId": "b", "reverse": True}],
            },
            {
                "code": "toy-twice",
                "linkId": "scores.toy-twice",
                "method": "linear",
                "terms": [{"score": "toy-mean", "weight": 2}],
                "constant": 1,
            },
        ],
    }
    return {
        "resourceType": "Questionnaire",
        "url": "urn:toy",
        "version": "0.1.0",
        "extension": [{"url": SCORING_MODEL_EXT, "valueString": json.dumps(model)}],
        "item": [
            {"linkId": "a", "type": "choice", "answerOption": scale()},
            {"linkId": "b", "type": "choice", "answerOption": scale()},
        ],
    }


def toy_response(a: str, b: str) -> Json:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "urn:toy|0.1.0",
        "status": "completed",
        "item": [
            {"linkId": "a", "answer": [{"valueCoding": {"system": "urn:toy", "code": a}}]},
            {"linkId": "b", "answer": [{"valueCoding": {"system": "urn:toy", "code": b}}]},
        ],
    }


def test_a_new_instrument_is_only_data_and_reverses_on_its_own_range() -> None:
    result = score_response(toy(), toy_response("p3", "p1"))
    # mean(3, (0 + 4) - 1) = mean(3, 3) = 3; twice = 2 x 3 + 1 = 7
    assert result.scores["toy-mean"].value == 3.0
    assert result.scores["toy-twice"].value == 7.0
    assert result.algorithm_id == "toy"


def bad_model(change: Any) -> Json:
    questionnaire = toy()
    model = json.loads(questionnaire["extension"][0]["valueString"])
    change(model)
    questionnaire["extension"][0]["valueString"] = json.dumps(model)
    return questionnaire


@pytest.mark.parametrize(
    ("questionnaire", "needle"),
    [
        (
            bad_model(lambda m: m["scores"][1]["terms"].append({"score": "nope", "weight": 1})),
            "nope",
        ),
        (
            bad_model(
                lambda m: m["scores"][1]["terms"].append({"score": "toy-twice", "weight": 1})
            ),
            "depends on itself",
        ),
        (bad_model(lambda m: m["scores"][0]["items"].append({"linkId": "zz"})), "'zz'"),
        (bad_model(lambda m: m["scores"][0].update(method="median")), "median"),
        (bad_model(lambda m: m.pop("algorithm")), "malformed"),
        ({**toy(), "extension": []}, "scoring-model extension"),
    ],
    ids=["unknown-score", "cycle", "unknown-item", "unknown-method", "no-algorithm", "absent"],
)
def test_a_broken_scoring_model_is_refused_with_its_problems(
    questionnaire: Json, needle: str
) -> None:
    with pytest.raises(InvalidScoringModel) as caught:
        compile_model(questionnaire)
    assert any(needle in p for p in caught.value.details["problems"])


def test_an_option_without_an_ordinal_value_is_refused() -> None:
    questionnaire = toy()
    questionnaire["item"][0]["answerOption"][2]["extension"] = []
    with pytest.raises(InvalidScoringModel) as caught:
        compile_model(questionnaire)
    assert caught.value.details["problems"] == [
        "score 'toy-mean': item 'a' needs an ordinalValue on every option"
    ]


def test_every_packaged_questionnaire_compiles_with_a_score_per_code() -> None:
    for summary in library().instruments():
        model = compile_model(library().questionnaire(summary.url))
        assert model.questionnaire == canonical(library().questionnaire(summary.url))
        assert {s.code for s in model.scores} == set(summary.score_codes)
