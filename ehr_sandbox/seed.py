"""Synthetic seed data for the sandbox FHIR server, with dates computed from a reference day.

The template ``seed/sandbox-patients.json`` is a transaction Bundle whose dates are placeholders,
so that ages stay right whatever day the sandbox starts:

- ``"AGE:<years>:<days>"`` becomes the birth date of someone exactly ``years`` old plus ``days``
  (``days`` < 365, so the age in whole years is ``years``);
- ``"DAYS_AGO:<n>:<suffix>"`` becomes the date ``n`` days before the reference day followed by
  ``suffix`` (e.g. ``T09:00:00Z`` for a dateTime).
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

TEMPLATE = "sandbox-patients.json"

# Logical ids of the seeded people, for tests and the launch page; ages are whole years.
PATIENTS: dict[str, tuple[str, int]] = {
    "child": ("sandbox-child-4", 4),
    "school_age_child": ("sandbox-child-9", 9),
    "adolescent": ("sandbox-adolescent-15", 15),
    "adult": ("sandbox-adult-29", 29),
    "parent": ("sandbox-parent-41", 41),
}
PRACTITIONERS = ("sandbox-practitioner-rowan", "sandbox-practitioner-jordan")
PARENT_OF_CHILD = "sandbox-parent-of-child-4"


def years_before(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` earlier (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _resolve(value: str, today: dt.date) -> str:
    kind, _, rest = value.partition(":")
    if kind == "AGE":
        years, days = (int(part) for part in rest.split(":"))
        return (years_before(today, years) - dt.timedelta(days=days)).isoformat()
    if kind == "DAYS_AGO":
        days_text, _, suffix = rest.partition(":")
        return (today - dt.timedelta(days=int(days_text))).isoformat() + suffix
    return value


def _walk(node: Any, today: dt.date) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, today) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, today) for value in node]
    if isinstance(node, str):
        return _resolve(node, today)
    return node


def build_seed_bundle(today: dt.date | None = None) -> dict[str, Any]:
    """Return the seed transaction Bundle with every date placeholder resolved against ``today``."""
    text = resources.files("ehr_sandbox").joinpath("seed", TEMPLATE).read_text(encoding="utf-8")
    resolved: dict[str, Any] = _walk(json.loads(text), today or dt.date.today())
    return resolved


def write_seed_bundle(path: Path, today: dt.date | None = None) -> Path:
    """Write the resolved seed Bundle to ``path`` (for ``server.mjs --seed``) and return it."""
    path.write_text(json.dumps(build_seed_bundle(today)), encoding="utf-8")
    return path
