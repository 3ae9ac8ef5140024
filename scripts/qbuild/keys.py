"""Reading the reference data: files, verified subscale keys, and the score code texts."""

from __future__ import annotations

import json
from pathlib import Path

from .parts import Json, mean_spec, verified

#: Score code -> (display, definition), filled by the builders in build order.
SCORES: dict[str, tuple[str, str]] = {}


def load(shared: Path, name: str) -> Json:
    """One reference file."""
    data: Json = json.loads((shared / name).read_text(encoding="utf-8"))
    return data


def describe(code: str, display: str, entry: Json, meaning: str) -> None:
    """Record a score's display and a definition generated from its model entry."""
    low, high = entry["range"]
    if entry["method"] == "mean":
        items = ", ".join(i["linkId"] for i in entry["items"])
        rev = [i["linkId"] for i in entry["items"] if i.get("reverse")]
        keyed = f", items {', '.join(rev)} reversed ({low + high} - x)" if rev else ""
        text = f"Mean of items {items}{keyed}; range {low}-{high}; {meaning}"
    else:
        text = meaning
    SCORES[code] = (display, text)


def subscale_entries(
    data: Json,
    prefix: str,
    subscales: list[tuple[str, str, str | None]],
    focus: str | None = None,
) -> list[Json]:
    """One mean score per (subscale, code suffix, desirable) whose key is verified."""
    out = []
    for name, suffix, desirable in subscales:
        sub = data["subscales"][name]
        verified(sub["confidence"], f"{data['id']} subscale {name}")
        out.append(
            mean_spec(
                code=f"{prefix}-{suffix}",
                items=[
                    (f"{focus}.{n}" if focus else str(n), n in sub["reverse"]) for n in sub["items"]
                ],
                desirable=desirable,
                focus=focus,
            )
        )
    return out
