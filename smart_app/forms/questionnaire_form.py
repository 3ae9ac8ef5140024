"""The form view model: an SDC Questionnaire turned into items the templates render.

Everything that comes from a Questionnaire is inert here: plain text is escaped, and the
``rendering-xhtml`` extension only passes through an nh3 allow-list. ``enableWhen`` is evaluated
on the form's raw values (the same strings the browser posts), so the page is right without JS
and ``static/enable-when.js`` reproduces the same rules from the ``data-when`` attributes.

A repeating group becomes one set of items per instance (see :mod:`smart_app.forms.form_items`); the
compiled, unfilled group keeps the Questionnaire's items as children, and each form copies them
once per instance, with the names of :mod:`smart_app.forms.form_fields`.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import nh3
from markupsafe import Markup, escape

from attach_fhir.frozen import derived
from smart_app.forms.enable_when import compile_condition, evaluate_enable_when, same_coding
from smart_app.forms.form_fields import (
    MAX_FORM_INSTANCES,
    MAX_INSTANCES,
    Path,
    count_name,
    html_id,
    instance_count,
    parse_name,
)
from smart_app.forms.form_items import ANSWER_TYPES, FormItem, Option, walk

EXT_XHTML = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
EXT_HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
EXT_MIN_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-minOccurs"
EXT_MAX_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-maxOccurs"
EXT_CALCULATED = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
)
# Labels and legends take phrasing content only; display items may also carry simple blocks.
PHRASING_TAGS = {"b", "strong", "i", "em", "u", "s", "sub", "sup", "small", "mark", "span", "br"}
BLOCK_TAGS = PHRASING_TAGS | {"p", "ul", "ol", "li"}
CHOICE_CONTROLS = {"radio-button": "radio", "check-box": "checkbox", "drop-down": "dropdown"}
VALUE_KEYS = ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime")

Values = dict[str, list[str]]


@dataclass
class ErrorLink:
    """One line of the error summary: where to jump and what went wrong."""

    href: str
    text: str


@dataclass
class QuestionnaireForm:
    """The whole form: title, items and the error summary."""

    title: Markup
    url: str | None
    version: str | None
    items: list[FormItem]
    errors: list[ErrorLink] = field(default_factory=list)

    def walk(self) -> Iterator[FormItem]:
        """Every item, depth first in document order."""
        return walk(self.items)

    @property
    def has_conditions(self) -> bool:
        """True when some item has enableWhen (the no-JS page then offers an update button)."""
        return any(i.when for i in self.walk())

    @property
    def progress(self) -> tuple[int, int]:
        """(answered, asked): the questions on show (enableWhen met) and those with an answer.
        assess/progress.js keeps the same count live (a ``.q`` element is one question)."""
        answered = asked = 0
        stack = list(self.items)
        while stack:
            item = stack.pop()
            if not item.enabled:
                continue  # hidden by enableWhen, with everything under it
            stack.extend(item.children)
            if item.is_question:
                asked += 1
                if any(v.strip() for v in item.values) or item.other.strip():
                    answered += 1
        return answered, asked

    @property
    def has_repeats(self) -> bool:
        """True when a repeating group puts add or remove buttons in the form."""
        return any(i.kind == "repeat" for i in self.walk())


def form_values(form: Any) -> Values:
    """A posted form (a Werkzeug MultiDict or a dict of lists) as ``{name: [values]}``."""
    getlist = getattr(form, "getlist", None)
    out: Values = {}
    for key in form.keys():
        raw = getlist(key) if getlist else form[key]
        out[key] = [raw] if isinstance(raw, str) else [str(v) for v in raw]
    return out


def build_form(
    questionnaire: Mapping[str, Any],
    values: Any = None,
    errors: Mapping[str, str] | None = None,
    *,
    focus: str | None = None,
) -> QuestionnaireForm:
    """Build the view model; ``values=None`` means a fresh form showing ``initial`` answers.

    ``errors`` maps item keys (``FormItem.key``) to messages; ``focus`` is the key of the
    instance the page should focus (after an add or remove button)."""
    vals = form_values(values) if values is not None else None
    fill = _Fill(vals, _instances_posted(vals), focus)
    items = [fill.item(item, (), "") for item in compiled_items(questionnaire)]
    evaluate_enable_when(items)
    form = QuestionnaireForm(
        title=escape(questionnaire.get("title") or questionnaire.get("name") or "Questionnaire"),
        url=questionnaire.get("url"),
        version=questionnaire.get("version"),
        items=items,
    )
    if errors:
        add_errors(form, errors)
    return form


def compiled_items(questionnaire: Mapping[str, Any]) -> list[FormItem]:
    """The form's items without answers (initial answers only): compiled once per frozen
    (packaged) Questionnaire, so shared between forms and never to be changed; see ``_Fill``."""
    return derived(questionnaire, "form_items", lambda: _compile(questionnaire))


def _compile(questionnaire: Mapping[str, Any]) -> list[FormItem]:
    items = [_item(raw, questionnaire) for raw in questionnaire.get("item", [])]
    index = {i.link_id: i for i in walk(items)}
    for item in index.values():
        item.when = [compile_condition(c, index) for c in item.raw.get("enableWhen", [])]
        item.behavior = str(item.raw.get("enableBehavior", "all"))
    _mark_likert(items)
    for item in walk(items):
        if item.kind in {"radio", "likert", "checkbox", "boolean"}:
            item.option_html = _option_html(item)
        if item.kind == "repeat":
            item.members = frozenset(i.link_id for i in walk(item.children))
    return items


def _option_html(item: FormItem) -> tuple[tuple[str, str, str], ...]:
    type_ = "checkbox" if item.kind == "checkbox" else "radio"
    name, html = escape(item.name), escape(item.id)
    return tuple(
        (
            o.key,
            f'<label><input type="{type_}" name="{name}" value="{escape(o.key)}" '
            f'id="{html}-{o.index}"',
            f">{o.caption}</label>",
        )
        for o in item.options
    )


def _instances_posted(vals: Values | None) -> list[tuple[Path, str]]:
    """(instance path, linkId) of every posted field inside an instance."""
    found = []
    for name in vals or {}:
        parsed = parse_name(name) if name[1:2] == "." else None
        if parsed is not None:
            found.append((parsed[1], parsed[2]))
    return found


@dataclass
class _Fill:
    """Fresh items for one form: the compiled ones with this form's answers and instances."""

    vals: Values | None
    posted: list[tuple[Path, str]]
    focus: str | None
    #: instances this form may still show (MAX_FORM_INSTANCES, spent in document order)
    left: int = MAX_FORM_INSTANCES

    def item(self, compiled: FormItem, path: Path, where: str) -> FormItem:
        item = copy.copy(compiled)
        if path:
            item.path, item.where, item.id = path, where, html_id(compiled.link_id, path)
            if compiled.option_html:
                item.option_html = _option_html(item)
        if compiled.kind == "repeat":
            numbers = range(1, self.count(compiled, path) + 1)
            item.children = [self.instance(compiled, (*path, n), where) for n in numbers]
        else:
            item.children = [self.item(child, path, where) for child in compiled.children]
        if self.vals is None:
            item.values = list(compiled.values)
        else:
            item.values = list(self.vals.get(item.name, []))
            item.other = next(iter(self.vals.get(item.other_name, [])), "")
        return item

    def instance(self, group: FormItem, path: Path, where: str) -> FormItem:
        inst = copy.copy(group)
        inst.kind, inst.path, inst.instance = "instance", path, path[-1]
        inst.id, inst.when, inst.values = html_id(group.link_id, path), [], []
        inst.removable = path[-1] > group.min_instances
        inst.focus = self.focus is not None and self.focus == inst.key
        inst.where = f"{where}, {inst.legend}" if where else inst.legend
        inst.children = [self.item(child, path, inst.where) for child in group.children]
        return inst

    def count(self, group: FormItem, path: Path) -> int:
        """The instances to show: the posted count, or more when fields of later ones came
        (at most MAX_INSTANCES, and what is left of the form's MAX_FORM_INSTANCES)."""
        wanted = group.min_instances
        if self.vals is not None:
            depth = len(path)
            seen = max(
                (
                    at[depth]
                    for at, link_id in self.posted
                    if len(at) > depth and at[:depth] == path and link_id in group.members
                ),
                default=0,
            )
            posted = instance_count(self.vals.get(count_name(group.link_id, path), []))
            wanted = max(wanted, posted, seen)
        shown = max(0, min(wanted, MAX_INSTANCES, self.left))
        self.left -= shown
        return shown


def add_errors(form: QuestionnaireForm, errors: Mapping[str, str]) -> None:
    """Put each item key's message on its item and a link to it in the error summary."""
    for item in form.walk():
        message = errors.get(item.key)
        if message:
            item.error = message
            form.errors.append(ErrorLink(f"#{item.first_input_id}", error_line(item, message)))


def error_line(item: FormItem, message: str) -> str:
    """``12. I worry about being abandoned: Select an answer``: the item's own full stop or
    colon dropped before the colon, a question mark kept (no doubled punctuation)."""
    text = item.text.strip()
    if len(text) > 80:  # cut at a word, marked by one ellipsis
        text = text[:79].rsplit(" ", 1)[0].rstrip(" .:;,") + "…"
    short = text.rstrip(" .:;,")
    label = f"{item.prefix} {short}".strip() if item.prefix else short
    label = f"{label} ({item.where})" if item.where else label
    return f"{label} {message}" if label.endswith(("?", "!", "…")) else f"{label}: {message}"


def _ext(element: Mapping[str, Any] | None, url: str) -> Mapping[str, Any] | None:
    for ext in (element or {}).get("extension", []):
        if ext.get("url") == url:
            return ext
    return None


def _rich(raw: Mapping[str, Any], key: str, tags: set[str]) -> Markup | None:
    xhtml = _ext(raw.get(f"_{key}"), EXT_XHTML)
    if xhtml and isinstance(xhtml.get("valueString"), str):
        clean = nh3.clean(xhtml["valueString"], tags=tags, attributes={}, url_schemes=set())
        return Markup(clean)  # noqa: S704 - sanitised through the nh3 allow-list above
    text = raw.get(key)
    return escape(text) if isinstance(text, str) and text else None


def _item(raw: Mapping[str, Any], questionnaire: Mapping[str, Any]) -> FormItem:
    link_id = str(raw.get("linkId", ""))
    type_ = str(raw.get("type", ""))
    tags = BLOCK_TAGS if type_ in {"display", "group"} else PHRASING_TAGS
    control = _ext(raw, EXT_ITEM_CONTROL)
    codings = (control or {}).get("valueCodeableConcept", {}).get("coding", [])
    hint = next((c.get("code") for c in codings if c.get("code")), None)
    item = FormItem(
        link_id=link_id,
        type=type_,
        kind=type_,
        id=html_id(link_id),
        label=_rich(raw, "text", tags) or Markup(""),
        prefix=_rich(raw, "prefix", PHRASING_TAGS),
        text=str(raw.get("text") or raw.get("prefix") or link_id),
        required=bool(raw.get("required")),
        read_only=bool(raw.get("readOnly")),
        repeats=bool(raw.get("repeats")),
        calculated=_ext(raw, EXT_CALCULATED) is not None,
        max_length=raw.get("maxLength"),
        control=hint,
        min_occurs=_occurs(raw, EXT_MIN_OCCURS) or 0,
        max_occurs=_occurs(raw, EXT_MAX_OCCURS),
        children=[_item(child, questionnaire) for child in raw.get("item", [])],
        raw=raw,
    )
    if type_ in {"choice", "open-choice"}:
        item.options = _options(raw, questionnaire)
        repeat_kind = "checkbox" if item.repeats else "radio"
        item.kind = CHOICE_CONTROLS.get(hint or "", repeat_kind)
        if item.kind == "radio" and item.repeats:
            item.kind = "checkbox"
        if not item.options and type_ == "choice":
            item.kind = "unsupported"
    elif type_ == "boolean":
        item.options = [
            Option("true", Markup("Yes"), None, None, {"valueBoolean": True}),
            Option("false", Markup("No"), None, None, {"valueBoolean": False}),
        ]
    elif type_ == "group" and item.repeats:
        item.kind = "repeat"
    elif type_ not in ANSWER_TYPES | {"group", "display"}:
        item.kind = "unsupported"
    if item.read_only and item.kind not in {"group", "repeat", "display", "unsupported"}:
        item.kind = "readonly"
    if (_ext(raw, EXT_HIDDEN) or {}).get("valueBoolean"):
        item.kind = "hidden"
    item.values = _initial(raw, item.options)
    return item


def _occurs(raw: Mapping[str, Any], url: str) -> int | None:
    value = (_ext(raw, url) or {}).get("valueInteger")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _options(raw: Mapping[str, Any], questionnaire: Mapping[str, Any]) -> list[Option]:
    entries = list(raw.get("answerOption", []))
    ref = raw.get("answerValueSet")
    if not entries and isinstance(ref, str) and ref.startswith("#"):
        entries = _contained_options(questionnaire, ref[1:])
    options = []
    for entry in entries:
        key_name = next((k for k in VALUE_KEYS if k in entry), None)
        if key_name is None:
            continue
        value = entry[key_name]
        rich = None
        if key_name == "valueCoding":
            key = str(value.get("code", ""))
            shown = value.get("display")
            # An RQ option displays its CodeSystem's "Secure" but the respondent reads the
            # prototype paragraph, carried by rendering-xhtml on the display.
            rich = _rich(value, "display", PHRASING_TAGS)
            value = {k: v for k, v in value.items() if not k.startswith("_")}
        else:
            key = str(value)
            shown = key
        ordinal = _ext(entry, EXT_ORDINAL) or _ext(
            value if key_name == "valueCoding" else {}, EXT_ORDINAL
        )
        weight = ordinal.get("valueDecimal") if ordinal else None
        point = key if weight is not None and shown != key else None
        label = rich or (escape(shown) if shown else (Markup("") if point else escape(key)))
        options.append(Option(key, label, point, weight, {key_name: value}))
    unique = len({o.key for o in options}) == len(options)
    for n, opt in enumerate(options):
        opt.index = n
        opt.key = opt.key if unique else f"#{n}"
    return options


def _contained_options(questionnaire: Mapping[str, Any], vs_id: str) -> list[dict[str, Any]]:
    for res in questionnaire.get("contained", []):
        if res.get("resourceType") == "ValueSet" and res.get("id") == vs_id:
            found = [{"valueCoding": c} for c in res.get("expansion", {}).get("contains", [])]
            for inc in res.get("compose", {}).get("include", []):
                found += [
                    {"valueCoding": {"system": inc.get("system"), **c}}
                    for c in inc.get("concept", [])
                ]
            return found
    return []


def _initial(raw: Mapping[str, Any], options: list[Option]) -> list[str]:
    picked = [
        o.key
        for o, entry in zip(options, raw.get("answerOption", []), strict=False)
        if entry.get("initialSelected")
    ]
    for init in raw.get("initial", []):
        for key in ("valueCoding", "valueBoolean", "valueString", "valueInteger", "valueDecimal"):
            if key in init:
                value = init[key]
                if key == "valueCoding":
                    picked += [o.key for o in options if same_coding(o.answer, value)]
                else:
                    picked.append(
                        ("true" if value else "false") if key == "valueBoolean" else str(value)
                    )
    return picked


def _mark_likert(items: list[FormItem]) -> None:
    """Same-option sibling radio groups render as Likert rows sharing one scale."""

    def signature(item: FormItem) -> tuple[Any, ...]:
        return tuple((o.key, str(o.label), o.point) for o in item.options)

    radios = [i for i in items if i.kind == "radio" and i.type == "choice" and len(i.options) > 1]
    counts = Counter(signature(i) for i in radios)
    for item in radios:
        if counts[signature(item)] > 1:
            item.kind = "likert"
    for item in items:
        _mark_likert(item.children)
