"""The scoring model of one Questionnaire, compiled once into frozen lookup tables.

``compile_model`` reads the Questionnaire's items (answer options with their ordinal values,
``required``, ``repeats``, ``enableWhen``) and its scoring-model extension, and precomputes what
checking and scoring a response needs: linkId -> option -> (reverse-keyed) value, the items each
score reads, and the order in which derived scores can be computed. Nothing here is specific to
one instrument.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from attach_fhir.canonical import (
    ORDINAL_VALUE_EXT,
    SCORES_EARLIER_VERSION_EXT,
    SCORING_MODEL_EXT,
)
from attach_fhir.errors import AttachError
from attach_fhir.frozen import derived

#: An answer option as the response carries it: (Coding.system, Coding.code).
OptionKey = tuple[str | None, str]


class InvalidScoringModel(AttachError):
    """The Questionnaire's scoring model cannot be compiled; ``problems`` lists every reason."""

    code = "invalid_scoring_model"
    description = "The Questionnaire's scoring model is invalid."
    status_code = 500


@dataclass(frozen=True, slots=True)
class EnableWhen:
    """One enableWhen condition, its answer already converted to the form answers are kept in."""

    question: str
    operator: str
    answer: object


@dataclass(frozen=True, slots=True)
class EnableRule:
    """Items sharing one chain of enableWhen levels (the item's own, then each ancestor's)."""

    #: Each level: (conditions, True if any may hold, False if all must).
    levels: tuple[tuple[tuple[EnableWhen, ...], bool], ...]
    link_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """What the response checker needs to know about one Questionnaire item."""

    link_id: str
    type: str
    required: bool
    repeats: bool
    read_only: bool
    #: (system, code) -> code, for ``choice`` items.
    options: Mapping[OptionKey, str]
    #: The one system every option shares, and their codes (empty when the systems differ, so
    #: the checker's fast path defers to the thorough walk).
    system: str | None
    codes: frozenset[str]
    children: Mapping[str, ItemSpec]
    enable_when: tuple[EnableWhen, ...]
    enable_any: bool
    parent: str | None


@dataclass(frozen=True, slots=True)
class Term:
    """``weight`` x the value of another score."""

    score: str
    weight: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """One category of an ``argmax`` score and its linear function."""

    category: str
    coding: Mapping[str, str]
    terms: tuple[Term, ...]
    constant: float


@dataclass(frozen=True, slots=True)
class ScoreSpec:
    """One score, with every table the hot loop needs already built."""

    code: str
    link_id: str
    method: str
    #: ``mean``: (linkId, answer code -> value with any reverse key applied), in model order.
    items: tuple[tuple[str, Mapping[str, float]], ...]
    #: ``mean``: the same, as two parallel tuples for the hot loop.
    item_ids: tuple[str, ...]
    tables: tuple[Mapping[str, float], ...]
    #: ``linear``: the weighted scores.
    terms: tuple[Term, ...]
    constant: float
    #: ``argmax``: the categories.
    candidates: tuple[Candidate, ...]
    #: Scores this one is computed from (``linear`` and ``argmax``).
    inputs: tuple[str, ...]
    focus: str | None
    desirable: str | None
    range: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class ScoringModel:
    """A compiled Questionnaire: its canonical, algorithm, items and scores in dependency order."""

    questionnaire: str
    algorithm_id: str
    algorithm_version: str
    items: Mapping[str, ItemSpec]
    top_items: Mapping[str, ItemSpec]
    required: tuple[ItemSpec, ...]
    required_ids: frozenset[str]
    enable_rules: tuple[EnableRule, ...]
    scores: tuple[ScoreSpec, ...]
    #: The canonicals whose responses this model checks and scores: its own ``url|version`` and
    #: each earlier version the Questionnaire declares it scores identically.
    answers_for: frozenset[str] = frozenset()

    @property
    def has_enable_when(self) -> bool:
        """Whether any item (or an ancestor) depends on enableWhen."""
        return bool(self.enable_rules)


def _ordinal(option: Mapping[str, Any]) -> float | None:
    for ext in option.get("extension", ()):
        if ext.get("url") == ORDINAL_VALUE_EXT and "valueDecimal" in ext:
            return float(ext["valueDecimal"])
    return None


def _enable_when_answer(condition: Mapping[str, Any]) -> object:
    for key, value in condition.items():
        if key == "answerCoding":
            return (value.get("system"), value.get("code"))
        if key.startswith("answer"):
            return value
    return None


def _walk(
    items: list[dict[str, Any]], parent: str | None
) -> Iterator[tuple[dict[str, Any], str | None]]:
    for item in items:
        yield item, parent
        yield from _walk(item.get("item", []), item.get("linkId"))


def _item_specs(
    questionnaire: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, ItemSpec], dict[str, ItemSpec], dict[str, dict[str, float]]]:
    """All items by linkId, the top-level ones, and each choice item's code -> ordinal value."""
    raw: dict[str, tuple[dict[str, Any], str | None]] = {}
    ordinals: dict[str, dict[str, float]] = {}
    for item, parent in _walk(questionnaire.get("item", []), None):
        link_id = item.get("linkId")
        if not isinstance(link_id, str):
            problems.append("an item has no linkId")
            continue
        if link_id in raw:
            problems.append(f"linkId {link_id!r} is used twice")
        raw[link_id] = (item, parent)
        values = {}
        for option in item.get("answerOption", ()):
            coding = option.get("valueCoding")
            ordinal = _ordinal(option)
            if coding is not None and ordinal is not None:
                values[coding["code"]] = ordinal
        ordinals[link_id] = values

    specs: dict[str, ItemSpec] = {}

    def build(link_id: str) -> ItemSpec:
        if link_id in specs:
            return specs[link_id]
        item, parent = raw[link_id]
        children = {c["linkId"]: build(c["linkId"]) for c in item.get("item", []) if "linkId" in c}
        options = {
            (o["valueCoding"].get("system"), o["valueCoding"]["code"]): o["valueCoding"]["code"]
            for o in item.get("answerOption", ())
            if "valueCoding" in o
        }
        conditions = tuple(
            EnableWhen(c["question"], c["operator"], _enable_when_answer(c))
            for c in item.get("enableWhen", ())
        )
        systems = {system for system, _ in options}
        spec = ItemSpec(
            link_id=link_id,
            type=item.get("type", "display"),
            required=bool(item.get("required", False)),
            repeats=bool(item.get("repeats", False)),
            read_only=bool(item.get("readOnly", False)),
            options=options,
            system=next(iter(systems)) if len(systems) == 1 else None,
            codes=frozenset(code for _, code in options) if len(systems) == 1 else frozenset(),
            children=children,
            enable_when=conditions,
            enable_any=item.get("enableBehavior") == "any",
            parent=parent,
        )
        specs[link_id] = spec
        return spec

    top = {i["linkId"]: build(i["linkId"]) for i in questionnaire.get("item", []) if "linkId" in i}
    for link_id in raw:
        build(link_id)
    for spec in specs.values():
        for condition in spec.enable_when:
            if condition.question not in specs:
                problems.append(f"item {spec.link_id!r} enableWhen refers to unknown linkId")
    return specs, top, ordinals


def _model_document(questionnaire: Mapping[str, Any]) -> dict[str, Any]:
    for ext in questionnaire.get("extension", ()):
        if ext.get("url") == SCORING_MODEL_EXT:
            try:
                document = json.loads(ext["valueString"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidScoringModel(problems=[f"scoring-model valueString: {exc}"]) from exc
            if isinstance(document, dict):
                return document
            raise InvalidScoringModel(problems=["scoring-model is not a JSON object"])
    raise InvalidScoringModel(problems=[f"no {SCORING_MODEL_EXT} extension"])


def _terms(raw: list[dict[str, Any]]) -> tuple[Term, ...]:
    return tuple(Term(t["score"], float(t["weight"])) for t in raw)


def _mean_items(
    raw: Mapping[str, Any],
    ordinals: Mapping[str, Mapping[str, float]],
    option_counts: Mapping[str, int],
    problems: list[str],
) -> tuple[tuple[str, Mapping[str, float]], ...]:
    compiled = []
    for entry in raw.get("items", ()):
        link_id = entry["linkId"]
        values = ordinals.get(link_id)
        if not values or len(values) != option_counts.get(link_id, 0):
            problems.append(
                f"score {raw['code']!r}: item {link_id!r} needs an ordinalValue on every option"
            )
            continue
        if entry.get("reverse", False):
            # The item's own ordinal range, so a 1-7 item reverses as 8 - x.
            pivot = min(values.values()) + max(values.values())
            values = {code: pivot - value for code, value in values.items()}
        compiled.append((link_id, dict(values)))
    if not raw.get("items"):
        problems.append(f"score {raw['code']!r}: a mean needs at least one item")
    return tuple(compiled)


def _category_codings(questionnaire_items: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """code -> Coding offered by a coded score item, so a category carries its system."""
    return {
        o["valueCoding"]["code"]: dict(o["valueCoding"])
        for o in questionnaire_items.get("answerOption", ())
        if "valueCoding" in o
    }


def _score_spec(
    raw: Mapping[str, Any],
    ordinals: Mapping[str, Mapping[str, float]],
    items: Mapping[str, dict[str, Any]],
    problems: list[str],
) -> ScoreSpec:
    option_counts = {k: len(v.get("answerOption", ())) for k, v in items.items()}
    method = raw["method"]
    mean_items: tuple[tuple[str, Mapping[str, float]], ...] = ()
    terms: tuple[Term, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    if method == "mean":
        mean_items = _mean_items(raw, ordinals, option_counts, problems)
        inputs: tuple[str, ...] = ()
    elif method == "linear":
        terms = _terms(raw["terms"])
        inputs = tuple(dict.fromkeys(t.score for t in terms))
    elif method == "argmax":
        codings = _category_codings(items.get(raw["linkId"], {}))
        candidates = tuple(
            Candidate(
                category=c["category"],
                coding=MappingProxyType(codings.get(c["category"], {"code": c["category"]})),
                terms=_terms(c["terms"]),
                constant=float(c.get("constant", 0)),
            )
            for c in raw["candidates"]
        )
        inputs = tuple(dict.fromkeys(t.score for c in candidates for t in c.terms))
    else:
        problems.append(f"score {raw['code']!r}: unknown method {method!r}")
        inputs = ()
    bounds = raw.get("range")
    return ScoreSpec(
        code=raw["code"],
        link_id=raw["linkId"],
        method=method,
        items=mean_items,
        item_ids=tuple(link_id for link_id, _ in mean_items),
        tables=tuple(table for _, table in mean_items),
        terms=terms,
        constant=float(raw.get("constant", 0)),
        candidates=candidates,
        inputs=inputs,
        focus=raw.get("focus"),
        desirable=raw.get("desirable"),
        range=(float(bounds[0]), float(bounds[1])) if bounds else None,
    )


def _dependency_order(specs: list[ScoreSpec], problems: list[str]) -> tuple[ScoreSpec, ...]:
    """Scores ordered so that each comes after the scores it is computed from."""
    by_code = {s.code: s for s in specs}
    ordered: list[ScoreSpec] = []
    state: dict[str, str] = {}

    def visit(spec: ScoreSpec) -> None:
        if state.get(spec.code) == "done":
            return
        if state.get(spec.code) == "visiting":
            problems.append(f"score {spec.code!r} depends on itself")
            return
        state[spec.code] = "visiting"
        for code in spec.inputs:
            if code in by_code:
                visit(by_code[code])
            else:
                problems.append(f"score {spec.code!r} refers to unknown score {code!r}")
        state[spec.code] = "done"
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return tuple(ordered)


def compile_model(questionnaire: Mapping[str, Any]) -> ScoringModel:
    """Compile a Questionnaire dict into a ScoringModel, or raise InvalidScoringModel.

    A frozen Questionnaire (the packaged library's) is compiled once per process.
    """
    return derived(questionnaire, "scoring_model", lambda: _compile(questionnaire))


def _compile(questionnaire: Mapping[str, Any]) -> ScoringModel:
    problems: list[str] = []
    document = _model_document(questionnaire)
    specs, top, ordinals = _item_specs(questionnaire, problems)
    raw_items = {
        item["linkId"]: item
        for item, _ in _walk(questionnaire.get("item", []), None)
        if isinstance(item.get("linkId"), str)
    }
    try:
        scores = [_score_spec(raw, ordinals, raw_items, problems) for raw in document["scores"]]
        algorithm = document["algorithm"]
        algorithm_id, algorithm_version = str(algorithm["id"]), str(algorithm["version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidScoringModel(
            problems=[*problems, f"malformed scoring model: {exc!r}"]
        ) from exc
    if len({s.code for s in scores}) != len(scores):
        problems.append("a score code is used twice")
    ordered = _dependency_order(scores, problems)
    if problems:
        raise InvalidScoringModel(problems=problems)

    chains: dict[tuple[tuple[tuple[EnableWhen, ...], bool], ...], set[str]] = {}
    for spec in specs.values():
        levels = []
        node: ItemSpec | None = spec
        while node is not None:
            if node.enable_when:
                levels.append((node.enable_when, node.enable_any))
            node = specs[node.parent] if node.parent is not None else None
        if levels:
            chains.setdefault(tuple(levels), set()).add(spec.link_id)
    required = tuple(s for s in specs.values() if s.required and s.type not in ("group", "display"))
    url = questionnaire.get("url")
    own = f"{url}|{questionnaire.get('version')}"
    earlier = (
        f"{url}|{ext['valueString']}"
        for ext in questionnaire.get("extension", ())
        if ext.get("url") == SCORES_EARLIER_VERSION_EXT and isinstance(ext.get("valueString"), str)
    )
    return ScoringModel(
        questionnaire=own,
        algorithm_id=algorithm_id,
        algorithm_version=algorithm_version,
        items=MappingProxyType(specs),
        top_items=top,
        required=required,
        required_ids=frozenset(s.link_id for s in required),
        enable_rules=tuple(EnableRule(k, frozenset(v)) for k, v in chains.items()),
        scores=ordered,
        answers_for=frozenset((own, *earlier)),
    )
