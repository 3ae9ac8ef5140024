"""Configuration files: the JSON in one, or a typed error naming the file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attach_fhir.errors import AttachError


def read_config_json(path: Path, what: str, error: type[AttachError]) -> Any:
    """The JSON in ``path``; ``error`` ("<what> <path>: ...") when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: invalid JSON ({exc})") from exc
