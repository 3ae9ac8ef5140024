"""Whether an instrument fits a patient: validated age range, use beyond it, reading age, sections.

The rules are data (``attach_fhir/data/fit-rules.json``, or a clinic's file), validated against
``schema/fit-rules.schema.json``; docs/instrument-fit.md explains the shipped default.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

from attach_fhir.canonical import SCORING_MODEL_EXT
from attach_fhir.errors import AttachError
from attach_fhir.lifestage import InvalidBirthDate, age_in_years, birth_date_bounds
from attach_fhir.rule_files import read_clinic_file, read_shipped

SCHEMA_RESOURCE = "schema/fit-rules.schema.json"
SHIPPED_RULES = "data/fit-rules.json"
#: Completed years from which a person is an adult (attach_fhir.lifestage's adulthood).
ADULT_AGE = 18

Level = Literal["fits", "may-fit", "unknown", "no"]
Unit = Literal["years", "months"]
#: Best first: how two verdicts (e.g. for two children) are ranked.
RANK: dict[str, int] = {"fits": 0, "may-fit": 1, "unknown": 2, "no": 3}


class InvalidFitRules(AttachError):
    """The fit rules document breaks the schema or contradicts itself."""

    code = "invalid_fit_rules"
    description = "The instrument fit rules are invalid."
    status_code = 500

    def __init__(self, problems: list[str], source: str) -> None:
        super().__init__(
            f"Invalid fit rules in {source}: " + "; ".join(problems), problems=problems
        )
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AgeRange:
    """An age range (bounds inclusive, in completed years or months) and where it comes from."""

    unit: Unit
    source: str
    min: int | None = None
    max: int | None = None

    def holds(self, birth: date, on: date) -> bool:
        """Whether someone born on ``birth`` is inside the range on ``on``."""
        age = age_in(birth, on, self.unit)
        return (self.min is None or age >= self.min) and (self.max is None or age <= self.max)

    def words(self) -> str:
        """The range for reading: "0-3 years", "18+ years", "any age"."""
        if self.min is not None and self.max is not None:
            return f"{self.min}-{self.max} {self.unit}"
        if self.min is not None:
            return f"{self.min}+ {self.unit}"
        if self.max is not None:
            return f"up to {self.max} {self.unit}"
        return "any age"


@dataclass(frozen=True, slots=True)
class Section:
    """A top-level group of a Questionnaire shown only from an age (e.g. the romantic partner)."""

    link_id: str
    label: str
    min: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class InstrumentRule:
    """One instrument's rule: who answers, the validated range, where it was used beyond it."""

    respondent: Literal["self", "caregiver"]
    validated: AgeRange
    used_beyond: tuple[AgeRange, ...] = ()
    sections: tuple[Section, ...] = ()
    #: Words of the use restriction that changes what a clinician may do (shown before starting).
    visible_restriction: str | None = None

    def splits(self, restrictions: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The restrictions that stay visible, and the rest (licence notes, one click away)."""
        key = self.visible_restriction
        shown = tuple(r for r in restrictions if key and key in r)
        return shown, tuple(r for r in restrictions if r not in shown)


@dataclass(frozen=True, slots=True)
class FitRules:
    """The whole rule set: the reading age for self-report and a rule per instrument id."""

    version: str
    reading_age: int
    instruments: Mapping[str, InstrumentRule]


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the fit rules need to know about the patient."""

    birth_date: str | None
    #: Birth dates of children the patient cares for (None: the app could not find out).
    children: tuple[str, ...] | None = None

    def age(self, today: date) -> int | None:
        """Completed years today, when the birth date pins it down."""
        bounds = _bounds(self.birth_date, today)
        if bounds is None:
            return None
        oldest, youngest = (age_in_years(b, today) for b in bounds)
        return oldest if oldest == youngest else None


@dataclass(frozen=True, slots=True)
class Fit:
    """The verdict for one instrument and patient, with the reason a clinician reads."""

    level: Level
    reason: str
    #: Who answers: ``patient`` or ``caregiver`` (a parent or caregiver about this child).
    respondent: str = "patient"


def age_in(birth: date, on: date, unit: Unit) -> int:
    """Completed years or completed months on ``on``."""
    if unit == "years":
        return age_in_years(birth, on)
    months = (on.year - birth.year) * 12 + on.month - birth.month
    return months - int(on.day < birth.day)


def _bounds(birth_date: str | None, today: date) -> tuple[date, date] | None:
    """Earliest and latest possible birth day (capped at today); None if unknown or invalid."""
    if not birth_date:
        return None
    try:
        earliest, latest = birth_date_bounds(birth_date)
    except InvalidBirthDate:
        return None
    if earliest > today:
        return None
    return earliest, min(latest, today)


def _self_report(rule: InstrumentRule, reading_age: int, birth: date, today: date) -> Fit:
    age = age_in_years(birth, today)
    validated = f"Validated for {rule.validated.words()} ({rule.validated.source})"
    if age < reading_age:
        return Fit(
            "no",
            f"A self-report questionnaire: the patient is {age}, under the reading age of "
            f"{reading_age} set for self-report.",
        )
    if rule.validated.holds(birth, today):
        return Fit("fits", f"{validated}; the patient is {age}.")
    beyond = [r.source for r in rule.used_beyond if r.holds(birth, today)]
    if beyond:
        return Fit(
            "may-fit", f"{validated}; used beyond it: {'; '.join(beyond)}. The patient is {age}."
        )
    return Fit("no", f"{validated}; the patient is {age}.")


def _about_child(rule: InstrumentRule, birth: date, today: date) -> Level:
    if rule.validated.holds(birth, today):
        return "fits"
    return "may-fit" if any(r.holds(birth, today) for r in rule.used_beyond) else "no"


def _child_reason(rule: InstrumentRule, level: Level, birth: date, today: date, who: str) -> str:
    validated = f"validated for children aged {rule.validated.words()} ({rule.validated.source})"
    age = age_in_years(birth, today)
    if level == "fits":
        return f"Answered by a parent or caregiver, {validated}; {who} is {age}."
    if level == "may-fit":
        beyond = "; ".join(r.source for r in rule.used_beyond if r.holds(birth, today))
        return (
            f"Answered by a parent or caregiver, {validated}; used beyond it: {beyond}. "
            f"{who[0].upper()}{who[1:]} is {age}."
        )
    return f"Answered by a parent or caregiver, {validated}; {who} is {age}."


def _certain(levels: list[Fit]) -> Fit | None:
    """The verdict when every possible birth day gives the same level, else None."""
    return levels[0] if len({f.level for f in levels}) == 1 else None


def _caregiver_report(rule: InstrumentRule, facts: PatientFacts, today: date) -> Fit:
    verdicts: list[Fit] = []
    own = _bounds(facts.birth_date, today)
    if own is not None and age_in_years(own[0], today) < ADULT_AGE:
        # A child: the parent or caregiver answers about this child.
        each = [
            Fit(lv, _child_reason(rule, lv, b, today, "the child"), "caregiver")
            for b in own
            for lv in [_about_child(rule, b, today)]
        ]
        verdicts.append(
            _certain(each)
            or Fit("unknown", "The birth date is not precise enough to tell.", "caregiver")
        )
    for child in facts.children or ():
        bounds = _bounds(child, today)
        if bounds is None:
            continue
        each = [
            Fit(lv, _child_reason(rule, lv, b, today, "the patient's child"))
            for b in bounds
            for lv in [_about_child(rule, b, today)]
        ]
        verdicts.append(_certain(each) or Fit("unknown", "A child's birth date is not precise."))
    best = min(verdicts, key=lambda f: RANK[f.level], default=None)
    if best is not None and best.level != "no":
        return best
    if facts.children is None and (own is None or age_in_years(own[0], today) >= ADULT_AGE):
        return Fit(
            "unknown",
            "Answered by a parent or caregiver; the app could not tell whether the patient "
            "cares for a young child.",
        )
    if best is not None:
        return best
    return Fit(
        "no",
        f"Answered by the parent or caregiver of a child aged {rule.validated.words()} "
        f"({rule.validated.source}); no such child is on record.",
    )


def fit(rules: FitRules, instrument_id: str, facts: PatientFacts, today: date) -> Fit:
    """How instrument ``instrument_id`` fits the patient on ``today``."""
    rule = rules.instruments.get(instrument_id)
    if rule is None:
        return Fit("unknown", "The clinic's fit rules say nothing about this questionnaire.")
    if rule.respondent == "caregiver":
        return _caregiver_report(rule, facts, today)
    bounds = _bounds(facts.birth_date, today)
    if bounds is None:
        return Fit("unknown", "The patient's age is not known.")
    each = [_self_report(rule, rules.reading_age, b, today) for b in bounds]
    return _certain(each) or Fit("unknown", "The birth date is not precise enough to tell.")


def hidden_sections(
    rules: FitRules, instrument_id: str, facts: PatientFacts, today: date
) -> tuple[Section, ...]:
    """The sections that do not apply: the patient is certainly younger than the section's age."""
    rule = rules.instruments.get(instrument_id)
    bounds = _bounds(facts.birth_date, today)
    if rule is None or bounds is None:
        return ()
    return tuple(s for s in rule.sections if all(age_in(b, today, s.unit) < s.min for b in bounds))


def without_sections(
    questionnaire: Mapping[str, Any], sections: Iterable[Section]
) -> dict[str, Any]:
    """A copy of the Questionnaire without these sections and the scores about them (the
    scoring model's entries whose ``focus`` is a section's linkId)."""
    hidden = {s.link_id for s in sections}
    scores: set[str] = set()
    for ext in questionnaire.get("extension") or []:
        if ext.get("url") == SCORING_MODEL_EXT and isinstance(ext.get("valueString"), str):
            model = json.loads(ext["valueString"])
            scores |= {e["linkId"] for e in model.get("scores", []) if e.get("focus") in hidden}
    return without_items(questionnaire, hidden | scores)


def without_items(questionnaire: Mapping[str, Any], link_ids: Iterable[str]) -> dict[str, Any]:
    """A copy of the Questionnaire without the items (and their children) of these linkIds."""
    drop = frozenset(link_ids)

    def keep(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            if item.get("linkId") in drop:
                continue
            if "item" in item:
                item = {**item, "item": keep(item["item"])}
            out.append(item)
        return out

    trimmed = copy.copy(dict(questionnaire))
    trimmed["item"] = keep(list(questionnaire.get("item") or []))
    return trimmed


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(read_shipped(SCHEMA_RESOURCE))


def _range(doc: Mapping[str, Any]) -> AgeRange:
    return AgeRange(doc["unit"], doc["source"], doc.get("min"), doc.get("max"))


def _semantic_problems(document: Mapping[str, Any]) -> list[str]:
    problems = []
    for iid, rule in document["instruments"].items():
        ranges = [("validated", rule["validated"])] + [
            (f"usedBeyond/{i}", r) for i, r in enumerate(rule.get("usedBeyond", []))
        ]
        for where, r in ranges:
            if r.get("min") is not None and r.get("max") is not None and r["min"] > r["max"]:
                problems.append(f"instruments/{iid}/{where}: min {r['min']} > max {r['max']}")
    return problems


def parse_rules(document: Mapping[str, Any], source: str = "fit rules") -> FitRules:
    """Validate a fit rules document (every problem at once, each naming its key); compile it."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.path)))
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    if problems:
        raise InvalidFitRules(problems, source)
    problems = _semantic_problems(document)
    if problems:
        raise InvalidFitRules(problems, source)
    return FitRules(
        version=document["version"],
        reading_age=document["readingAge"]["years"],
        instruments={
            iid: InstrumentRule(
                respondent=rule["respondent"],
                validated=_range(rule["validated"]),
                used_beyond=tuple(_range(r) for r in rule.get("usedBeyond", [])),
                sections=tuple(
                    Section(s["linkId"], s["label"], s["min"], s["unit"])
                    for s in rule.get("sections", [])
                ),
                visible_restriction=rule.get("visibleRestriction"),
            )
            for iid, rule in document["instruments"].items()
        },
    )


def load_rules(path: str | Path | None = None) -> FitRules:
    """The rules from a clinic's own file, or the shipped rules when ``path`` is None."""
    if path is None:
        return shipped_rules()
    document, source = read_clinic_file(path, InvalidFitRules)
    return parse_rules(document, source)


@cache
def shipped_rules() -> FitRules:
    """The fit rules shipped with attach-fhir (read once)."""
    return parse_rules(read_shipped(SHIPPED_RULES), SHIPPED_RULES)
