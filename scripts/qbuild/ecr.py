"""The ECR family: ECR-R, ECR-RS (per relationship) and the original 36-item ECR."""

from __future__ import annotations

import re
from pathlib import Path

from .keys import SCORES, describe, load, subscale_entries
from .parts import (
    Json,
    SourceError,
    choice_item,
    direction_item,
    enabled_when_true,
    gate_item,
    item_number,
    ours,
    scale_options,
    verified,
)
from .resources import build_questionnaire


def build_ecr_r(shared: Path) -> Json:
    """ECR-R: 36 items; anxiety 1-18 and avoidance 19-36, means after reversal."""
    data = load(shared, "ecr-r.json")
    scale = data["response_scale"]
    options = scale_options(scale, scale["confidence"]["endpoints"])
    items = [choice_item(str(i["number"]), i, options, item_number(i)) for i in data["items"]]
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
            enabled_when_true(
                choice_item(f"{target}.{i['number']}", i, options, item_number(i)), gate
            )
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
            "The relationship headings, skip questions and the line giving the scale's "
            "direction (1 = disagree ... 7 = agree) are the app's wording."
        ),
        purpose="Attachment anxiety and avoidance within specific close relationships.",
        age={"text": "Written for a variety of age groups (author); validated with adults."},
        respondent="self",
        restrictions=[
            "Licence not confirmed (single source). Reference note: 'Research/clinical "
            "non-commercial use appears customary; commercial use is not addressed in anything "
            "retrieved - confirm with the author.'"
        ],
        items=[direction_item(scale), *groups],
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
    items = [direction_item(scale)]
    items += [choice_item(str(i["number"]), i, options, item_number(i)) for i in data["items"]]
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
            "point labels are not verified, so none is shown; the line giving the scale's "
            "direction (1 = disagree ... 7 = agree) is the app's wording. Respondent instructions "
            "(single source) are not included."
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
