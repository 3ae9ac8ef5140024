"""Jinja filters every page shares: ``score`` shows a number rounded for reading."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask

from attach_fhir.reading import for_reading


def score(value: Any, missing: str = "") -> str:
    """``value`` rounded for reading (two decimals); ``missing`` for None or an empty string."""
    if value is None or value == "":
        return missing
    if isinstance(value, str):
        try:
            return for_reading(Decimal(value.strip()))
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    return for_reading(value)


def score_change(value: Any) -> str:
    """A difference rounded for reading with its sign: ``+0.50``, ``-1.25``, ``0.00``."""
    text = score(value)
    return f"+{text}" if text and not text.startswith("-") and text.strip("0.") else text


#: Characters a text area of the care-plan pages holds on one line at its widest (40rem).
LINE_CHARS = 70


def text_rows(text: Any, least: int = 2) -> int:
    """Rows for a text area to show ``text`` whole (long lines wrapped), at least ``least``."""
    lines = str(text or "").split("\n")
    needed = sum(max(1, -(-len(line) // LINE_CHARS)) for line in lines)
    return max(least, needed + 1)


def init_app(app: Flask) -> None:
    """Register the filters on ``app``'s Jinja environment."""
    app.add_template_filter(score, "score")
    app.add_template_filter(score_change, "score_change")
    app.add_template_filter(text_rows, "text_rows")
