"""Which packaged instruments fit the patient in context, and why (the Choose page's logic).

The verdicts come from :mod:`attach_fhir.instrument_fit` and the clinic's fit rules
(``ATTACH_FIT_RULES``, else the shipped ones), loaded and validated when the app starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, current_app

from attach_fhir.instrument_fit import (
    RANK,
    FitRules,
    Level,
    PatientFacts,
    Section,
    fit,
    hidden_sections,
    load_rules,
    shipped_rules,
)
from attach_fhir.instruments import Instrument

__all__ = [
    "Choice",
    "PatientFacts",
    "choices",
    "hidden",
    "init_app",
    "rules",
    "rules_have_sections",
]

EXTENSION = "attach_fit_rules"


@dataclass(frozen=True)
class Choice:
    """One instrument as the Choose page offers it."""

    instrument: Instrument
    purpose: str
    fit: Level
    reason: str
    #: Who answers: ``patient`` or ``caregiver`` (a parent/caregiver about a young child).
    respondent: str = "patient"
    #: Use restrictions that change what a clinician may do: visible before starting.
    key_restrictions: tuple[str, ...] = ()
    #: The other restrictions and licence notes (behind a disclosure).
    other_restrictions: tuple[str, ...] = ()


def init_app(app: Flask) -> None:
    """Load the clinic's fit rules (``ATTACH_FIT_RULES``, else the shipped ones) onto ``app``;
    bad rules stop the start."""
    path = app.config.get("FIT_RULES")
    app.extensions[EXTENSION] = load_rules(path) if path else shipped_rules()


def rules() -> FitRules:
    """The clinic's fit rules (or the shipped ones outside an app that loaded them)."""
    found: FitRules | None = current_app.extensions.get(EXTENSION)
    return found if found is not None else shipped_rules()


def choices(
    instruments: Iterable[tuple[Instrument, Mapping[str, Any]]], facts: PatientFacts, today: date
) -> list[Choice]:
    """Every instrument with its fit for this patient: fitting first, then title order."""
    found = rules()
    out = []
    for inst, q in instruments:
        verdict = fit(found, inst.id, facts, today)
        purpose = str(q.get("purpose") or "")
        rule = found.instruments.get(inst.id)
        key, other = rule.splits(inst.restrictions) if rule else ((), inst.restrictions)
        out.append(
            Choice(inst, purpose, verdict.level, verdict.reason, verdict.respondent, key, other)
        )
    return sorted(out, key=lambda c: (RANK[c.fit], c.instrument.title))


def rules_have_sections(instrument_id: str) -> bool:
    """Whether the clinic's rules hide any section of this instrument for some patients."""
    rule = rules().instruments.get(instrument_id)
    return bool(rule and rule.sections)


def hidden(instrument_id: str, facts: PatientFacts, today: date) -> tuple[Section, ...]:
    """The instrument's sections that do not apply to this patient."""
    return hidden_sections(rules(), instrument_id, facts, today)
