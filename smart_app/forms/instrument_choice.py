"""Which packaged instruments fit the patient in context, and why (the Choose page's logic).

Pure functions of the Patient, the caregiver facts and the day. The rules use only what each
Questionnaire declares: a numeric ``useContext`` age range; an age text starting "Adults" means
adulthood (18 and over, :mod:`attach_fhir.lifestage`); any other age text restricts nothing and
is shown as it is. An instrument whose respondent is a parent or caregiver (the PRFQ) fits a
patient who is the caregiver of a young child, or a young child whose caregiver answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from attach_fhir.instruments import Instrument
from attach_fhir.lifestage import (
    InvalidBirthDate,
    LifeStage,
    age_in_years,
    birth_date_bounds,
    is_caregiver_of_young_child,
    life_stage,
)

Fit = Literal["fits", "unknown", "no"]
CAREGIVER = "parent-caregiver"


@dataclass(frozen=True)
class PatientFacts:
    """What the fit rules need to know about the patient."""

    birth_date: str | None
    #: Birth dates of children the patient cares for (None: the app could not find out).
    children: tuple[str, ...] | None = None

    def age(self, today: date) -> int | None:
        """Completed years today, when the birth date pins it down."""
        if not self.birth_date:
            return None
        try:
            earliest, latest = birth_date_bounds(self.birth_date)
            oldest, youngest = age_in_years(earliest, today), age_in_years(latest, today)
        except InvalidBirthDate:
            return None
        return oldest if oldest == youngest else None

    def stage(self, today: date) -> LifeStage | None:
        """The life stage today, when the birth date pins it down."""
        if not self.birth_date:
            return None
        try:
            return life_stage(self.birth_date, today)
        except InvalidBirthDate:
            return None


@dataclass(frozen=True)
class Choice:
    """One instrument as the Choose page offers it."""

    instrument: Instrument
    purpose: str
    fit: Fit
    reason: str
    #: Who answers: ``patient`` or ``caregiver`` (a parent/caregiver about a young child).
    respondent: str = "patient"


def age_bounds(questionnaire: Mapping[str, Any]) -> tuple[int | None, int | None] | None:
    """The numeric (low, high) age range in years from ``useContext``, if it declares one."""
    for context in questionnaire.get("useContext") or []:
        if (context.get("code") or {}).get("code") != "age":
            continue
        value = context.get("valueRange")
        if isinstance(value, dict):
            low = (value.get("low") or {}).get("value")
            high = (value.get("high") or {}).get("value")
            return (
                int(low) if isinstance(low, int | float) else None,
                int(high) if isinstance(high, int | float) else None,
            )
        text = str((context.get("valueCodeableConcept") or {}).get("text") or "")
        if text.lower().startswith("adults"):
            return (18, None)
    return None


def _self_report(
    inst: Instrument, q: Mapping[str, Any], facts: PatientFacts, today: date
) -> Choice:
    purpose = str(q.get("purpose") or "")
    bounds = age_bounds(q)
    if bounds is None:
        return Choice(inst, purpose, "fits", f"Age: {inst.age_range}")
    low, high = bounds
    age = facts.age(today)
    if age is None:
        return Choice(inst, purpose, "unknown", "The patient's age is not known.")
    if (low is not None and age < low) or (high is not None and age > high):
        return Choice(inst, purpose, "no", f"For {inst.age_range}; the patient is {age}.")
    return Choice(inst, purpose, "fits", f"For {inst.age_range}; the patient is {age}.")


def _caregiver_report(
    inst: Instrument, q: Mapping[str, Any], facts: PatientFacts, today: date
) -> Choice:
    purpose = str(q.get("purpose") or "")
    if facts.stage(today) is LifeStage.EARLY_CHILDHOOD:
        reason = "Answered by the child's parent or caregiver about this child."
        return Choice(inst, purpose, "fits", reason, respondent="caregiver")
    if facts.children is None:
        return Choice(
            inst,
            purpose,
            "unknown",
            "Answered by a parent or caregiver; the app could not tell whether the patient "
            "cares for a young child.",
        )
    try:
        young = is_caregiver_of_young_child(facts.children, today)
    except InvalidBirthDate:
        young = False
    if young:
        return Choice(inst, purpose, "fits", "The patient is the parent of a young child.")
    return Choice(inst, purpose, "no", "Answered by the parent or caregiver of a young child.")


def choices(
    instruments: Iterable[tuple[Instrument, Mapping[str, Any]]], facts: PatientFacts, today: date
) -> list[Choice]:
    """Every instrument with its fit for this patient: fitting first, then title order."""
    out = [
        _caregiver_report(inst, q, facts, today)
        if inst.respondent == CAREGIVER
        else _self_report(inst, q, facts, today)
        for inst, q in instruments
    ]
    order = {"fits": 0, "unknown": 1, "no": 2}
    return sorted(out, key=lambda c: (order[c.fit], c.instrument.title))
