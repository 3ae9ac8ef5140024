"""The assessment summary: its content (item text, answers, scores and their meaning) checked
against the reference data and hand-computed scores, in plain text and in the PDF's own text."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from pypdf import PdfReader

from attach_fhir.assessment_summary import (
    AssessmentSummary,
    answer_text,
    build_summary,
    render_text,
)
from attach_fhir.canonical import questionnaire_url
from attach_fhir.instruments import library
from attach_fhir.scoring import score_response
from attach_fhir.summary_pdf import render_pdf
from tests.lib.instrument_data import shared
from tests.lib.scoring_examples import EXAMPLES, cycle
from tests.lib.scoring_responses import from_answers

AUTHORED = "2026-03-04T09:30:00Z"
#: ECR-R, items 1..36 answered 1,2,...,7,1,... with item 11 = 7 (scoring_examples).
ECR_R = next(e for e in EXAMPLES if e.name == "ecr-r cycling 1..7, item 11 = 7")


def summary_of(
    qid: str, answers: dict[str, object], *, prorate: bool = False, **people: str
) -> AssessmentSummary:
    questionnaire = library().questionnaire(questionnaire_url(qid))
    status = "completed" if not prorate else "in-progress"
    response = from_answers(questionnaire, answers, status=status)
    result = score_response(questionnaire, response, prorate=prorate)
    return build_summary(
        questionnaire,
        response,
        result,
        library().score_codes(),
        authored=AUTHORED,
        author=people.get("author", "Practitioner/rowan"),
        respondent=people.get("respondent", "Patient/p1"),
        patient=people.get("patient"),
    )


def pdf_text(pdf: bytes) -> str:
    """Every page's text, whitespace collapsed (line breaks fall where the layout puts them)."""
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def test_every_answer_has_its_item_text_and_answer_display() -> None:
    summary = summary_of("ecr-r", ECR_R.answers)
    reference = shared("ecr-r")
    labels = reference["response_scale"]["values"]
    assert len(summary.answers) == 36
    by_item = {a.link_id: a for a in summary.answers}
    for item in reference["items"]:
        n = item["number"]
        raw = 7 if n == 11 else (n - 1) % 7 + 1
        line = by_item[str(n)]
        assert line.text == item["text"]
        label = labels[str(raw)]
        assert line.answer == (f"{raw} - {label}" if label else str(raw))
    assert by_item["1"].answer == "1 - Strongly disagree"
    assert by_item["11"].answer == "7 - Strongly agree"


def test_scores_carry_the_hand_computed_values_and_their_meaning() -> None:
    summary = summary_of("ecr-r", ECR_R.answers)
    scores = {s.code: s for s in summary.scores}
    assert list(scores) == ["ecr-r-anxiety", "ecr-r-avoidance"]
    assert scores["ecr-r-anxiety"].value == "3.72"  # 67 / 18 = 3.7222
    assert scores["ecr-r-avoidance"].value == "3.94"  # 71 / 18 = 3.9444
    assert scores["ecr-r-anxiety"].display == "ECR-R attachment anxiety"
    assert scores["ecr-r-anxiety"].meaning == (
        "Higher = more attachment anxiety.",
        "Range 1 to 7.",
        "Mean of 18 items (items 1-18); reverse-keyed: items 9, 11.",
    )
    assert scores["ecr-r-anxiety"].note is None
    assert summary.algorithm == "ecr-r-subscale-means 1.0.0"  # the scoring model's algorithm


def test_the_instrument_citation_licence_and_restrictions_are_named() -> None:
    reference = shared("rq")
    summary = summary_of(
        "rq", {"secure": "6", "fearful": "2", "preoccupied": "3", "dismissing": "5"}
    )
    assert summary.title == reference["title"]
    assert summary.version == "1.1.0"  # the Questionnaire version, not the algorithm
    assert summary.citation.startswith("Bartholomew, K., & Horowitz, L. M. (1991).")
    assert summary.licence_status == "single source"
    assert any(
        "not appropriate for use in individual assessments" in r for r in summary.restrictions
    )
    values = {s.code: s.value for s in summary.scores}
    # By hand from the RQ key: self = (6 + 5) - (2 + 3) = 6; other = (6 + 3) - (2 + 5) = 2.
    assert values["rq-model-of-self"] == "6.00"
    assert values["rq-model-of-other"] == "2.00"


def test_prorating_and_skipped_relationships_are_said() -> None:
    answers = cycle(1, 36, {n: 7 for n in range(1, 37)})
    del answers["5"]
    prorated = {s.code: s for s in summary_of("ecr-r", answers, prorate=True).scores}
    # 17 answered: 15 plain x 7 + items 9, 11 reversed to 1 = 107; 107 / 17 = 6.294
    assert prorated["ecr-r-anxiety"].value == "6.29"
    assert prorated["ecr-r-anxiety"].note == (
        "Prorated: mean of the 17 of 18 items answered (a local convention, not an author rule)."
    )
    rs = next(e for e in EXAMPLES if e.instrument == "ecr-rs")
    summary = summary_of("ecr-rs", rs.answers)
    by_code = {s.code: s for s in summary.scores}
    assert by_code["ecr-rs-father-anxiety"].value == "-"
    assert by_code["ecr-rs-father-anxiety"].note == "Not applicable: the relationship was skipped."
    assert by_code["ecr-rs-mother-avoidance"].value == "5.17"  # 31 / 6 = 5.1667
    sections = {a.link_id: a.section for a in summary.answers}
    assert sections["mother.1"] == "Your mother"
    assert sections["mother.applies"] == "Your mother"
    assert next(a for a in summary.answers if a.link_id == "father.applies").answer == "No"


def test_answer_text_for_each_value_type() -> None:
    options = [{"valueCoding": {"code": "1", "display": "Strongly disagree"}}]
    assert answer_text({"valueCoding": {"code": "1"}}, options) == "1 - Strongly disagree"
    assert answer_text({"valueCoding": {"code": "4"}}, options) == "4"
    paragraph = "It is easy for me to become emotionally close to others."
    assert answer_text({"valueCoding": {"code": "secure", "display": paragraph}}, []) == paragraph
    assert answer_text({"valueBoolean": True}, []) == "Yes"
    assert answer_text({"valueInteger": 12}, []) == "12"
    assert answer_text({"valueString": "Zoë"}, []) == "Zoë"


def test_the_plain_text_holds_every_part() -> None:
    text = render_text(summary_of("ecr-r", ECR_R.answers, patient="Zoë Ñúñez"))
    assert text.startswith("Experiences in Close Relationships - Revised (ECR-R), version 1.0.0\n")
    assert "Patient: Zoë Ñúñez\n" in text
    assert "Completed: 2026-03-04T09:30:00Z\n" in text
    assert "ECR-R attachment anxiety: 3.72\n" in text
    assert (
        "1. I'm afraid that I will lose my partner's love.\n   Answer: 1 - Strongly disagree\n"
        in text
    )


@pytest.fixture(scope="module")
def ecr_r_pdf() -> tuple[bytes, str]:
    summary = summary_of(
        "ecr-r",
        ECR_R.answers,
        patient="Zoë Ñúñez (Patient/p1)",
        respondent="Patient/p1",
        author="Practitioner/Ωmega-Дмитрий",
    )
    pdf = render_pdf(summary)
    return pdf, pdf_text(pdf)


def test_the_pdf_text_holds_the_answers_and_scores(ecr_r_pdf: tuple[bytes, str]) -> None:
    pdf, text = ecr_r_pdf
    assert pdf.startswith(b"%PDF-")
    reference = shared("ecr-r")
    assert "Experiences in Close Relationships - Revised (ECR-R), version 1.0.0" in text
    assert "ECR-R attachment anxiety: 3.72" in text
    assert "ECR-R attachment avoidance: 3.94" in text
    assert "Higher = more attachment anxiety." in text
    for item in reference["items"]:
        assert f"{item['number']}. {item['text']}" in text
    assert "Answer: 1 - Strongly disagree" in text
    assert "Answer: 7 - Strongly agree" in text
    assert "Licence status: unverified" in text
    assert "Scoring algorithm:" in text


def test_unicode_survives_as_text(ecr_r_pdf: tuple[bytes, str]) -> None:
    _, text = ecr_r_pdf
    assert "Patient: Zoë Ñúñez (Patient/p1)" in text
    assert "Entered by: Practitioner/Ωmega-Дмитрий" in text


def test_the_same_summary_gives_the_same_bytes(ecr_r_pdf: tuple[bytes, str]) -> None:
    again = summary_of(
        "ecr-r",
        ECR_R.answers,
        patient="Zoë Ñúñez (Patient/p1)",
        respondent="Patient/p1",
        author="Practitioner/Ωmega-Дмитрий",
    )
    assert render_pdf(again) == ecr_r_pdf[0]
    meta: Any = PdfReader(io.BytesIO(ecr_r_pdf[0])).metadata
    assert meta.title == "Experiences in Close Relationships - Revised (ECR-R), version 1.0.0"
