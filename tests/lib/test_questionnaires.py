"""The committed Questionnaires: valid, verbatim, keyed as published, and their SDC expressions
compute the hand-computed scores."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from attach_fhir.expressions import evaluate_scores
from attach_fhir.fhir_models import CodeSystem, Questionnaire
from attach_fhir.validation import validate_resources
from tests.lib.instrument_data import (
    QUESTIONNAIRES,
    REPO,
    SOURCES,
    TARGETS,
    load,
    model,
    questionnaire,
    require_shared,
    response,
    shared,
    walk,
)

BASE = "http://attach-fhir.org/fhir"
FILES = sorted(p.name for p in QUESTIONNAIRES.glob("*.json"))
ALL_SCORE_CODES = {
    "ecr-r-anxiety", "ecr-r-avoidance", "ecr-anxiety", "ecr-avoidance", "ecr-category",
    "rq-secure", "rq-fearful", "rq-preoccupied", "rq-dismissing", "rq-model-of-self",
    "rq-model-of-other", "prfq-pre-mentalizing", "prfq-certainty", "prfq-interest-curiosity",
    *(f"ecr-rs-{t}-{d}" for t in TARGETS for d in ("anxiety", "avoidance")),
}  # fmt: skip


def test_the_library_holds_the_five_instruments_and_their_codesystems() -> None:
    kinds = {name: load(QUESTIONNAIRES / name)["resourceType"] for name in FILES}
    assert sorted(n for n, k in kinds.items() if k == "Questionnaire") == [
        "attachment-journal.json",
        "ecr-r.json",
        "ecr-rs.json",
        "ecr.json",
        "prfq.json",
        "rq.json",
    ]
    assert {
        "codesystem-agreement-7.json",
        "codesystem-attach-scores.json",
        "codesystem-attachment-pattern.json",
    } <= {n for n, k in kinds.items() if k == "CodeSystem"}


@pytest.mark.parametrize("name", FILES)
def test_every_file_parses_as_an_r4_resource(name: str) -> None:
    data = load(QUESTIONNAIRES / name)
    kind = Questionnaire if data["resourceType"] == "Questionnaire" else CodeSystem
    assert kind.model_validate(data).id == name.removeprefix("codesystem-").removesuffix(".json")


def test_every_file_passes_the_validator() -> None:
    resources = {name: load(QUESTIONNAIRES / name) for name in FILES}
    assert [str(p) for p in validate_resources(resources)] == []


def test_the_journal_is_an_unscored_questionnaire_marked_as_not_validated() -> None:
    journal = load(QUESTIONNAIRES / "attachment-journal.json")
    urls = [e["url"] for e in journal["extension"]]
    assert f"{BASE}/StructureDefinition/not-a-validated-instrument" in urls
    assert f"{BASE}/StructureDefinition/scoring-model" not in urls
    assert "not a validated instrument" in journal["title"]
    assert "NOT a validated instrument" in journal["description"]
    assert journal["status"] == "active"
    assert journal["useContext"][0]["valueRange"]["low"]["value"] == 12  # adolescents, adults
    # Without the marker the same file is an instrument missing its scoring model.
    unmarked = dict(journal, extension=journal["extension"][1:])
    assert [str(p) for p in validate_resources({"j.json": unmarked}, set())] == [
        "j.json#extension: expected one "
        f"{BASE}/StructureDefinition/scoring-model extension, found 0"
    ]
    # A marked Questionnaire may not carry a scoring model as well.
    both = dict(questionnaire("rq"))
    both["extension"] = [*both["extension"], journal["extension"][0]]
    assert [str(p) for p in validate_resources({"rq.json": both})] == [
        f"rq.json#extension: {BASE}/StructureDefinition/not-a-validated-instrument and a "
        "scoring model exclude each other"
    ]


def test_score_codesystem_holds_exactly_the_scores_the_models_produce() -> None:
    concepts = load(QUESTIONNAIRES / "codesystem-attach-scores.json")["concept"]
    produced = {s["code"] for qid in SOURCES for s in model(questionnaire(qid))["scores"]}
    assert produced == ALL_SCORE_CODES
    assert {c["code"] for c in concepts} == ALL_SCORE_CODES
    assert all(c["display"] and c["definition"] for c in concepts)


def _shared_item_for(qid: str, link_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
    by_number = {str(i["number"]): i for i in data["items"]}
    if qid == "rq":
        return next((i for i in data["items"] if i["subscale"] == link_id), None)
    if qid == "ecr-rs":
        target, _, number = link_id.partition(".")
        return by_number.get(number) if target in TARGETS else None
    return by_number.get(link_id)


@pytest.mark.parametrize("qid", sorted(SOURCES))
def test_item_wording_is_the_reference_wording_verbatim(qid: str) -> None:
    data = shared(qid)
    q = questionnaire(qid)
    scored = [i for i in walk(q["item"]) if i["type"] == "choice" and i["linkId"] != "best-fit"]
    scored = [i for i in scored if not i.get("readOnly")]
    per_copy = {"ecr-rs": 4}.get(qid, 1)
    assert len(scored) == len(data["items"]) * per_copy
    for item in scored:
        source = _shared_item_for(qid, item["linkId"], data)
        assert source is not None, item["linkId"]
        assert item["text"] == source["text"]


@pytest.mark.parametrize("qid", sorted(SOURCES))
def test_no_curly_quotes_anywhere(qid: str) -> None:
    text = (QUESTIONNAIRES / f"{qid}.json").read_text(encoding="utf-8")
    assert not set(text) & set("\u2018\u2019\u201c\u201d")


# (Questionnaire, reference subscale, score code) for every mean score of a subscale.
SUBSCALES = [
    ("ecr-r", "anxiety", "ecr-r-anxiety"),
    ("ecr-r", "avoidance", "ecr-r-avoidance"),
    ("ecr", "anxiety", "ecr-anxiety"),
    ("ecr", "avoidance", "ecr-avoidance"),
    ("prfq", "pre_mentalizing", "prfq-pre-mentalizing"),
    ("prfq", "certainty_about_mental_states", "prfq-certainty"),
    ("prfq", "interest_and_curiosity", "prfq-interest-curiosity"),
    *(("ecr-rs", d, f"ecr-rs-{t}-{d}") for t in TARGETS for d in ("anxiety", "avoidance")),
]


@pytest.mark.parametrize(("qid", "subscale", "code"), SUBSCALES)
def test_subscale_items_and_reverse_keys_equal_the_reference(
    qid: str, subscale: str, code: str
) -> None:
    reference = shared(qid)["subscales"][subscale]
    [entry] = [s for s in model(questionnaire(qid))["scores"] if s["code"] == code]
    prefix = f"{code.split('-')[2]}." if qid == "ecr-rs" else ""
    assert [i["linkId"] for i in entry["items"]] == [f"{prefix}{n}" for n in reference["items"]]
    reversed_ = [i["linkId"] for i in entry["items"] if i.get("reverse")]
    assert reversed_ == [f"{prefix}{n}" for n in reference["reverse"]]
    assert entry["method"] == "mean" and entry["range"] == [1, 7]


def test_rq_dimensions_follow_the_published_formulas() -> None:
    scores = {s["code"]: s for s in model(questionnaire("rq"))["scores"]}
    weights = {t["score"]: t["weight"] for t in scores["rq-model-of-self"]["terms"]}
    # (Secure + Dismissing) - (Fearful + Preoccupied)
    assert weights == {"rq-secure": 1, "rq-dismissing": 1, "rq-fearful": -1, "rq-preoccupied": -1}
    weights = {t["score"]: t["weight"] for t in scores["rq-model-of-other"]["terms"]}
    # (Secure + Preoccupied) - (Fearful + Dismissing)
    assert weights == {"rq-secure": 1, "rq-preoccupied": 1, "rq-fearful": -1, "rq-dismissing": -1}
    for style in ("secure", "fearful", "preoccupied", "dismissing"):
        assert scores[f"rq-{style}"]["items"] == [{"linkId": style}]


def test_ecr_category_uses_the_published_fisher_coefficients() -> None:
    [entry] = [s for s in model(questionnaire("ecr"))["scores"] if s["code"] == "ecr-category"]
    functions = {
        c["category"]: (c["terms"][0]["weight"], c["terms"][1]["weight"], c["constant"])
        for c in entry["candidates"]
    }
    # ecr-36.json, classification.functions: a*Av + b*Ax - c
    assert functions == {
        "secure": (3.2893296, 5.4725318, -11.5307833),
        "fearful": (7.2371075, 8.1776448, -32.3553266),
        "preoccupied": (3.9246754, 9.7102446, -28.4573220),
        "dismissing": (7.3654621, 4.9392039, -22.2281088),
    }
    assert [t["score"] for t in entry["candidates"][0]["terms"]] == [
        "ecr-avoidance",
        "ecr-anxiety",
    ]


def test_unverified_parts_are_not_encoded() -> None:
    codes = {s["code"] for s in model(questionnaire("ecr-rs"))["scores"]}
    assert not any("global" in c for c in codes)
    assert {s["code"] for s in model(questionnaire("ecr-r"))["scores"]} == {
        "ecr-r-anxiety",
        "ecr-r-avoidance",
    }


def _labels(qid: str) -> dict[str, str]:
    item = next(i for i in walk(questionnaire(qid)["item"]) if i["linkId"] in ("1", "secure"))
    return {
        o["valueCoding"]["code"]: o["valueCoding"]["display"]
        for o in item["answerOption"]
        if "display" in o["valueCoding"]
    }


def test_only_verified_scale_labels_are_shown() -> None:
    # ECR-R endpoints and RQ anchors are verified in 2 sources; intermediate labels never are.
    assert _labels("ecr-r") == {"1": "Strongly disagree", "7": "Strongly agree"}
    assert _labels("rq") == {"1": "Disagree strongly", "7": "Agree strongly"}
    # ECR-36 labels unverified, PRFQ endpoints single source.
    assert _labels("ecr") == {} and _labels("prfq") == {}


WORDING_SOURCE = {
    "url": "http://attach-fhir.org/fhir/StructureDefinition/wording-source",
    "valueCode": "attach-fhir",
}


@pytest.mark.parametrize("qid", ["ecr", "ecr-rs", "prfq"])
def test_unlabelled_scales_say_which_end_is_agree_in_our_own_words(qid: str) -> None:
    # Anchor wording unverified, 7 points and agreement direction verified: one display item
    # first, marked as the app's wording, and still no option label.
    first = questionnaire(qid)["item"][0]
    assert first == {
        "linkId": "direction",
        "text": "Rate each statement from 1 (disagree) to 7 (agree).",
        "type": "display",
        "extension": [WORDING_SOURCE],
    }
    assert shared(qid)["response_scale"]["points"] == 7
    # The scale's options; the ECR category's options name patterns and carry their displays.
    options = [
        o
        for i in walk(questionnaire(qid)["item"])
        for o in i.get("answerOption", [])
        if o["valueCoding"]["system"] == f"{BASE}/CodeSystem/agreement-7"
    ]
    assert options and not any("display" in o["valueCoding"] for o in options)


@pytest.mark.parametrize("qid", ["ecr-r", "rq"])
def test_verified_labels_need_no_direction_line(qid: str) -> None:
    assert not [i for i in walk(questionnaire(qid)["item"]) if i["linkId"] == "direction"]


@pytest.mark.parametrize("qid", sorted(SOURCES))
def test_copyright_carries_citation_and_licence_status(qid: str) -> None:
    data = shared(qid)
    text = questionnaire(qid)["copyright"]
    assert text.startswith(data["citation"])
    assert f"Licence status: {data['license_note']['confidence']}." in text
    assert data["license_note"]["text"] in text


def test_ecr_rs_targets_are_gated_by_our_own_question() -> None:
    groups = {i["linkId"]: i for i in questionnaire("ecr-rs")["item"]}
    for target in TARGETS:
        gate, *items = groups[target]["item"]
        assert gate["linkId"] == f"{target}.applies" and gate["type"] == "boolean"
        assert {"url": "http://attach-fhir.org/fhir/StructureDefinition/wording-source",
                "valueCode": "attach-fhir"} in gate["extension"]  # fmt: skip
        assert [i["linkId"] for i in items] == [f"{target}.{n}" for n in range(1, 10)]
        for item in items:
            assert item["enableWhen"] == [
                {"question": gate["linkId"], "operator": "=", "answerBoolean": True}
            ]


def _values(qid: str, answers: dict[str, Any]) -> dict[str, Any]:
    result = evaluate_scores(questionnaire(qid), response(answers))
    return {link.removeprefix("scores."): v[0] if v else None for link, v in result.items()}


def test_ecr_r_expressions_give_the_hand_computed_means() -> None:
    values = _values("ecr-r", {str(n): 7 for n in range(1, 37)})
    # anxiety: 16 items at 7, items 9 and 11 reversed to 1 -> 114 / 18
    assert values["ecr-r-anxiety"] == pytest.approx(Decimal(114) / 18)
    # avoidance: 6 items at 7, 12 reversed to 1 -> 54 / 18
    assert values["ecr-r-avoidance"] == 3
    missing = _values("ecr-r", {str(n): 7 for n in range(2, 37)})
    assert missing["ecr-r-anxiety"] is None and missing["ecr-r-avoidance"] == 3


def test_ecr_expressions_give_the_hand_computed_category() -> None:
    values = _values("ecr", {str(n): 1 for n in range(1, 37)})
    # avoidance: 9 plain at 1, 9 reversed to 7 -> 72 / 18; anxiety: 17 at 1, item 22 -> 7: 24 / 18
    assert values["ecr-avoidance"] == 4
    assert values["ecr-anxiety"] == pytest.approx(Decimal(24) / 18)
    # secure 8.92, fearful 7.50, preoccupied 0.19, dismissing 13.82 (by hand)
    assert values["ecr-category"] == {
        "system": "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern",
        "code": "dismissing",
        "display": "Dismissing",
    }
    assert _values("ecr", {str(n): 1 for n in range(1, 36)})["ecr-category"] is None


def test_rq_expressions_give_the_hand_computed_dimensions() -> None:
    values = _values("rq", {"secure": 6, "fearful": 2, "preoccupied": 3, "dismissing": 5})
    assert values["rq-secure"] == 6 and values["rq-dismissing"] == 5
    assert values["rq-model-of-self"] == 6 + 5 - 2 - 3
    assert values["rq-model-of-other"] == 6 + 3 - 2 - 5


def test_ecr_rs_expressions_score_answered_targets_only() -> None:
    answers: dict[str, Any] = {"mother.applies": True, "father.applies": False}
    answers.update({f"mother.{n}": n for n in range(1, 8)} | {"mother.8": 2, "mother.9": 3})
    values = _values("ecr-rs", answers)
    # avoidance: 8-1, 8-2, 8-3, 8-4, 5, 6 -> 33 / 6; anxiety: 7, 2, 3 -> 4
    assert values["ecr-rs-mother-avoidance"] == pytest.approx(Decimal(33) / 6)
    assert values["ecr-rs-mother-anxiety"] == 4
    assert values["ecr-rs-father-anxiety"] is None and values["ecr-rs-friend-avoidance"] is None


def test_prfq_expressions_give_the_hand_computed_means() -> None:
    values = _values("prfq", {str(n): 5 for n in range(1, 19)})
    assert values["prfq-pre-mentalizing"] == 5
    # item 11 (certainty) and item 18 (interest) reversed: 8 - 5 = 3 -> (25 + 3) / 6
    assert values["prfq-certainty"] == pytest.approx(Decimal(28) / 6)
    assert values["prfq-interest-curiosity"] == pytest.approx(Decimal(28) / 6)


def test_committed_files_are_what_the_generator_builds(tmp_path: Any) -> None:
    require_shared()
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_questionnaires.py"), "--out", str(tmp_path)],
        check=True,
        timeout=60,
    )
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    assert len(built) == 8 and set(built) <= set(FILES)
    for name in built:
        assert (tmp_path / name).read_text() == (QUESTIONNAIRES / name).read_text(), name
