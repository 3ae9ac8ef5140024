#!/usr/bin/env python3
"""Generate questionnaires/*.json from the instrument reference data in ../shared/instruments/.

A dev tool, run by hand when the reference data or the encoding changes; its output is committed.
Item wording is copied verbatim; only keys marked ``verified in 2 sources`` drive a score.

    .venv/bin/python scripts/build_questionnaires.py [--shared DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from questionnaire_parts import (
    build_questionnaire,
    choice_item,
    codesystem_agreement_7,
    codesystem_attachment_pattern,
    codesystem_scores,
    mean_spec,
    scale_options,
    verified,
)

REPO = Path(__file__).resolve().parents[1]
Json = dict[str, Any]

#: Score code -> (display, definition). Definitions restate the published key.
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


def build_ecr_r(shared: Path) -> Json:
    """ECR-R: 36 items; anxiety 1-18 and avoidance 19-36, means after reversal."""
    data = load(shared, "ecr-r.json")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["endpoints"])
    items = [choice_item(str(i["number"]), i, options) for i in data["items"]]
    entries = subscale_entries(
        data, "ecr-r", [("anxiety", "anxiety", "lower"), ("avoidance", "avoidance", "lower")]
    )
    describe(
        "ecr-r-anxiety", "ECR-R attachment anxiety", entries[0], "higher = more attachment anxiety."
    )
    describe(
        "ecr-r-avoidance",
        "ECR-R attachment avoidance",
        entries[1],
        "higher = more attachment avoidance.",
    )
    return build_questionnaire(
        data,
        qid="ecr-r",
        name="ECR_R",
        title="Experiences in Close Relationships - Revised (ECR-R)",
        description=(
            "36-item self-report measure of adult attachment in romantic relationships "
            "(Fraley, Waller & Brennan 2000). Attachment anxiety = mean of items 1-18, attachment "
            "avoidance = mean of items 19-36, after reversing items 9, 11, 20, 22, 26-31 and "
            "33-36 (8 - x); range 1-7, higher = more anxious / more avoidant. Scale points: "
            "1 = Strongly disagree, 7 = Strongly agree; points 2-6 are unlabelled (labels not "
            "verified). Respondent instructions were not retrieved. No quadrant classification "
            "is computed (not verified); no norms."
        ),
        purpose="Dimensional assessment of adult romantic attachment: anxiety and avoidance.",
        age={"range": (18, None)},
        respondent="self",
        restrictions=[
            "Licence unconfirmed. Reference note: 'Treat research/clinical non-commercial use "
            "as customary but UNCONFIRMED; read the current ecrr.htm FAQ (and contact the "
            "author) before any commercial or product deployment.'"
        ],
        items=items,
        entries=entries,
        displays={code: SCORES[code][0] for code in ("ecr-r-anxiety", "ecr-r-avoidance")},
        algorithm="ecr-r-subscale-means",
    )


BUILDERS = {"ecr-r": build_ecr_r}


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
    write(args.out / "codesystem-agreement-7.json", codesystem_agreement_7())
    write(args.out / "codesystem-attachment-pattern.json", codesystem_attachment_pattern())
    return 0


if __name__ == "__main__":
    sys.exit(main())
