"""The RQ (prototype ratings, forced choice) and the PRFQ (parent report)."""

from __future__ import annotations

from pathlib import Path

from .keys import SCORES, describe, load, subscale_entries
from .parts import (
    Json,
    choice_item,
    direction_item,
    item_number,
    mean_spec,
    ours,
    pattern_coding,
    scale_options,
    verified,
)
from .resources import build_questionnaire


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
            # The display is the CodeSystem's ("Secure"); the respondent reads the paragraph.
            "answerOption": [
                {"valueCoding": pattern_coding(i["subscale"], i["text"])} for i in data["items"]
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
    items = [direction_item(scale)]
    items += [choice_item(str(i["number"]), i, options, item_number(i)) for i in data["items"]]
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
            "is shown (1 = strongly disagree ... 7 = strongly agree); the line giving the scale's "
            "direction is the app's wording."
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
