#!/usr/bin/env python3
"""Generate questionnaires/*.json from the instrument reference data in ../shared/instruments/.

A dev tool, run by hand when the reference data or the encoding changes; its output is committed.
Item wording is copied verbatim; only keys marked ``verified in 2 sources`` drive a score. The
building blocks live in scripts/qbuild/.

    .venv/bin/python scripts/build_questionnaires.py [--shared DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qbuild.ecr import build_ecr, build_ecr_r, build_ecr_rs
from qbuild.keys import SCORES
from qbuild.parts import SCALE_LABELS
from qbuild.resources import (
    codesystem_agreement_7,
    codesystem_attachment_pattern,
    codesystem_scores,
)
from qbuild.rq_prfq import build_prfq, build_rq

REPO = Path(__file__).resolve().parents[1]
Json = dict[str, Any]

BUILDERS: dict[str, Callable[[Path], Json]] = {
    "ecr-r": build_ecr_r,
    "ecr-rs": build_ecr_rs,
    "ecr": build_ecr,
    "rq": build_rq,
    "prfq": build_prfq,
}


def write(path: Path, resource: Json) -> None:
    """Stable, readable JSON: two-space indent, UTF-8, trailing newline."""
    path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Build every Questionnaire and the CodeSystems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "instruments")
    parser.add_argument("--out", type=Path, default=REPO / "questionnaires")
    args = parser.parse_args(argv)
    for qid, builder in BUILDERS.items():
        write(args.out / f"{qid}.json", builder(args.shared))
    concepts = [
        {"code": code, "display": display, "definition": definition}
        for code, (display, definition) in SCORES.items()
    ]
    write(args.out / "codesystem-attach-scores.json", codesystem_scores(concepts))
    write(args.out / "codesystem-agreement-7.json", codesystem_agreement_7(SCALE_LABELS))
    write(args.out / "codesystem-attachment-pattern.json", codesystem_attachment_pattern())
    return 0


if __name__ == "__main__":
    sys.exit(main())
