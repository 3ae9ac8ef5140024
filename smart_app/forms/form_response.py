"""A posted form <-> a QuestionnaireResponse: parse and validate every answer, or re-fill a form.

Parsing never throws an answer away: every posted value stays in ``ParsedForm.values`` so the
form can be shown again with the errors next to the answers the user gave. Answers to items that
``enableWhen`` disables, read-only (calculated) items and unsupported item types are left out of
the response; the scorer fills the calculated ones.

A repeating group becomes one response item per instance that has answers (the group's linkId
each time, as FHIR wants repeating groups), and a saved response gives its instances back.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.errors import AttachError
from attach_fhir.writeback import json_copy
from smart_app.forms.enable_when import NUMBER, same_coding
from smart_app.forms.form_fields import (
    MAX_INSTANCES,
    Path,
    count_name,
    field_name,
    is_form_field,
    other_field_name,
)
from smart_app.forms.form_items import FormItem
from smart_app.forms.questionnaire_form import (
    QuestionnaireForm,
    Values,
    add_errors,
    build_form,
    compiled_items,
    form_values,
)

CHOICE_TYPES = {"choice", "open-choice"}
STATUSES = ("in-progress", "completed")
#: At most 10 digits: int() of a longer text costs more and past 4300 digits raises (a 500);
#: no int32 has more.
INTEGER = re.compile(r"[+-]?\d{1,10}")
#: ASCII digits: the text is written as valueDate, and FHIR's date is [0-9] only.
DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
INT32 = range(-(2**31), 2**31)

MSG_SELECT = "Select an answer"
MSG_ENTER = "Enter an answer"
MSG_OPTION = "Select one of the answers listed"
MSG_ONE = "Give only one answer"
MSG_BOTH = "Select an answer or type your own, not both"
MSG_BOOLEAN = "Select yes or no"
MSG_INTEGER = "Enter a whole number, like 12"
MSG_DECIMAL = "Enter a number, like 2.5"
MSG_DATE = "Enter a real date as YYYY-MM-DD, like 2024-03-27"
MSG_FEW_ANSWERS = "Give at least {n} answers"
MSG_MANY_ANSWERS = "Give no more than {n} answers"
MSG_ONE_INSTANCE = "Fill in at least one"
MSG_FEW_INSTANCES = "Fill in at least {n}"
MSG_MANY_INSTANCES = "Fill in no more than {n}; remove the rest"


class UnknownResponseStatus(AttachError):
    """A form can only become an in-progress or a completed QuestionnaireResponse."""

    code = "unknown_response_status"
    description = "A form response must be 'in-progress' or 'completed'."
    status_code = 500


@dataclass
class ParsedForm:
    """What a post became: the response, the errors by item key (the linkId outside repeating
    groups, see ``FormItem.key``), and the form to show again."""

    response: dict[str, Any]
    errors: dict[str, str]
    values: Values
    form: QuestionnaireForm

    @property
    def ok(self) -> bool:
        """True when every answer parsed and (for ``completed``) every required item is answered."""
        return not self.errors


def parse_form(
    questionnaire: Mapping[str, Any], posted: Any, *, status: str = "completed"
) -> ParsedForm:
    """Turn a posted form into a QuestionnaireResponse; required items bind only ``completed``."""
    if status not in STATUSES:
        raise UnknownResponseStatus(status=status)
    values = {k: v for k, v in form_values(posted).items() if is_form_field(k)}
    view = build_form(questionnaire, values)
    errors: dict[str, str] = {}
    items = _response_items(view.items, errors, enforce_required=status == "completed")
    response: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "status": status}
    if view.url:
        response["questionnaire"] = f"{view.url}|{view.version}" if view.version else view.url
    if items:
        response["item"] = items
    if errors:  # the same values make the same items: only the messages are new
        add_errors(view, errors)
    return ParsedForm(response, errors, values, view)


def response_to_values(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> Values:
    """The form values that show a saved response again (e.g. to resume a draft)."""
    values: Values = {}
    _scope_values(compiled_items(questionnaire), _collect(response.get("item", [])), (), values)
    return values


def _scope_values(
    items: list[FormItem], found: dict[str, list[Mapping[str, Any]]], path: Path, values: Values
) -> None:
    """Values of the items answered in one scope: the response, or one group instance of it.

    Answers are found by linkId anywhere in the scope (a response nested differently from the
    Questionnaire still shows); a repeating group's instances are its items in the scope, in
    order, each the scope of its own items."""
    for item in items:
        if item.kind == "repeat":
            instances = found.get(item.link_id, [])[:MAX_INSTANCES]
            if instances:
                values[count_name(item.link_id, path)] = [str(len(instances))]
            for n, entry in enumerate(instances, 1):
                _scope_values(item.children, _collect(entry.get("item", [])), (*path, n), values)
            continue
        tokens: list[str] = []
        others: list[str] = []
        for answer in (a for entry in found.get(item.link_id, []) for a in entry.get("answer", [])):
            token = _token(item, answer)
            if token is not None:
                tokens.append(token)
            elif isinstance(answer.get("valueString"), str):
                others.append(answer["valueString"])
        if tokens:
            values[field_name(item.link_id, path)] = tokens
        if others:
            values[other_field_name(item.link_id, path)] = others[:1]
        _scope_values(item.children, found, path, values)


def _collect(items: list[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The response items of a scope by linkId, nested ones (under items or answers) too."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    stack = list(reversed(items))
    while stack:
        entry = stack.pop()
        found.setdefault(str(entry.get("linkId")), []).append(entry)
        nested = [*entry.get("item", [])]
        for answer in entry.get("answer", []):
            nested += answer.get("item", [])
        stack += reversed(nested)
    return found


def _token(item: FormItem, answer: Mapping[str, Any]) -> str | None:
    if item.options:
        for option in item.options:
            ((key, value),) = option.answer.items()
            if key == "valueCoding" and "valueCoding" in answer:
                if same_coding(option.answer, answer["valueCoding"]):
                    return option.key
            elif key in answer and answer[key] == value:
                return option.key
        return None
    if "valueBoolean" in answer:
        return "true" if answer["valueBoolean"] else "false"
    if "valueDecimal" in answer:
        text = repr(float(answer["valueDecimal"]))
        return text.removesuffix(".0")
    for key in ("valueInteger", "valueDate", "valueString"):
        if key in answer:
            return str(answer[key])
    return None


def _response_items(
    items: list[FormItem], errors: dict[str, str], *, enforce_required: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if not item.enabled:
            continue
        known = len(errors)
        children = _response_items(item.children, errors, enforce_required=enforce_required)
        if item.kind == "repeat":  # children: one group item per instance with answers
            # a message inside an instance already says what is missing there
            error = _instances_error(item, len(children), enforce_required and len(errors) == known)
            if error:
                errors[item.key] = error
            out += children
            continue
        entry: dict[str, Any] = {"linkId": item.link_id}
        if item.raw.get("text"):
            entry["text"] = item.raw["text"]
        if item.type == "group":
            if children:
                out.append({**entry, "item": children})
            continue
        if not item.is_question:
            continue
        answers, error = _answers(item)
        if error is None and not answers and item.required and enforce_required:
            error = MSG_SELECT if item.type in CHOICE_TYPES | {"boolean"} else MSG_ENTER
        if error is None and item.repeats:
            error = _occurs_error(item, len(answers), enforce_required)
        if error:
            errors[item.key] = error
        if answers:
            if children:
                answers[0]["item"] = children
            out.append({**entry, "answer": answers})
    return out


def _instances_error(group: FormItem, filled: int, enforce_required: bool) -> str | None:
    """Too many instances with answers, or (completed, required) too few."""
    if group.max_occurs is not None and filled > group.max_occurs:
        return MSG_MANY_INSTANCES.format(n=group.max_occurs)
    need = max(group.min_occurs, 1) if group.required else 0
    if enforce_required and filled < need:
        return MSG_ONE_INSTANCE if need == 1 else MSG_FEW_INSTANCES.format(n=need)
    return None


def _occurs_error(item: FormItem, given: int, enforce_required: bool) -> str | None:
    """A repeating question's answers against its maxOccurs, and (completed) its minOccurs."""
    if item.max_occurs is not None and given > item.max_occurs:
        return MSG_MANY_ANSWERS.format(n=item.max_occurs)
    if enforce_required and item.required and 0 < given < item.min_occurs:
        return MSG_FEW_ANSWERS.format(n=item.min_occurs)
    return None


def _answers(item: FormItem) -> tuple[list[dict[str, Any]], str | None]:
    given = [v for v in item.values if v.strip()]
    if item.type in CHOICE_TYPES:
        return _choice_answers(item, given)
    if len(given) > 1 and not item.repeats:
        return [], MSG_ONE
    answers = []
    for raw in given:
        answer, error = _parse(item, raw)
        if error:
            return [], error
        answers.append(answer)
    return answers, None


def _choice_answers(item: FormItem, given: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    by_key = {o.key: o for o in item.options}
    if any(v not in by_key for v in given):
        return [], MSG_OPTION
    answers = [json_copy(by_key[v].answer) for v in dict.fromkeys(given)]
    other = item.other.strip() if item.type == "open-choice" else ""
    if other:
        answers.append({"valueString": other})
    if len(answers) > 1 and not item.repeats:
        return [], MSG_BOTH if other else MSG_ONE
    return answers, None


def _parse(item: FormItem, raw: str) -> tuple[dict[str, Any], str | None]:
    text = raw.strip()
    if item.type == "boolean":
        if text not in ("true", "false"):
            return {}, MSG_BOOLEAN
        return {"valueBoolean": text == "true"}, None
    if item.type == "integer":
        if not INTEGER.fullmatch(text) or int(text) not in INT32:
            return {}, MSG_INTEGER
        return {"valueInteger": int(text)}, None
    if item.type == "decimal":
        if not NUMBER.fullmatch(text) or not math.isfinite(float(text)):
            return {}, MSG_DECIMAL
        return {"valueDecimal": float(text)}, None
    if item.type == "date":
        return ({"valueDate": text}, None) if _is_date(text) else ({}, MSG_DATE)
    text = text.replace("\r\n", "\n")
    if item.max_length is not None and len(text) > item.max_length:
        return {}, f"Enter {item.max_length} characters or fewer"
    return {"valueString": text}, None


def _is_date(text: str) -> bool:
    match = DATE.fullmatch(text)
    if not match or match.group(1) == "0000":
        return False
    year, month, day = match.groups()
    try:
        dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return True
