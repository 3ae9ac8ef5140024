"""CDS Hooks cards for the patient-view hook: what attach-fhir knows about the patient in view.

Pure functions of the data :mod:`attach_fhir.io.cds_prefetch` gathered. Cards (CDS Hooks 2.0,
"Card Attributes"):

- one per instrument with results: its newest submission's scores, each with the words the
  instrument's CodeSystem uses for it (range, what a higher value means) and the instrument's use
  restrictions. No cut-off, norm or judgement is added: the values are the EHR's Observations;
- "no attachment assessment on record", with the instruments the app offers this patient;
- optionally, "reassessment due" when the newest submission of an instrument is older than a
  locally configured interval (an organisational choice; off unless configured);
- one per unfinished draft (an in-progress QuestionnaireResponse of ours).

Every card is ``info``, links to the app with a ``smart`` link (the CDS Client adds ``iss`` and
``launch``), and names the app as its source. Card uuids are UUID 5 of the hook instance and the
card's subject, so the same request gives the same cards (and feedback can name them).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attach_fhir import history
from attach_fhir.canonical import ATTACHMENT_PATTERN_SYSTEM, BASE
from attach_fhir.instruments import Instrument, Library
from attach_fhir.interpretation import InstrumentMeaning, ScoreMeaning, explain
from attach_fhir.reading import for_reading

Json = dict[str, Any]


@dataclass(frozen=True)
class PatientData:
    """What the cards are built from; ``None`` where the data could not be had."""

    patient: Json | None
    observations: list[Json]
    drafts: list[Json] | None


#: Namespace of the card uuids (UUID 5 of the project base URL).
CARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE}/cds-hooks/card")
#: The spec: summary is a "<140-character" message.
SUMMARY_MAX = 139

_SHORT_NAME = re.compile(r"\(([^()]+)\)\s*$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
#: Characters that start Markdown or HTML inside a line (our text starts every line itself).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&])")


@dataclass(frozen=True)
class CardSettings:
    """What the cards say about the app: its name, launch URL, docs, local reassessment rule."""

    app_name: str
    launch_url: str
    docs_url: str | None = None
    #: Local policy: a "reassessment due" card after this many days; None = no such card.
    reassess_after_days: int | None = None


@dataclass(frozen=True)
class Offer:
    """An instrument the app offers this patient, and why (from the app's fit rules)."""

    title: str
    reason: str
    #: The instrument's use restrictions, shown with it (e.g. the RQ author's).
    restrictions: tuple[str, ...] = ()


def escape_markdown(text: str) -> str:
    """``text`` with every GitHub-Flavored-Markdown special character backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def short_name(instrument: Instrument) -> str:
    """The acronym in the title's last parentheses (``ECR-R``), else the title."""
    match = _SHORT_NAME.search(instrument.title)
    return match.group(1) if match else instrument.title


def card_uuid(hook_instance: str, kind: str, subject: str) -> str:
    """A deterministic card uuid for this hook call, card kind and subject."""
    return str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}|{kind}|{subject}"))


def format_value(value: float) -> str:
    """A score as the review shows it: rounded for reading."""
    return for_reading(value)


def _day(recorded: str) -> str:
    day = recorded[:10]
    return day if _DATE.match(day) else "an unknown date"


def _card(settings: CardSettings, uid: str, summary: str, detail: str, link_label: str) -> Json:
    source: Json = {"label": settings.app_name}
    if settings.docs_url:
        source["url"] = settings.docs_url
    return {
        "uuid": uid,
        "summary": summary if len(summary) <= SUMMARY_MAX else summary[: SUMMARY_MAX - 3] + "...",
        "detail": detail,
        "indicator": "info",
        "source": source,
        "links": [{"label": link_label, "url": settings.launch_url, "type": "smart"}],
    }


@dataclass(frozen=True)
class _Result:
    instrument: Instrument
    meaning: InstrumentMeaning
    points: list[history.ScorePoint]
    when: dt.datetime
    recorded: str


def latest_results(observations: Iterable[Mapping[str, Any]], library: Library) -> list[_Result]:
    """Per instrument with scores, its newest submission's points; newest instrument first."""
    owner = {code: inst for inst in library.instruments() for code in inst.score_codes}
    found = history.points(observations)
    by_instrument: dict[str, dict[str, list[history.ScorePoint]]] = {}
    for point in found:
        inst = owner.get(point.code)
        if inst is not None:
            by_instrument.setdefault(inst.id, {}).setdefault(point.submission, []).append(point)
    results = []
    for inst in library.instruments():
        submissions = by_instrument.get(inst.id)
        if not submissions:
            continue
        # The same order as the review: effective time, then when the server stored it (two
        # submissions within one second), then the submission.
        newest = max(submissions.values(), key=lambda ps: max(p.order for p in ps))
        last = max(newest, key=lambda p: p.order)
        meaning = explain(library.questionnaire(inst.url), library.score_codes())
        order = list(meaning.scores)
        newest.sort(key=lambda p: order.index(p.code) if p.code in order else len(order))
        results.append(_Result(inst, meaning, newest, last.when, last.recorded))
    return sorted(results, key=lambda r: (r.when, r.instrument.id), reverse=True)


def _pattern_display(code: str, library: Library) -> str:
    system = library.codesystems.get(ATTACHMENT_PATTERN_SYSTEM, {})
    for concept in system.get("concept") or []:
        if concept.get("code") == code:
            return str(concept.get("display") or code)
    return code


def _value_text(point: history.ScorePoint, library: Library) -> str:
    if point.value is not None:
        return format_value(point.value)
    return _pattern_display(point.category or "", library)


def _label(meaning: ScoreMeaning | None, code: str, prefix: str) -> str:
    display = meaning.display if meaning else code
    return display.removeprefix(prefix + " ")


def _words(meaning: ScoreMeaning | None) -> str:
    """The instrument's own words for a score: range and direction, or its definition."""
    if meaning is None:
        return ""
    parts = []
    if meaning.range_text:
        parts.append(f"range {meaning.range_text}")
    if meaning.higher_means:
        parts.append(f"higher = {meaning.higher_means}")
    elif meaning.method != "argmax" and meaning.definition:
        parts.append(meaning.definition)
    return "; ".join(parts)


def result_card(result: _Result, hook_instance: str, settings: CardSettings, lib: Library) -> Json:
    """The card with one instrument's newest scores and what they mean."""
    name = short_name(result.instrument)
    day = _day(result.recorded)
    values = [
        f"{_label(result.meaning.scores.get(p.code), p.code, name)} {_value_text(p, lib)}"
        for p in result.points
    ]
    summary = f"Latest {name} ({day}): {', '.join(values)}"
    if len(summary) > SUMMARY_MAX:
        summary = f"Latest {name} ({day}): {len(values)} scores, see the details"
    lines = [
        f"**{escape_markdown(result.instrument.title)}**, completed {escape_markdown(day)}:",
        "",
    ]
    for point in result.points:
        meaning = result.meaning.scores.get(point.code)
        display = meaning.display if meaning else point.code
        line = f"- {escape_markdown(display)}: **{escape_markdown(_value_text(point, lib))}**"
        words = _words(meaning)
        if words:
            line += f" ({escape_markdown(words)})"
        if point.prorated:
            line += " (prorated)"
        lines.append(line)
    for restriction in result.instrument.restrictions:
        lines += ["", f"Use restriction: {escape_markdown(restriction)}"]
    lines += ["", "No cut-off or norm is applied; open the app for the history and the meaning."]
    return _card(
        settings,
        card_uuid(hook_instance, "result", result.instrument.id),
        summary,
        "\n".join(lines),
        f"Review in {settings.app_name}",
    )


def none_card(offers: Sequence[Offer], hook_instance: str, settings: CardSettings) -> Json:
    """The card for a patient with no attachment assessment on record."""
    lines = ["No score from an attachment instrument is recorded for this patient."]
    if offers:
        lines += ["", f"{settings.app_name} offers this patient:"]
        for offer in offers:
            lines.append(f"- {escape_markdown(offer.title)}: {escape_markdown(offer.reason)}")
            lines += [f"  - Use restriction: {escape_markdown(r)}" for r in offer.restrictions]
    return _card(
        settings,
        card_uuid(hook_instance, "none", "patient"),
        "No attachment assessment on record",
        "\n".join(lines),
        f"Start an assessment in {settings.app_name}",
    )


def due_card(result: _Result, days: int, hook_instance: str, settings: CardSettings) -> Json:
    """The card saying an instrument's newest submission is older than the local interval."""
    name = short_name(result.instrument)
    detail = (
        f"The newest {escape_markdown(result.instrument.title)} was completed "
        f"{escape_markdown(_day(result.recorded))}, {days} days ago. This organisation asks for "
        f"reassessment after {settings.reassess_after_days} days (a local setting, not a "
        "clinical rule of the instrument)."
    )
    return _card(
        settings,
        card_uuid(hook_instance, "due", result.instrument.id),
        f"{name} reassessment due: last completed {days} days ago",
        detail,
        f"Reassess in {settings.app_name}",
    )


def draft_cards(
    drafts: Iterable[Mapping[str, Any]], hook_instance: str, settings: CardSettings, lib: Library
) -> list[Json]:
    """One card per unfinished response to one of our instruments, newest first."""
    by_url = {i.url: i for i in lib.instruments()}
    cards = []
    ordered = sorted(drafts, key=lambda d: str(d.get("authored") or ""), reverse=True)
    for draft in ordered:
        if draft.get("status") != "in-progress":
            continue
        inst = by_url.get(str(draft.get("questionnaire") or "").partition("|")[0])
        if inst is None:
            continue
        day = _day(str(draft.get("authored") or ""))
        detail = (
            f"An unfinished {escape_markdown(inst.title)} for this patient was saved "
            f"{escape_markdown(day)}. Open {escape_markdown(settings.app_name)} to resume it."
        )
        cards.append(
            _card(
                settings,
                card_uuid(hook_instance, "draft", str(draft.get("id") or day)),
                f"Unfinished {short_name(inst)} saved {day}",
                detail,
                f"Resume in {settings.app_name}",
            )
        )
    return cards


def build_cards(
    hook_instance: str,
    data: PatientData,
    offers: Sequence[Offer],
    settings: CardSettings,
    today: dt.date,
    library: Library,
) -> list[Json]:
    """Every card for one patient-view call, in display order."""
    results = latest_results(data.observations, library)
    cards = [result_card(r, hook_instance, settings, library) for r in results]
    if not results:
        cards.append(none_card(offers, hook_instance, settings))
    if settings.reassess_after_days is not None:
        for result in results:
            days = (today - result.when.date()).days
            if days > settings.reassess_after_days:
                cards.append(due_card(result, days, hook_instance, settings))
    cards += draft_cards(data.drafts or [], hook_instance, settings, library)
    return cards
