"""Display names from FHIR HumanName lists (docs/architecture.md)."""

from __future__ import annotations

from typing import Any


def human_name(names: Any) -> str:
    """A display name from FHIR HumanName list: ``text``, else given + family of the first."""
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return ""
    preferred = next((n for n in names if isinstance(n, dict) and n.get("use") == "official"), None)
    name = preferred or names[0]
    if isinstance(name.get("text"), str) and name["text"]:
        return str(name["text"])
    parts = name.get("given")
    given = [g for g in parts if isinstance(g, str)] if isinstance(parts, list) else []
    family = str(name["family"]) if isinstance(name.get("family"), str) else ""
    return " ".join([*given, family]).strip()
