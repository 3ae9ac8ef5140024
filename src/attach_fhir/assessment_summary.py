"""A completed assessment in plain words: what was asked, what was answered, what the scores mean.

Pure: built from the Questionnaire (item text, answer displays), the completed response, the
scores (``ScoreResult`` or its ``to_json()`` form) and the attach-scores CodeSystem concepts;
every sentence about a score comes from :mod:`attach_fhir.interpretation` (the instrument's own
terms), so nothing here invents a norm or a cut-off. :func:`render_text` gives the plain-text
form; :mod:`attach_fhir.summary_pdf` draws the same summary as a PDF.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attach_fhir.interpretation import ScoreMeaning, explain
from attach_fhir.scoring import NOT_APPLICABLE, NOT_SCORED, PRORATED, ScoreResult

SCORES_GROUP = "scores"


@dataclass(frozen=True)
class AnswerLine:
    """One answered item: where it sits, what it asks, what was answered."""

    link_id: str
    #: The enclosing group's text (``Your mother``), or None at the top level.
    section: str | None
    text: str
    answer: str


@dataclass(frozen=True)
class ScoreLine:
    """One score: its value as shown, its status and what it means."""

    code: str
    display: str
    value: str
    status: str
    #: Plain-word meaning: direction, range and composition (interpretation.ScoreMeaning).
    meaning: tuple[str, ...]
    #: How the value was reached when not from every item (prorated, not scored, not applicable).
    note: str | None = None


@dataclass(frozen=True)
class AssessmentSummary:
    """Everything a reader of the record needs about one completed assessment."""

    title: str
    version: str
    url: str
    citation: str
    licence_status: str
    licence_note: str
    restrictions: tuple[str, ...]
    authored: str
    respondent: str
    author: str
    algorithm: str
    answers: tuple[AnswerLine, ...]
    scores: tuple[ScoreLine, ...]
    patient: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def heading(self) -> str:
        """``<title>, version <version>``."""
        return f"{self.title}, version {self.version}"

    @property
    def facts(self) -> list[tuple[str, str]]:
        """The labelled facts under the heading, those with a value, in the order both
        renderings (text and PDF) show them."""
        facts = [
            ("Patient", self.patient),
            ("Completed", self.authored),
            ("Respondent", self.respondent),
            ("Entered by", self.author),
            ("Scoring algorithm", self.algorithm),
            ("Questionnaire", f"{self.url}|{self.version}"),
        ]
        return [(label, value) for label, value in facts if value]


def _walk_items(items: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield item
        yield from _walk_items(item.get("item") or [])


def _number(value: float) -> str:
    return f"{value:.2f}"


def answer_text(answer: Mapping[str, Any], options: Sequence[Mapping[str, Any]]) -> str:
    """One answer as a reader sees it: ``1 - Strongly disagree``, ``2``, ``Yes``, ``12``."""
    coding = answer.get("valueCoding")
    if coding is not None:
        code = str(coding.get("code", ""))
        display = coding.get("display")
        if not display:
            display = next(
                (
                    (o.get("valueCoding") or {}).get("display")
                    for o in options
                    if (o.get("valueCoding") or {}).get("code") == code
                ),
                None,
            )
        if display and display != code:
            # Long option texts (the RQ's paragraphs) are the answer itself: no code in front.
            return f"{code} - {display}" if len(code) <= 3 else str(display)
        return code
    if "valueBoolean" in answer:
        return "Yes" if answer["valueBoolean"] else "No"
    for key, value in answer.items():
        if key.startswith("value") and not isinstance(value, (dict, list)):
            return str(value)
    return ""


def _answers(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[AnswerLine, ...]:
    q_items = {i["linkId"]: i for i in _walk_items(questionnaire.get("item") or [])}
    out: list[AnswerLine] = []

    def visit(items: Sequence[Mapping[str, Any]], section: str | None) -> None:
        for item in items:
            link_id = str(item.get("linkId", ""))
            if link_id == SCORES_GROUP:
                continue  # the scores are listed with their meaning, not as answers
            definition = q_items.get(link_id, {})
            text = str(definition.get("text") or item.get("text") or link_id)
            answers = [
                answer_text(a, definition.get("answerOption") or [])
                for a in item.get("answer") or []
            ]
            if answers:
                out.append(AnswerLine(link_id, section, text, "; ".join(answers)))
            for answer in item.get("answer") or []:
                visit(answer.get("item") or [], section)
            if item.get("item"):
                visit(item["item"], text if definition.get("type") == "group" else section)

    visit(response.get("item") or [], None)
    return tuple(out)


def meaning_lines(meaning: ScoreMeaning) -> tuple[str, ...]:
    """What a score means, as the review page says it: direction, range, composition."""
    lines = [f"Higher = {meaning.higher_means}." if meaning.higher_means else meaning.definition]
    if meaning.range_text:
        lines.append(f"Range {meaning.range_text}.")
    lines.append(f"{meaning.composition}.")
    return tuple(line for line in lines if line)


def _score_note(score: Mapping[str, Any]) -> str | None:
    status = score.get("status")
    if status == PRORATED:
        return (
            f"Prorated: mean of the {score.get('answered')} of {score.get('expected')} items "
            "answered (a local convention, not an author rule)."
        )
    if status == NOT_APPLICABLE:
        return "Not applicable: the relationship was skipped."
    if status == NOT_SCORED:
        reason = score.get("reason")
        return f"Not scored: {reason}." if reason else "Not scored."
    return None


def _value(score: Mapping[str, Any]) -> str:
    category = score.get("category")
    if category:
        return str(category.get("display") or category.get("code"))
    value = score.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(float(value))
    return "-" if value is None else str(value)


def build_summary(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    scores: ScoreResult | Mapping[str, Any],
    concepts: Mapping[str, Any],
    *,
    authored: str,
    author: str,
    respondent: str,
    patient: str | None = None,
    notes: Sequence[str] = (),
) -> AssessmentSummary:
    """The summary of one completed response; ``concepts`` is score code -> CodeSystem concept."""
    data = scores.to_json() if isinstance(scores, ScoreResult) else scores
    meaning = explain(questionnaire, concepts)
    algorithm = data.get("algorithm") or {}
    lines = []
    by_code: Mapping[str, Any] = data.get("scores") or {}
    order = list(meaning.scores) + [c for c in by_code if c not in meaning.scores]
    for code in order:
        score = by_code.get(code)
        if score is None:
            continue
        explained = meaning.scores.get(code)
        lines.append(
            ScoreLine(
                code=code,
                display=explained.display if explained else code,
                value=_value(score),
                status=str(score.get("status", "")),
                meaning=meaning_lines(explained) if explained else (),
                note=_score_note(score),
            )
        )
    return AssessmentSummary(
        title=meaning.title,
        version=meaning.version,
        url=meaning.url,
        citation=meaning.citation,
        licence_status=meaning.licence_status,
        licence_note=meaning.licence_note,
        restrictions=meaning.restrictions,
        authored=authored,
        respondent=respondent,
        author=author,
        algorithm=" ".join(
            filter(None, [algorithm.get("id") or meaning.algorithm_id, algorithm.get("version")])
        )
        or f"{meaning.algorithm_id} {meaning.algorithm_version}",
        answers=_answers(questionnaire, response),
        scores=tuple(lines),
        patient=patient,
        notes=tuple(notes),
    )


def render_text(summary: AssessmentSummary) -> str:
    """The summary as plain text (UTF-8), the same content as the PDF."""
    out = [summary.heading, "=" * len(summary.heading), ""]
    out += [f"{label}: {value}" for label, value in summary.facts]
    out += ["", f"Citation: {summary.citation}", f"Licence status: {summary.licence_status}"]
    if summary.licence_note:
        out.append(summary.licence_note)
    out += [f"Use restriction: {r}" for r in summary.restrictions]
    out += [f"Note: {n}" for n in summary.notes]
    out += ["", "Scores", "------"]
    for score in summary.scores:
        out.append(f"{score.display}: {score.value}")
        out += [f"  {line}" for line in score.meaning]
        if score.note:
            out.append(f"  {score.note}")
    out += ["", "Answers", "-------"]
    section: str | None = None
    for answer in summary.answers:
        if answer.section != section and answer.section:
            out.append(f"[{answer.section}]")
        section = answer.section
        out.append(f"{answer.link_id}. {answer.text}")
        out.append(f"   Answer: {answer.answer}")
    return "\n".join(out) + "\n"
