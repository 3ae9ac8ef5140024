"""Paths and readers shared by the instrument-library tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
QUESTIONNAIRES = REPO / "questionnaires"
SHARED = REPO.parent / "shared" / "instruments"

#: Questionnaire id -> the reference file it is encoded from.
SOURCES = {
    "ecr-r": "ecr-r.json",
    "ecr-rs": "ecr-rs.json",
    "ecr": "ecr-36.json",
    "rq": "rq.json",
    "prfq": "prfq.json",
}
TARGETS = ["mother", "father", "partner", "friend"]


def load(path: Path) -> dict[str, Any]:
    """One JSON file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def packaged(instrument: str) -> dict[str, Any]:
    """The packaged Questionnaire file ``questionnaires/<instrument>.json``."""
    return load(QUESTIONNAIRES / f"{instrument}.json")


def questionnaire(qid: str) -> dict[str, Any]:
    """A committed Questionnaire."""
    return load(QUESTIONNAIRES / f"{qid}.json")


def require_shared() -> Path:
    """The instrument reference data folder: skips without it, except in CI, which provides it.

    A clone holds only the Questionnaires built from that data; the tests that compare them with
    the source (wording, keys, the generator's output) need ``shared/instruments`` beside the
    clone, as CI lays it. Without it they skip on a developer's machine, naming the path; in CI
    (``CI`` set) its absence is an error, so a run can never pass by skipping them."""
    if not SHARED.is_dir():
        reason = f"instrument reference data not found: {SHARED} (shared/ beside the clone)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it", pytrace=False)
        pytest.skip(reason)
    return SHARED


def shared(qid: str) -> dict[str, Any]:
    """The reference data of an instrument (see ``require_shared``)."""
    return load(require_shared() / SOURCES[qid])


def model(q: dict[str, Any]) -> dict[str, Any]:
    """The scoring-model document of a Questionnaire."""
    [ext] = [e for e in q["extension"] if e["url"].endswith("/StructureDefinition/scoring-model")]
    data: dict[str, Any] = json.loads(ext["valueString"])
    return data


def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item at any depth, in document order."""
    out = []
    for item in items:
        out.append(item)
        out.extend(walk(item.get("item", [])))
    return out


def response(answers: dict[str, Any]) -> dict[str, Any]:
    """A QuestionnaireResponse: int -> a scale-point Coding, bool -> valueBoolean."""
    items = []
    for link_id, value in answers.items():
        if isinstance(value, bool):
            answer: dict[str, Any] = {"valueBoolean": value}
        else:
            answer = {
                "valueCoding": {
                    "system": "http://attach-fhir.org/fhir/CodeSystem/agreement-7",
                    "code": str(value),
                }
            }
        items.append({"linkId": link_id, "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
