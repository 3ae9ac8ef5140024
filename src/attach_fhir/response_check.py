"""Check a QuestionnaireResponse against a compiled Questionnaire before anything is scored.

Every problem is collected (unknown linkId, answer outside the options, wrong Questionnaire,
duplicate answers, missing required items in a finished response, answers to items that enableWhen
disables) and raised together as one ``InvalidResponse`` whose ``problems`` carry a FHIRPath-like
``path``: those of the response as a whole first (a top-level item with an unknown linkId among
them), then each item's in the Questionnaire's item order, so the same response lists the same
problems in the same order on every run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from attach_fhir.errors import AttachError
from attach_fhir.scoring_model import EnableWhen, ItemSpec, ScoringModel

ROOT = "QuestionnaireResponse"

#: QuestionnaireResponse.status codes; ``required`` binds only a finished response, so an
#: in-progress one is checked item by item and its incomplete scores come out ``not-scored``.
STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
FINISHED = ("completed", "amended")
SCORABLE = ("in-progress", "completed", "amended", "stopped")

#: item.type -> the answer value[x] element it takes (choice is handled on its own).
VALUE_KEYS = {
    "boolean": "valueBoolean",
    "decimal": "valueDecimal",
    "integer": "valueInteger",
    "date": "valueDate",
    "dateTime": "valueDateTime",
    "time": "valueTime",
    "string": "valueString",
    "text": "valueString",
    "url": "valueUri",
    "attachment": "valueAttachment",
    "reference": "valueReference",
    "quantity": "valueQuantity",
    "coding": "valueCoding",
}


class InvalidResponse(AttachError):
    """The response cannot be scored; ``problems`` is a list of {code, path, message}."""

    code = "invalid_response"
    description = "The QuestionnaireResponse cannot be scored."
    status_code = 422

    def __init__(self, problems: list[dict[str, str]]) -> None:
        count = len(problems)
        super().__init__(
            f"The QuestionnaireResponse has {count} problem{'s' if count != 1 else ''}.",
            problems=problems,
        )
        self.problems = problems


class CheckedResponse(NamedTuple):
    """A valid response: each answered linkId's (first) answer value, all values of the items
    answered more than once, and the linkIds that enableWhen disables."""

    answers: Mapping[str, object]
    repeated: Mapping[str, tuple[object, ...]]
    disabled: frozenset[str]


NO_REPEATS: Mapping[str, tuple[object, ...]] = MappingProxyType({})


class _Walk:
    """One pass over the response items, collecting answers, paths and problems."""

    __slots__ = ("answers", "items", "owners", "paths", "problems")

    def __init__(self, items: Mapping[str, ItemSpec]) -> None:
        self.items = items
        self.answers: dict[str, list[object]] = {}
        self.paths: dict[str, str] = {}
        self.problems: list[dict[str, str]] = []
        #: The linkId each problem belongs to (None: the response as a whole), for the order.
        self.owners: list[str | None] = []

    def problem(self, code: str, path: str, message: str, owner: str | None = None) -> None:
        self.problems.append({"code": code, "path": path, "message": message})
        self.owners.append(owner)

    def in_item_order(self, top_items: Mapping[str, ItemSpec]) -> list[dict[str, str]]:
        """The problems, the response's own first (with top-level items the Questionnaire
        cannot place), then by their item's place in the Questionnaire (a stable sort: one
        item's problems keep the order they were found in)."""
        rank = {link_id: index for index, link_id in enumerate(_preorder(top_items), start=1)}
        keys = [rank.get(owner, 0) if owner is not None else 0 for owner in self.owners]
        order = sorted(range(len(self.problems)), key=keys.__getitem__)
        return [self.problems[index] for index in order]

    def walk(
        self,
        items: object,
        expected: Mapping[str, ItemSpec],
        path: str,
        owner: str | None = None,
    ) -> None:
        if not isinstance(items, list):
            self.problem("structure", path, "item must be an array", owner)
            return
        seen: set[str] = set()
        for index, item in enumerate(items):
            here = f"{path}.item[{index}]"
            if not isinstance(item, dict):
                self.problem("structure", here, "item must be an object", owner)
                continue
            link_id = item.get("linkId")
            spec = expected.get(link_id) if isinstance(link_id, str) else None
            if spec is None:
                self.unexpected(link_id, here, owner)
                continue
            link_id = spec.link_id
            if link_id in seen and not spec.repeats:
                self.problem("duplicate", here, f"item {link_id!r} appears more than once", link_id)
            seen.add(link_id)
            self.paths.setdefault(link_id, here)
            answers = item.get("answer")
            if answers is not None:
                self.answer(spec, answers, here)
            children = item.get("item")
            if children is not None:
                self.walk(children, spec.children, here, link_id)

    def unexpected(self, link_id: object, path: str, owner: str | None) -> None:
        if isinstance(link_id, str) and link_id in self.items:
            message = f"item {link_id!r} is not expected here"
        else:
            message = f"linkId {link_id!r} is not in the Questionnaire"
        self.problem("unknown-link-id", path, message, owner)

    def answer(self, spec: ItemSpec, answers: object, path: str) -> None:
        link_id = spec.link_id
        if not isinstance(answers, list):
            self.problem("structure", f"{path}.answer", "answer must be an array", link_id)
            return
        if spec.type in ("group", "display"):
            message = f"a {spec.type} item takes no answer"
            self.problem("structure", f"{path}.answer", message, link_id)
            return
        if len(answers) > 1 and not spec.repeats:
            message = f"item {link_id!r} takes one answer only"
            self.problem("duplicate", f"{path}.answer", message, link_id)
        if not answers:
            return
        values = self.answers.setdefault(spec.link_id, [])
        for index, answer in enumerate(answers):
            here = f"{path}.answer[{index}]"
            if not isinstance(answer, dict):
                self.problem("structure", here, "answer must be an object", link_id)
                continue
            value = self.value(spec, answer, here)
            if value is not None:
                values.append(value)
            nested = answer.get("item")
            if nested is not None:
                self.walk(nested, spec.children, here, link_id)

    def value(self, spec: ItemSpec, answer: Mapping[str, Any], path: str) -> object:
        link_id = spec.link_id
        if sum(1 for key in answer if key.startswith("value")) != 1:
            self.problem("invalid-answer", path, "an answer has exactly one value[x]", link_id)
            return None
        if spec.type == "choice":
            coding = answer.get("valueCoding")
            if not isinstance(coding, dict):
                message = "a choice answer must be a valueCoding"
                self.problem("invalid-answer", path, message, link_id)
                return None
            if not spec.options:
                return coding.get("code")
            code = spec.options.get((coding.get("system"), coding.get("code")))  # type: ignore[arg-type]
            if code is None:
                self.problem(
                    "invalid-answer",
                    f"{path}.valueCoding",
                    f"{coding.get('system')}|{coding.get('code')} is not an answer option"
                    f" of item {link_id!r}",
                    link_id,
                )
            return code
        key = VALUE_KEYS.get(spec.type)
        value = (
            answer.get(key)
            if key
            else next((v for k, v in answer.items() if k.startswith("value")), None)
        )
        if value is None or not _has_type(spec.type, value):
            self.problem("invalid-answer", path, f"a {spec.type} answer must be a {key}", link_id)
            return None
        return value


def _has_type(item_type: str, value: object) -> bool:
    if item_type == "boolean":
        return isinstance(value, bool)
    if item_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if item_type == "decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if item_type in ("string", "text", "url", "date", "dateTime", "time"):
        return isinstance(value, str)
    return True


def _holds(
    condition: EnableWhen,
    answers: Mapping[str, object],
    repeated: Mapping[str, tuple[object, ...]],
) -> bool:
    question = condition.question
    values = repeated.get(question) or ((answers[question],) if question in answers else ())
    expected = condition.answer
    if condition.operator == "exists":
        return bool(values) == bool(expected)
    if isinstance(expected, tuple):  # a Coding: compare codes (options are checked already)
        expected = expected[1]
    op = condition.operator
    if op == "=":
        return any(v == expected for v in values)
    if op == "!=":
        return any(v != expected for v in values)
    try:
        if op == ">":
            return any(v > expected for v in values)  # type: ignore[operator]
        if op == "<":
            return any(v < expected for v in values)  # type: ignore[operator]
        if op == ">=":
            return any(v >= expected for v in values)  # type: ignore[operator]
        if op == "<=":
            return any(v <= expected for v in values)  # type: ignore[operator]
    except TypeError:
        return False
    return False


def disabled_items(
    model: ScoringModel,
    answers: Mapping[str, object],
    repeated: Mapping[str, tuple[object, ...]] = NO_REPEATS,
) -> frozenset[str]:
    """The linkIds that enableWhen (on the item or an ancestor) disables, given the answers."""
    disabled: set[str] = set()
    for rule in model.enable_rules:
        for conditions, any_of in rule.levels:
            checks = (_holds(c, answers, repeated) for c in conditions)
            if not (any(checks) if any_of else all(checks)):
                disabled.update(rule.link_ids)
                break
    return frozenset(disabled)


def _fast_walk(
    items: Any, expected: Mapping[str, ItemSpec], answers: dict[str, object], seen: set[str]
) -> int:
    """The common case in one tight pass: the number of items walked, or -1 (or an exception)
    at anything unusual. A repeated linkId shows as fewer distinct linkIds than items walked."""
    walked = len(items)
    for item in items:
        spec = expected[item["linkId"]]
        if "answer" in item:
            # Any JSON value but a one-element list, or an answer with more than a value (a
            # nested item, an extension), raises or returns -1 here: the thorough walk judges.
            (answer,) = item["answer"]
            if len(answer) != 1:
                return -1
            if spec.type == "choice":
                coding = answer["valueCoding"]
                code = coding["code"]
                if code not in spec.codes or coding["system"] != spec.system:
                    return -1
                answers[spec.link_id] = code
            elif spec.type == "boolean" and type(answer["valueBoolean"]) is bool:
                answers[spec.link_id] = answer["valueBoolean"]
            else:
                return -1
        else:
            seen.add(spec.link_id)
        if "item" in item:
            nested = _fast_walk(item["item"], spec.children, answers, seen)
            if nested < 0:
                return -1
            walked += nested
    return walked if type(items) is list else -1


def _complete(
    model: ScoringModel, answers: Mapping[str, object], disabled: frozenset[str], status: str
) -> bool:
    """No disabled item answered, and (when finished) every enabled required item answered."""
    if disabled and not disabled.isdisjoint(answers.keys()):
        return False
    if status not in FINISHED:
        return True
    return answers.keys() >= (model.required_ids - disabled if disabled else model.required_ids)


def check_response(model: ScoringModel, response: object) -> CheckedResponse:
    """Return the response's answers if it can be scored, else raise InvalidResponse."""
    # A fast path accepts only what the thorough walk would accept; anything else (including
    # every invalid response) goes through the walk, which reports each problem with its path.
    if (
        type(response) is dict
        and response.get("resourceType") == ROOT
        and type(canonical := response.get("questionnaire")) is str
        and canonical in model.answers_for
        and response.get("status") in SCORABLE
    ):
        answers: dict[str, object] = {}
        seen: set[str] = set()
        try:
            walked = _fast_walk(response.get("item", []), model.top_items, answers, seen)
        except (KeyError, TypeError, AttributeError, ValueError):
            walked = -1
        if walked == len(answers) + len(seen) and seen.isdisjoint(answers):
            disabled = disabled_items(model, answers) if model.enable_rules else frozenset()
            if _complete(model, answers, disabled, response["status"]):
                return CheckedResponse(answers, NO_REPEATS, disabled)
    return _thorough_check(model, response)


def _thorough_check(model: ScoringModel, response: object) -> CheckedResponse:
    if not isinstance(response, dict):
        raise InvalidResponse([_problem("structure", ROOT, "must be a JSON object")])
    walk = _Walk(model.items)
    if response.get("resourceType") != ROOT:
        walk.problem("structure", f"{ROOT}.resourceType", f"must be {ROOT!r}")
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str) or canonical not in model.answers_for:
        walk.problem(
            "wrong-questionnaire",
            f"{ROOT}.questionnaire",
            f"{canonical!r} is not the Questionnaire being scored ({model.questionnaire})",
        )
    status = response.get("status")
    if status not in STATUSES:
        walk.problem("status", f"{ROOT}.status", f"must be one of {', '.join(STATUSES)}")
    elif status not in SCORABLE:
        walk.problem("status", f"{ROOT}.status", "a response entered in error is not scored")
    walk.walk(response.get("item", []), model.top_items, ROOT)
    answers = walk.answers
    first = {link_id: values[0] for link_id, values in answers.items() if values}
    repeated = {link_id: tuple(v) for link_id, v in answers.items() if len(v) > 1}
    disabled = disabled_items(model, first, repeated) if model.enable_rules else frozenset()
    for link_id in disabled:
        if answers.get(link_id):
            walk.problem(
                "disabled-answered",
                walk.paths[link_id],
                f"item {link_id!r} is answered although enableWhen disables it",
                link_id,
            )
    for spec in model.required if status in FINISHED else ():
        # An item whose answers were all refused above is not reported missing as well.
        if spec.link_id not in answers and spec.link_id not in disabled:
            walk.problem(
                "missing-required",
                f"{ROOT}.item.where(linkId='{spec.link_id}')",
                f"required item {spec.link_id!r} has no answer",
                spec.link_id,
            )
    if walk.problems:
        raise InvalidResponse(walk.in_item_order(model.top_items))
    return CheckedResponse(first, repeated, disabled)


def _preorder(items: Mapping[str, ItemSpec]) -> Iterator[str]:
    """The linkIds in the Questionnaire's document order (each item before its children)."""
    for link_id, spec in items.items():
        yield link_id
        yield from _preorder(spec.children)


def _problem(code: str, path: str, message: str) -> dict[str, str]:
    return {"code": code, "path": path, "message": message}
