"""Fixed responses with scores worked out by hand from the published keys.

Keys come from /work/shared/instruments/*.json (``subscales``, ``scoring``, ``classification``),
not from the Questionnaires under test; each expected value shows its arithmetic. Reverse keying
on a 1-7 scale is 8 - raw. Both the Python scorer (test_scoring) and the Questionnaires' own
FHIRPath (test_scoring_agreement) must reproduce every value here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

# Published keys, copied from the reference data.
ECR_R_REVERSED = {9, 11, 20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}
ECR_AVOIDANCE_ITEMS = list(range(1, 37, 2))  # odd items
ECR_ANXIETY_ITEMS = list(range(2, 37, 2))  # even items
ECR_REVERSED = {3, 15, 19, 22, 25, 27, 29, 31, 33, 35}


@dataclass(frozen=True)
class Example:
    """A response (linkId -> option code or gate bool) and its hand-computed scores."""

    name: str
    instrument: str
    answers: dict[str, object]
    expected: dict[str, object]
    #: Codes whose status is not-applicable (ECR-RS targets whose gate is not true).
    not_applicable: set[str] = field(default_factory=set)


def assert_scored(observation: Mapping[str, Any], expected: object) -> None:
    """The score Observation holds ``expected``: a category code, or a number (float precision)."""
    if isinstance(expected, str):
        assert observation["valueCodeableConcept"]["coding"][0]["code"] == expected
    else:
        assert observation["valueQuantity"]["value"] == pytest.approx(expected)


def cycle(first: int, last: int, overrides: dict[int, int] | None = None) -> dict[str, object]:
    """Items first..last answered 1,2,...,7,1,2,... (item n -> ((n - 1) mod 7) + 1)."""
    out: dict[str, object] = {str(n): str((n - 1) % 7 + 1) for n in range(first, last + 1)}
    for n, value in (overrides or {}).items():
        out[str(n)] = str(value)
    return out


def ecr_corner(avoidance_high: bool, anxiety_high: bool) -> dict[str, object]:
    """ECR answers giving avoidance and anxiety means of exactly 1 or 7 after reversal."""
    out: dict[str, object] = {}
    for items, high in ((ECR_AVOIDANCE_ITEMS, avoidance_high), (ECR_ANXIETY_ITEMS, anxiety_high)):
        for n in items:
            keyed = 7 if high else 1
            out[str(n)] = str(8 - keyed if n in ECR_REVERSED else keyed)
    return out


def rs_target(target: str, applies: object, values: list[int] | None) -> dict[str, object]:
    """ECR-RS answers for one target: the gate, then items 1-9 if given."""
    out: dict[str, object] = {}
    if applies is not None:
        out[f"{target}.applies"] = applies
    for n, value in enumerate(values or [], start=1):
        out[f"{target}.{n}"] = str(value)
    return out


EXAMPLES = [
    Example(
        "ecr-r all 7",
        "ecr-r",
        cycle(1, 36, {n: 7 for n in range(1, 37)}),
        {
            # anxiety: 16 plain items x 7 + items 9, 11 reversed (8 - 7 = 1) = 112 + 2 = 114; /18
            "ecr-r-anxiety": 114 / 18,
            # avoidance: 6 plain (19,21,23,24,25,32) x 7 = 42 + 12 reversed x 1 = 12 -> 54 / 18
            "ecr-r-avoidance": 54 / 18,
        },
    ),
    Example(
        "ecr-r cycling 1..7, item 11 = 7",
        "ecr-r",
        cycle(1, 36, {11: 7}),
        {
            # items 1-18 raw 1 2 3 4 5 6 7 1 2 3 7 5 6 7 1 2 3 4; 9: 8-2 = 6, 11: 8-7 = 1
            # 1+2+3+4+5+6+7 + 1+6+3+1+5+6+7 + 1+2+3+4 = 28 + 29 + 10 = 67
            "ecr-r-anxiety": 67 / 18,
            # items 19-36 raw 5 6 7 1 2 3 4 5 6 7 1 2 3 4 5 6 7 1; reversed 20,22,26-31,33-36:
            # 5 + (8-6) + 7 + (8-1) + 2 + 3 + 4 + (8-5) + (8-6) + (8-7) + (8-1) + (8-2) + (8-3)
            # + 4 + (8-5) + (8-6) + (8-7) + (8-1) = 5+2+7+7+2+3+4+3+2+1+7+6+5+4+3+2+1+7 = 71
            "ecr-r-avoidance": 71 / 18,
        },
    ),
    Example(
        "ecr-rs mother answered, father skipped, partner all 7, friend gate unanswered",
        "ecr-rs",
        {
            **rs_target("mother", True, [2, 3, 1, 5, 6, 4, 7, 5, 3]),
            **rs_target("father", False, None),
            **rs_target("partner", True, [7] * 9),
            **rs_target("friend", None, None),
        },
        {
            # avoidance = mean(8-2, 8-3, 8-1, 8-5, 6, 4) = (6+5+7+3+6+4)/6 = 31/6
            "ecr-rs-mother-avoidance": 31 / 6,
            # anxiety = mean(7, 5, 3) = 15/3
            "ecr-rs-mother-anxiety": 15 / 3,
            # avoidance = mean(1, 1, 1, 1, 7, 7) = 18/6; anxiety = mean(7, 7, 7)
            "ecr-rs-partner-avoidance": 18 / 6,
            "ecr-rs-partner-anxiety": 7.0,
        },
        not_applicable={
            "ecr-rs-father-avoidance",
            "ecr-rs-father-anxiety",
            "ecr-rs-friend-avoidance",
            "ecr-rs-friend-anxiety",
        },
    ),
    # ECR corners: Av, Ax in {1, 7}; category = highest Fisher function (ecr-36.json):
    #   secure      3.2893296 Av + 5.4725318 Ax - 11.5307833
    #   fearful     7.2371075 Av + 8.1776448 Ax - 32.3553266
    #   preoccupied 3.9246754 Av + 9.7102446 Ax - 28.4573220
    #   dismissing  7.3654621 Av + 4.9392039 Ax - 22.2281088
    Example(
        "ecr low avoidance, low anxiety",
        "ecr",
        ecr_corner(False, False),
        {
            "ecr-avoidance": 1.0,
            "ecr-anxiety": 1.0,
            # secure -2.7689219, fearful -16.9405743, preoccupied -14.8224020,
            # dismissing -9.9234428 -> secure
            "ecr-category": "secure",
        },
    ),
    Example(
        "ecr high avoidance, high anxiety",
        "ecr",
        ecr_corner(True, True),
        {
            "ecr-avoidance": 7.0,
            "ecr-anxiety": 7.0,
            # secure 49.8022465, fearful 75.5479395, preoccupied 66.9871180,
            # dismissing 63.9045532 -> fearful
            "ecr-category": "fearful",
        },
    ),
    Example(
        "ecr low avoidance, high anxiety",
        "ecr",
        ecr_corner(False, True),
        {
            "ecr-avoidance": 1.0,
            "ecr-anxiety": 7.0,
            # secure 3.2893296 + 38.3077226 - 11.5307833 = 30.0662689
            # fearful 7.2371075 + 57.2435136 - 32.3553266 = 32.1252945
            # preoccupied 3.9246754 + 67.9717122 - 28.4573220 = 43.4390656
            # dismissing 7.3654621 + 34.5744273 - 22.2281088 = 19.7117806 -> preoccupied
            "ecr-category": "preoccupied",
        },
    ),
    Example(
        "ecr high avoidance, low anxiety",
        "ecr",
        ecr_corner(True, False),
        {
            "ecr-avoidance": 7.0,
            "ecr-anxiety": 1.0,
            # secure 23.0253072 + 5.4725318 - 11.5307833 = 16.9670557
            # fearful 50.6597525 + 8.1776448 - 32.3553266 = 26.4820707
            # preoccupied 27.4727278 + 9.7102446 - 28.4573220 = 8.7256504
            # dismissing 51.5582347 + 4.9392039 - 22.2281088 = 34.2693298 -> dismissing
            "ecr-category": "dismissing",
        },
    ),
    Example(
        "ecr all 4",
        "ecr",
        cycle(1, 36, {n: 4 for n in range(1, 37)}),
        {
            # 4 reverses to 8 - 4 = 4, so both means are 4
            "ecr-avoidance": 4.0,
            "ecr-anxiety": 4.0,
            # secure 35.0474456 - 11.5307833 = 23.5166623; fearful 61.6590092 - 32.3553266 =
            # 29.3036826; preoccupied 54.5396800 - 28.4573220 = 26.0823580; dismissing
            # 49.2186640 - 22.2281088 = 26.9905552 -> fearful
            "ecr-category": "fearful",
        },
    ),
    Example(
        "rq secure-leaning",
        "rq",
        {
            "best-fit": "secure",
            "secure": "6",
            "fearful": "2",
            "preoccupied": "3",
            "dismissing": "5",
        },
        {
            "rq-secure": 6.0,
            "rq-fearful": 2.0,
            "rq-preoccupied": 3.0,
            "rq-dismissing": 5.0,
            # self = (secure + dismissing) - (fearful + preoccupied) = (6 + 5) - (2 + 3) = 6
            "rq-model-of-self": 6.0,
            # other = (secure + preoccupied) - (fearful + dismissing) = (6 + 3) - (2 + 5) = 2
            "rq-model-of-other": 2.0,
        },
    ),
    Example(
        "rq fearful and preoccupied, no forced choice",
        "rq",
        {"secure": "1", "fearful": "7", "preoccupied": "7", "dismissing": "1"},
        {
            "rq-secure": 1.0,
            "rq-fearful": 7.0,
            "rq-preoccupied": 7.0,
            "rq-dismissing": 1.0,
            # self = (1 + 1) - (7 + 7) = -12; other = (1 + 7) - (7 + 1) = 0
            "rq-model-of-self": -12.0,
            "rq-model-of-other": 0.0,
        },
    ),
    Example(
        "prfq cycling 1..7, item 11 = 1, item 18 = 7",
        "prfq",
        cycle(1, 18, {11: 1, 18: 7}),
        {
            # PM items 1,4,7,10,13,16 raw 1,4,7,3,6,2 = 23
            "prfq-pre-mentalizing": 23 / 6,
            # CMS items 2,5,8,11,14,17 = 2 + 5 + 1 + (8-1) + 7 + 3 = 25
            "prfq-certainty": 25 / 6,
            # IC items 3,6,9,12,15,18 = 3 + 6 + 2 + 5 + 1 + (8-7) = 18
            "prfq-interest-curiosity": 18 / 6,
        },
    ),
]
