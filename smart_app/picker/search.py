"""Finding a patient when the EHR gave the launch none: the criteria, the FHIR search parameters,
and the rows a clinician chooses from.

Pure functions of their inputs. The criteria arrive in a POST body and leave in another (``POST
Patient/_search``), so names and birth dates appear in no URL; nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.fhir_url import is_fhir_id
from attach_fhir.human_names import human_name

#: Rows shown for one search; more matches are reported, not listed.
PAGE_SIZE = 20
MAX_LENGTH = 100
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: FHIR search escapes: a comma would mean OR, ``$`` and ``|`` split composite and token values.
_SEARCH_SPECIAL = re.compile(r"([\\,$|])")


@dataclass(frozen=True)
class Criteria:
    """What the clinician searched by: any of name, birth date (YYYY-MM-DD), identifier."""

    name: str = ""
    birth_date: str = ""
    identifier: str = ""

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> tuple[Criteria, list[str]]:
        """The criteria as typed (whitespace tidied) and every problem with them."""
        name = " ".join(str(form.get("name", "")).split())
        birth = str(form.get("birth_date", "")).strip()
        identifier = str(form.get("identifier", "")).strip()
        criteria = cls(name, birth, identifier)
        problems: list[str] = []
        if not (name or birth or identifier):
            problems.append("Enter a name, a birth date or an identifier.")
        for label, value in (("name", name), ("identifier", identifier)):
            if len(value) > MAX_LENGTH or _CONTROL.search(value):
                problems.append(f"The {label} is too long or holds characters it cannot.")
        if name and len(name) < 2:
            problems.append("Enter at least 2 letters of the name.")
        if birth and not _is_past_date(birth):
            problems.append("Enter the birth date as a date in the past (year-month-day).")
        return criteria, problems

    def params(self) -> list[tuple[str, str]]:
        """FHIR search parameters: each word of the name must match (a name part starting with
        it), the birth date is the exact day, the identifier any system's value."""
        params = [("name", _escaped(word)) for word in self.name.split()]
        if self.birth_date:
            params.append(("birthdate", self.birth_date))
        if self.identifier:
            params.append(("identifier", _escaped(self.identifier)))
        params.append(("_count", str(PAGE_SIZE)))
        return params


@dataclass(frozen=True)
class PatientRow:
    """One match, as the picker lists it (every value from the server, shown escaped)."""

    id: str
    name: str
    birth_date: str
    gender: str
    identifier: str


@dataclass(frozen=True)
class Results:
    """The rows of one search page, and whether the server has more matches than shown."""

    rows: tuple[PatientRow, ...]
    more: bool


def results(bundle: Mapping[str, Any]) -> Results:
    """The Patient matches of a searchset page: at most PAGE_SIZE, ids checked, the rest
    counted as more."""
    matches = [
        entry["resource"]
        for entry in _list(bundle.get("entry"))
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and _dict(entry.get("search")).get("mode", "match") == "match"
        and entry["resource"].get("resourceType") == "Patient"
        and is_fhir_id(entry["resource"].get("id"))
    ]
    rows = tuple(_row(patient) for patient in matches[:PAGE_SIZE])
    total = bundle.get("total")
    has_next = any(
        isinstance(link, dict) and link.get("relation") == "next"
        for link in _list(bundle.get("link"))
    )
    more = len(matches) > PAGE_SIZE or has_next or (isinstance(total, int) and total > len(rows))
    return Results(rows, more)


def is_patient(resource: Mapping[str, Any], patient_id: str) -> bool:
    """Whether a read answered with the Patient asked for (not another type or id)."""
    return resource.get("resourceType") == "Patient" and resource.get("id") == patient_id


def _row(patient: Mapping[str, Any]) -> PatientRow:
    return PatientRow(
        id=str(patient["id"]),
        name=human_name(patient.get("name")) or "(no name recorded)",
        birth_date=_text(patient.get("birthDate")),
        gender=_text(patient.get("gender")),
        identifier=_identifier(patient.get("identifier")),
    )


def _identifier(identifiers: Any) -> str:
    """The medical record number (type MR) if recorded, else the first identifier's value."""
    found = [
        i for i in _list(identifiers) if isinstance(i, dict) and isinstance(i.get("value"), str)
    ]
    for ident in found:
        codings = _list(_dict(ident.get("type")).get("coding"))
        if any(isinstance(c, dict) and c.get("code") == "MR" for c in codings):
            return str(ident["value"])
    return str(found[0]["value"]) if found else ""


def _list(value: Any) -> list[Any]:
    """A server's array, or none when it sent something else in its place."""
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _escaped(value: str) -> str:
    return _SEARCH_SPECIAL.sub(r"\\\1", value)


def _is_past_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        return dt.date.fromisoformat(value) <= dt.date.today()
    except ValueError:
        return False
