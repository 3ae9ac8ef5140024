"""Life stage from a birth date, and the caregiver role.

The stages only choose which care-plan activities are offered and who performs them. The
boundaries are organisational (they follow the usual school and legal-age groupings), not
clinical or developmental cut-offs, and a clinician may always override the computed stage.

| stage             | age in completed years |
|-------------------|------------------------|
| early-childhood   | 0 to 5 (work happens through the caregiver) |
| school-age        | 6 to 11                |
| adolescence       | 12 to 17               |
| adulthood         | 18 and over            |

The caregiver role is separate from age: a patient of any stage may be the parent or main
caregiver of a young child, i.e. a child in early childhood (0 to 5).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import date
from enum import StrEnum

from attach_fhir.errors import AttachError


class LifeStage(StrEnum):
    """The four life stages the care-plan rules can select on."""

    EARLY_CHILDHOOD = "early-childhood"
    SCHOOL_AGE = "school-age"
    ADOLESCENCE = "adolescence"
    ADULTHOOD = "adulthood"


class Role(StrEnum):
    """Roles a patient can hold independently of their own life stage."""

    CAREGIVER = "caregiver"


#: (stage, first age, last age or None) in completed years; contiguous, starting at 0.
STAGE_BOUNDARIES: tuple[tuple[LifeStage, int, int | None], ...] = (
    (LifeStage.EARLY_CHILDHOOD, 0, 5),
    (LifeStage.SCHOOL_AGE, 6, 11),
    (LifeStage.ADOLESCENCE, 12, 17),
    (LifeStage.ADULTHOOD, 18, None),
)

_FHIR_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


class InvalidBirthDate(AttachError):
    """The birth date is not a FHIR date or lies after the reference date."""

    code = "invalid_birth_date"
    description = "The birth date is not a valid FHIR date before the reference date."


def birth_date_bounds(birth_date: date | str) -> tuple[date, date]:
    """Earliest and latest day a (possibly partial) FHIR ``date`` can stand for."""
    if isinstance(birth_date, date):
        return birth_date, birth_date
    match = _FHIR_DATE.match(birth_date)
    if match is None:
        raise InvalidBirthDate(f"{birth_date!r} is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD).")
    year = int(match[1])
    try:
        if match[3] is not None:
            day = date(year, int(match[2]), int(match[3]))
            return day, day
        if match[2] is not None:
            month = int(match[2])
            last = calendar.monthrange(year, month)[1]
            return date(year, month, 1), date(year, month, last)
    except ValueError as exc:
        raise InvalidBirthDate(f"{birth_date!r} is not a calendar date.") from exc
    return date(year, 1, 1), date(year, 12, 31)


def age_in_years(birth_date: date, on: date) -> int:
    """Completed years on ``on`` (someone born on 29 February turns a year older on 1 March)."""
    if birth_date > on:
        raise InvalidBirthDate("The birth date lies after the reference date.")
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - int(before_birthday)


def stage_for_age(age: int) -> LifeStage:
    """The life stage for an age in completed years."""
    for stage, first, last in STAGE_BOUNDARIES:
        if age >= first and (last is None or age <= last):
            return stage
    raise InvalidBirthDate(f"An age of {age} years is not possible.")


def life_stage(birth_date: date | str, on: date) -> LifeStage | None:
    """The stage on ``on``; ``None`` when a partial birth date straddles a stage boundary."""
    earliest, latest = birth_date_bounds(birth_date)
    if earliest > on:
        raise InvalidBirthDate("The birth date lies after the reference date.")
    oldest = stage_for_age(age_in_years(earliest, on))
    youngest = stage_for_age(age_in_years(min(latest, on), on))
    return oldest if oldest == youngest else None


def is_caregiver_of_young_child(child_birth_dates: Iterable[date | str], on: date) -> bool:
    """Whether any of these children is certainly in early childhood on ``on``."""
    return any(life_stage(b, on) is LifeStage.EARLY_CHILDHOOD for b in child_birth_dates)
