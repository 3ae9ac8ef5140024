#!/usr/bin/env python3
"""Generate questionnaires/*.json from the instrument reference data in ../shared/instruments/.

A dev tool, run by hand when the reference data or the encoding changes; its output is committed.
Item wording is copied verbatim; only keys marked ``verified in 2 sources`` drive a score.

    .venv/bin/python scripts/build_questionnaires.py [--shared DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from questionnaire_parts import (
    SourceError,
    build_questionnaire,
    choice_item,
    codesystem_agreement_7,
    codesystem_attachment_pattern,
    codesystem_scores,
    enabled_when_true,
    gate_item,
    mean_spec,
    ours,
    scale_options,
    verified,
)

from attach_fhir.canonical import ATTACHMENT_PATTERN_SYSTEM

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


TARGETS = [
    ("mother", "mother"),
    ("father", "father"),
    ("partner", "romantic partner"),
    ("friend", "best friend"),
]


def build_ecr_rs(shared: Path) -> Json:
    """ECR-RS: the same 9 items per target, each target skippable behind a boolean gate."""
    data = load(shared, "ecr-rs.json")
    verified(data["targets"]["confidence"]["four_targets"], "ecr-rs targets")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["endpoint_wording"])
    groups, entries = [], []
    for target, label in TARGETS:
        gate = f"{target}.applies"
        questions = [
            enabled_when_true(choice_item(f"{target}.{i['number']}", i, options), gate)
            for i in data["items"]
        ]
        groups.append(
            ours(
                {
                    "linkId": target,
                    "text": f"Your {label}",
                    "type": "group",
                    "item": [
                        gate_item(
                            gate, f"Do you want to answer the statements below about your {label}?"
                        ),
                        *questions,
                    ],
                }
            )
        )
        target_entries = subscale_entries(
            data,
            f"ecr-rs-{target}",
            [("avoidance", "avoidance", "lower"), ("anxiety", "anxiety", "lower")],
            focus=target,
        )
        for entry, dimension in zip(target_entries, ("avoidance", "anxiety"), strict=True):
            describe(
                entry["code"],
                f"ECR-RS attachment {dimension} ({label})",
                entry,
                f"higher = more attachment {dimension} in the relationship with the "
                f"respondent's {label}; not-applicable when that relationship is skipped.",
            )
        entries += target_entries
    return build_questionnaire(
        data,
        qid="ecr-rs",
        name="ECR_RS",
        title="Experiences in Close Relationships - Relationship Structures (ECR-RS)",
        description=(
            "The same 9 items answered for up to four relationships: mother, father, romantic "
            "partner, best friend (Fraley, Heffernan, Vicary & Brumbaugh 2011); each relationship "
            "can be skipped. Per relationship: avoidance = mean of items 1-6 with items 1-4 "
            "reversed (8 - x); anxiety = mean of items 7-9; range 1-7. The global scores "
            "(means of the four relationship scores) are single source and are not computed. "
            "7-point scale; its anchor wording is not verified, so no point is labelled "
            "(1 = strongly disagree ... 7 = strongly agree per two third-party descriptions). "
            "The relationship headings and skip questions are the app's wording."
        ),
        purpose="Attachment anxiety and avoidance within specific close relationships.",
        age={"text": "Written for a variety of age groups (author); validated with adults."},
        respondent="self",
        restrictions=[
            "Licence not confirmed (single source). Reference note: 'Research/clinical "
            "non-commercial use appears customary; commercial use is not addressed in anything "
            "retrieved - confirm with the author.'"
        ],
        items=groups,
        entries=entries,
        displays={e["code"]: SCORES[e["code"]][0] for e in entries},
        algorithm="ecr-rs-relationship-means",
    )


FISHER = re.compile(r"^([0-9.]+)\*Av \+ ([0-9.]+)\*Ax - ([0-9.]+)$")


def build_ecr(shared: Path) -> Json:
    """ECR (36 items): avoidance (odd) and anxiety (even) means, and the Fisher category."""
    data = load(shared, "ecr-36.json")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["labels"])
    items = [choice_item(str(i["number"]), i, options) for i in data["items"]]
    entries = subscale_entries(
        data, "ecr", [("anxiety", "anxiety", "lower"), ("avoidance", "avoidance", "lower")]
    )
    describe(
        "ecr-anxiety", "ECR attachment anxiety", entries[0], "higher = more attachment anxiety."
    )
    describe(
        "ecr-avoidance",
        "ECR attachment avoidance",
        entries[1],
        "higher = more attachment avoidance.",
    )
    cls = data["classification"]
    verified(cls["confidence"], "ecr classification")
    verified(data["confidence"]["classification_coefficients"], "ecr Fisher coefficients")
    candidates = []
    for category, function in cls["functions"].items():
        match = FISHER.match(function)
        if match is None:
            raise SourceError(f"ecr classification {category}: cannot read {function!r}")
        av, ax, constant = (float(g) for g in match.groups())
        candidates.append(
            {
                "category": category,
                "terms": [
                    {"score": "ecr-avoidance", "weight": av},
                    {"score": "ecr-anxiety", "weight": ax},
                ],
                "constant": -constant,
            }
        )
    category = {
        "code": "ecr-category",
        "linkId": "scores.ecr-category",
        "method": "argmax",
        "candidates": candidates,
    }
    SCORES["ecr-category"] = (
        "ECR attachment category",
        "The category (secure, fearful, preoccupied, dismissing) whose Fisher linear "
        "classification function of the avoidance (Av) and anxiety (Ax) means is highest "
        "(Brennan, Clark & Shaver 1998): "
        + "; ".join(f"{c}: {f}" for c, f in cls["functions"].items())
        + ". Valid only for full 36-item ECR means; categorical use is discouraged by later work.",
    )
    entries.append(category)
    return build_questionnaire(
        data,
        qid="ecr",
        name="ECR",
        title="Experiences in Close Relationships (ECR)",
        description=(
            "Original 36-item ECR (Brennan, Clark & Shaver 1998). Avoidance = mean of the odd "
            "items, anxiety = mean of the even items, after reversing items 3, 15, 19, 22, 25, "
            "27, 29, 31, 33 and 35 (8 - x); range 1-7. The four-category classification assigns "
            "the category whose published Fisher function is highest; it is valid only for the "
            "full 36-item ECR, and categorical use is discouraged by later work. 7-point scale; "
            "point labels are not verified, so none is shown. Respondent instructions (single "
            "source) are not included."
        ),
        purpose="Adult romantic attachment: anxiety, avoidance and a four-category classification.",
        age={"text": "Adults"},
        respondent="self",
        restrictions=[
            "Licence unconfirmed. Reference note: 'Confirm terms before commercial use.'",
            "Categorical use is discouraged by later work: prefer the two dimension scores.",
        ],
        items=items,
        entries=entries,
        displays={e["code"]: SCORES[e["code"]][0] for e in entries},
        algorithm="ecr-subscale-means-fisher-category",
    )


def build_rq(shared: Path) -> Json:
    """RQ: optional forced choice, then four prototype ratings scored by style name."""
    data = load(shared, "rq.json")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["anchors"])
    for item in data["items"]:
        verified(item["confidence"]["prototype_assignment"], f"rq item {item['number']}")
    verified(data["administration"]["confidence"]["two_part_format"], "rq forced choice")
    best_fit = ours(
        {
            "linkId": "best-fit",
            "text": "Which one of these descriptions best describes you or is closest to the way "
            "you are?",
            "type": "choice",
            "required": False,
            "answerOption": [
                {
                    "valueCoding": {
                        "system": ATTACHMENT_PATTERN_SYSTEM,
                        "code": i["subscale"],
                        "display": i["text"],
                    }
                }
                for i in data["items"]
            ],
        }
    )
    ratings = [choice_item(i["subscale"], i, options) for i in data["items"]]
    entries = [
        mean_spec(f"rq-{style}", [(style, False)], desirable)
        for style, desirable in [
            ("secure", "higher"),
            ("fearful", "lower"),
            ("preoccupied", "lower"),
            ("dismissing", "lower"),
        ]
    ]
    for entry in entries:
        style = entry["items"][0]["linkId"]
        SCORES[entry["code"]] = (
            f"RQ {style} rating",
            f"The rating (1-7) of the {style} prototype paragraph: how well it describes the "
            "respondent.",
        )
    dims = data["scoring"]["dimensions"]
    for suffix, plus, minus, what in [
        ("model-of-self", ["secure", "dismissing"], ["fearful", "preoccupied"], "model_of_self"),
        ("model-of-other", ["secure", "preoccupied"], ["fearful", "dismissing"], "model_of_other"),
    ]:
        verified(data["scoring"]["confidence"][f"{what}_formula"], f"rq {what}")
        entries.append(
            {
                "code": f"rq-{suffix}",
                "linkId": f"scores.rq-{suffix}",
                "method": "linear",
                "terms": [{"score": f"rq-{s}", "weight": 1} for s in plus]
                + [{"score": f"rq-{s}", "weight": -1} for s in minus],
                "constant": 0,
                "range": [-12, 12],
                "desirable": "higher",
            }
        )
        SCORES[f"rq-{suffix}"] = (
            f"RQ model of {suffix.rsplit('-', 1)[1]}",
            f"{dims[what]}; range -12 to 12; higher = more positive model of "
            f"{suffix.rsplit('-', 1)[1]} (Griffin & Bartholomew 1994).",
        )
    lic = data["license_note"]["text"]
    return build_questionnaire(
        data,
        qid="rq",
        name="RQ",
        title="Relationship Questionnaire (RQ)",
        description=(
            "Four paragraphs describing the secure, fearful, preoccupied and dismissing "
            "attachment prototypes (Bartholomew & Horowitz 1991). The respondent may first choose "
            "the paragraph that fits best, then rates each paragraph 1-7. Each rating is a "
            "prototype score; model of self = (Secure + Dismissing) - (Fearful + Preoccupied), "
            "model of other = (Secure + Preoccupied) - (Fearful + Dismissing), range -12 to 12. "
            "Scored by prototype name, never by paragraph position. The forced-choice question "
            "wording is the app's. Not for individual assessment (author)."
        ),
        purpose="Ratings of the four adult attachment prototypes; models of self and other.",
        age={"text": "Adults (close adult peer relationships)"},
        respondent="self",
        restrictions=[
            "Author (single source): '" + _quote(lic, "These measures were developed") + "'",
            "Author (single source): '" + _quote(lic, "You cannot use") + "'",
        ],
        items=[best_fit, *ratings],
        entries=entries,
        displays={e["code"]: SCORES[e["code"]][0] for e in entries},
        algorithm="rq-prototype-ratings",
    )


def _quote(text: str, start: str) -> str:
    """The sentence(s) of ``text`` from ``start`` to the closing quote mark."""
    begin = text.index(start)
    return text[begin : text.index("'", begin)]


def build_prfq(shared: Path) -> Json:
    """PRFQ: 18 items answered by a parent/caregiver; three subscale means."""
    data = load(shared, "prfq.json")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["endpoints"])
    items = [choice_item(str(i["number"]), i, options) for i in data["items"]]
    entries = subscale_entries(
        data,
        "prfq",
        [
            ("pre_mentalizing", "pre-mentalizing", "lower"),
            ("certainty_about_mental_states", "certainty", None),
            ("interest_and_curiosity", "interest-curiosity", "higher"),
        ],
    )
    meanings = [
        ("PRFQ pre-mentalizing", "higher = more non-mentalizing (pre-mentalizing) stance."),
        (
            "PRFQ certainty about mental states",
            "indexes certainty about the child's mental states (no direction: very high certainty "
            "may not be desirable; interpretation not verified).",
        ),
        (
            "PRFQ interest and curiosity",
            "higher = more interest and curiosity in the child's mental states.",
        ),
    ]
    for entry, (display, meaning) in zip(entries, meanings, strict=True):
        describe(entry["code"], display, entry, meaning)
    return build_questionnaire(
        data,
        qid="prfq",
        name="PRFQ",
        title="Parental Reflective Functioning Questionnaire (PRFQ)",
        description=(
            "18 items answered by a parent or caregiver about their child (Luyten, Mayes, "
            "Nijssens & Fonagy 2017). Three subscale means (range 1-7) after reversing items 11 "
            "and 18 (8 - x): pre-mentalizing (1, 4, 7, 10, 13, 16), certainty about mental states "
            "(2, 5, 8, 11, 14, 17), interest and curiosity (3, 6, 9, 12, 15, 18). No total score. "
            "Validated core child age 0-3. 7-point scale; point labels are single source, so none "
            "is shown (1 = strongly disagree ... 7 = strongly agree)."
        ),
        purpose="Parental reflective functioning: the parent's capacity to think about the "
        "child's mental states.",
        age={
            "text": "Respondent: parent/caregiver of a child aged 0-3 years (validated core range)"
        },
        respondent="parent-caregiver",
        restrictions=[
            "Licence unconfirmed. Reference note: 'No explicit free-use or commercial-use "
            "statement was found. Check the UCL page / contact the authors before deployment.'"
        ],
        items=items,
        entries=entries,
        displays={e["code"]: SCORES[e["code"]][0] for e in entries},
        algorithm="prfq-subscale-means",
    )


BUILDERS = {
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
    write(args.out / "codesystem-agreement-7.json", codesystem_agreement_7())
    write(args.out / "codesystem-attachment-pattern.json", codesystem_attachment_pattern())
    return 0


if __name__ == "__main__":
    sys.exit(main())
