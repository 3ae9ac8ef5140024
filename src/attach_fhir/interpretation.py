"""What a score means, in the instrument's own terms: direction, range, items, provenance, change.

Every word comes from the packaged Questionnaire (generated from ``../shared/instruments``) and the
attach-scores CodeSystem: the concept ``definition`` says what a higher value means, the scoring
model says which items a score reads, which are reverse-keyed and its range, and the Questionnaire
``copyright`` carries the citation and licence status. Nothing here invents a norm or a cut-off.

Reliable change (Jacobson & Truax 1991) needs a reliability coefficient and a standard deviation.
Only figures ``verified in 2 sources`` in the reference data may be used; today none is (see
``NO_RELIABLE_CHANGE``), so :func:`change_since_baseline` reports the change and, instead of a
reliable-change figure, the reason there is none.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from attach_fhir.canonical import SCORING_MODEL_EXT
from attach_fhir.instruments import summarize
from attach_fhir.scoring_model import ScoreSpec, compile_model

#: z for a two-tailed 95% criterion (Jacobson & Truax 1991).
RCI_CRITERION = 1.96

_HIGHER = re.compile(r"higher = ([^;]+?)\.?(?:;|$)")
_NUMBERED = re.compile(r"^(?:(?P<prefix>.+)\.)?(?P<n>\d+)$")


@dataclass(frozen=True, slots=True)
class Reliability:
    """A published reliability coefficient and standard deviation, with where they come from."""

    coefficient: float
    kind: str
    sd: float
    citation: str


#: Instrument id -> reliability verified in 2 sources in ../shared/instruments. Empty: none is.
VERIFIED_RELIABILITY: Mapping[str, Reliability] = MappingProxyType({})

#: Instrument id -> why no reliable-change figure is shown (what the reference data records).
NO_RELIABLE_CHANGE: Mapping[str, str] = MappingProxyType(
    {
        "ecr-r": "the reference data records no reliability coefficient and no verified norms "
        "(standard deviation) for the ECR-R",
        "ecr-rs": "the only reliability figures in the reference data (about .65 and .80 30-day "
        "test-retest, from the author's page) are single source, and its norms are unverified",
        "ecr": "the reference data records no reliability coefficient and no verified norms "
        "(standard deviation) for the ECR",
        "rq": "the reference data records no reliability coefficient for the RQ, and its author "
        "says there are no adequate norms for interpreting individual results",
        "prfq": "the reference data records no reliability coefficient and no verified norms "
        "(standard deviation) for the PRFQ",
    }
)
_DEFAULT_REASON = "no reliability coefficient verified in two sources is recorded for it"


@dataclass(frozen=True, slots=True)
class ScoreMeaning:
    """One score explained: the CodeSystem's words plus the scoring model's structure."""

    code: str
    display: str
    #: The CodeSystem concept's definition, verbatim.
    definition: str
    #: What a higher value means (``more attachment anxiety``), or None when not stated.
    higher_means: str | None
    range: tuple[float, float] | None
    method: str
    #: ``mean``: the items read and the reverse-keyed ones (linkIds, model order).
    items: tuple[str, ...]
    reversed_items: tuple[str, ...]
    #: ``linear`` / ``argmax``: the scores combined.
    inputs: tuple[str, ...]
    #: ``linear``: (score code, weight) in model order.
    weights: tuple[tuple[str, float], ...]
    focus: str | None
    desirable: str | None

    @property
    def composition(self) -> str:
        """The subscale membership in plain words."""
        if self.method == "mean" and len(self.items) == 1:
            return f"The answer to {item_list(self.items)}"
        if self.method == "mean":
            text = f"Mean of {_count(len(self.items), 'item')} ({item_list(self.items)})"
            if self.reversed_items:
                text += f"; reverse-keyed: {item_list(self.reversed_items)}"
            return text
        if self.method == "linear":
            return "Computed as " + _linear(self.weights)
        return f"Category chosen from {', '.join(self.inputs)}"

    @property
    def range_text(self) -> str:
        """``1 to 7``, or an empty string when the model gives no range."""
        if self.range is None:
            return ""
        return f"{_number(self.range[0])} to {_number(self.range[1])}"


@dataclass(frozen=True, slots=True)
class InstrumentMeaning:
    """An instrument's scores explained, with its algorithm, citation and licence status."""

    id: str
    url: str
    version: str
    title: str
    algorithm_id: str
    algorithm_version: str
    citation: str
    licence_status: str
    licence_note: str
    restrictions: tuple[str, ...]
    scores: Mapping[str, ScoreMeaning]


@dataclass(frozen=True, slots=True)
class ReliableChange:
    """A reliable-change index and whether it passes the 95% criterion."""

    index: float
    criterion: float
    reliable: bool
    citation: str


@dataclass(frozen=True, slots=True)
class Change:
    """A score's change from the first to the latest value, and its reliable-change figure."""

    baseline: float
    latest: float
    difference: float
    #: ``higher``, ``lower`` or ``same``.
    direction: str
    #: True/False when the model names a desirable direction and the score moved; else None.
    towards_desirable: bool | None
    reliable_change: ReliableChange | None
    #: Why there is no reliable-change figure (None when there is one).
    no_reliable_change_reason: str | None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _linear(weights: Sequence[tuple[str, float]]) -> str:
    parts = []
    for i, (code, weight) in enumerate(weights):
        sign = "-" if weight < 0 else "+"
        size = abs(weight)
        term = code if size == 1 else f"{_number(size)} x {code}"
        parts.append(f"{'-' if sign == '-' else ''}{term}" if i == 0 else f"{sign} {term}")
    return " ".join(parts)


def _runs(numbers: list[int]) -> list[str]:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        if start == prev:
            out.append(str(start))
        elif prev == start + 1:
            out.append(f"{start}, {prev}")
        else:
            out.append(f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return out


def item_list(link_ids: Sequence[str]) -> str:
    """Item linkIds in plain words: ``items 1-18``, ``mother items 1-6``, ``item secure``."""
    groups: dict[str | None, list[int]] = {}
    plain: list[str] = []
    for link_id in link_ids:
        match = _NUMBERED.match(link_id)
        if match:
            groups.setdefault(match["prefix"], []).append(int(match["n"]))
        else:
            plain.append(link_id)
    parts = []
    for prefix, numbers in groups.items():
        label = "item" if len(numbers) == 1 else "items"
        words = f"{prefix} {label}" if prefix else label
        parts.append(f"{words} {', '.join(_runs(sorted(numbers)))}")
    if plain:
        parts.append(f"{'item' if len(plain) == 1 else 'items'} {', '.join(plain)}")
    return "; ".join(parts)


def higher_means(definition: str) -> str | None:
    """The ``higher = ...`` clause of a score definition, or None when it states no direction."""
    match = _HIGHER.search(definition)
    return match.group(1).strip() if match else None


def _meaning(spec: ScoreSpec, concept: Mapping[str, Any], raw: Mapping[str, Any]) -> ScoreMeaning:
    definition = str(concept.get("definition") or "")
    return ScoreMeaning(
        code=spec.code,
        display=str(concept.get("display") or spec.code),
        definition=definition,
        higher_means=higher_means(definition),
        range=spec.range,
        method=spec.method,
        items=tuple(link_id for link_id, _ in spec.items),
        reversed_items=tuple(i["linkId"] for i in raw.get("items", ()) if i.get("reverse")),
        inputs=spec.inputs,
        weights=tuple((t.score, t.weight) for t in spec.terms),
        focus=spec.focus,
        desirable=spec.desirable,
    )


def explain(questionnaire: Mapping[str, Any], concepts: Mapping[str, Any]) -> InstrumentMeaning:
    """Explain every score of a Questionnaire; ``concepts`` is score code -> CodeSystem concept."""
    model = compile_model(questionnaire)
    summary = summarize(dict(questionnaire))
    raw_scores = _raw_scores(questionnaire)
    order = list(raw_scores)
    ordered = sorted(model.scores, key=lambda s: order.index(s.code) if s.code in order else 0)
    return InstrumentMeaning(
        id=summary.id,
        url=summary.url,
        version=summary.version,
        title=summary.title,
        algorithm_id=model.algorithm_id,
        algorithm_version=model.algorithm_version,
        citation=summary.citation,
        licence_status=summary.licence_status,
        licence_note=summary.licence_note,
        restrictions=summary.restrictions,
        scores={
            s.code: _meaning(s, concepts.get(s.code) or {}, raw_scores[s.code]) for s in ordered
        },
    )


def _raw_scores(questionnaire: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Score code -> its entry in the scoring-model document (for the reverse flags)."""
    for ext in questionnaire.get("extension") or []:
        if ext.get("url") == SCORING_MODEL_EXT:
            document = json.loads(ext["valueString"])
            return {s["code"]: s for s in document.get("scores", [])}
    return {}


def reliable_change(baseline: float, latest: float, reliability: Reliability) -> ReliableChange:
    """Jacobson & Truax's RCI: (latest - baseline) / (SD * sqrt(2 * (1 - r)))."""
    s_diff = reliability.sd * math.sqrt(2 * (1 - reliability.coefficient))
    index = (latest - baseline) / s_diff
    return ReliableChange(
        index=index,
        criterion=RCI_CRITERION,
        reliable=abs(index) > RCI_CRITERION,
        citation=reliability.citation,
    )


def change_since_baseline(
    instrument_id: str,
    meaning: ScoreMeaning,
    baseline: float,
    latest: float,
    reliability: Mapping[str, Reliability] = VERIFIED_RELIABILITY,
) -> Change:
    """The change from ``baseline`` to ``latest``; a reliable-change figure only if verified."""
    difference = latest - baseline
    direction = "higher" if difference > 0 else "lower" if difference < 0 else "same"
    towards = None
    if meaning.desirable in ("higher", "lower") and direction != "same":
        towards = direction == meaning.desirable
    verified = reliability.get(instrument_id)
    if verified is None:
        reason = NO_RELIABLE_CHANGE.get(instrument_id, _DEFAULT_REASON)
        return Change(baseline, latest, difference, direction, towards, None, reason)
    return Change(
        baseline,
        latest,
        difference,
        direction,
        towards,
        reliable_change(baseline, latest, verified),
        None,
    )
