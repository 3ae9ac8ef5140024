"""Reading a rules file (care-plan rules, fit rules): a clinic's own JSON, or the shipped one."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any


def read_clinic_file(
    path: str | Path, invalid: Callable[[list[str], str], Exception]
) -> tuple[Any, str]:
    """The JSON document at ``path`` and its source name; ``invalid(problems, source)`` is raised
    when the file cannot be read as JSON."""
    source = str(path)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")), source
    except (OSError, ValueError) as exc:
        raise invalid([f"(file): cannot be read as JSON: {exc}"], source) from exc


def read_shipped(name: str) -> Any:
    """A JSON document shipped in the ``attach_fhir`` package."""
    return json.loads(resources.files("attach_fhir").joinpath(name).read_text(encoding="utf-8"))
