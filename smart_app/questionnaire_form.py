"""The form view model: an SDC Questionnaire turned into items the templates render.

Everything that comes from a Questionnaire is inert here: plain text is escaped, and the
``rendering-xhtml`` extension only passes through an nh3 allow-list. ``enableWhen`` is evaluated
on the form's raw values (the same strings the browser posts), so the page is right without JS
and ``static/enable-when.js`` reproduces the same rules from the ``data-when`` attributes.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import nh3
from markupsafe import Markup, escape

from attach_fhir.frozen import derived
from smart_app.enable_when import compile_condition, evaluate_enable_when, same_coding

EXT_XHTML = "http://hl7.org/fhir/StructureDefinition/rendering-xhtml"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
EXT_HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
EXT_CALCULATED = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
)
# Labels and legends take phrasing content only; display items may also carry simple blocks.
PHRASING_TAGS = {"b", "strong", "i", "em", "u", "s", "sub", "sup", "small", "mark", "span", "br"}
BLOCK_TAGS = PHRASING_TAGS | {"p", "ul", "ol", "li"}
ANSWER_TYPES = {"choice", "open-choice", "boolean", "integer", "decimal", "string", "text", "date"}
CHOICE_CONTROLS = {"radio-button": "radio", "check-box": "checkbox", "drop-down": "dropdown"}
VALUE_KEYS = ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime")

Values = dict[str, list[str]]


@dataclass
class Option:
    """One answer option: its form value, visible label and ordinal weight."""

    key: str
    label: Markup
    point: str | None
    ordinal: float | None
    answer: dict[str, Any]
    index: int = 0
    caption: Markup = field(default_factory=Markup)

    def __post_init__(self) -> None:
        # What follows the control: the scale point in bold, then the label. Built once here
        # because the template would otherwise format it for every radio of every render; by
        # concatenating escaped parts, which is several times faster than Markup.format.
        point = f"<b>{escape(self.point)}</b>" if self.point else ""
        label = f" <span>{escape(self.label)}</span>" if self.label else ""
        self.caption = Markup(point + label)  # noqa: S704 - both parts escaped above


@dataclass
class FormItem:
    """One Questionnaire item as the template sees it (``kind`` picks the macro)."""

    link_id: str
    type: str
    kind: str
    id: str
    label: Markup
    prefix: Markup | None = None
    text: str = ""
    required: bool = False
    read_only: bool = False
    repeats: bool = False
    calculated: bool = False
    max_length: int | None = None
    control: str | None = None
    options: list[Option] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    other: str = ""
    error: str | None = None
    enabled: bool = True
    when: list[dict[str, Any]] = field(default_factory=list)
    behavior: str = "all"
    children: list[FormItem] = field(default_factory=list)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: (option key, markup before " checked", markup after) per option; built at compile time.
    option_html: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)

    def choices_html(self) -> Markup:
        """The options as labelled radios or checkboxes, the given answers checked.

        The hot path of the form page (252 radios on the ECR-R): the escaped fragments are built
        once per compiled Questionnaire, so a render only joins them.
        """
        values = set(self.values)
        return Markup(  # noqa: S704 - fragments escaped in _option_html
            "".join(
                f"{before}{' checked' if key in values else ''}{after}"
                for key, before, after in self.option_html
            )
        )

    @property
    def name(self) -> str:
        """The form field name carrying this item's answers."""
        return field_name(self.link_id)

    @property
    def other_name(self) -> str:
        """The form field name of an open-choice item's free-text answer."""
        return other_field_name(self.link_id)

    @property
    def when_json(self) -> str:
        """The compiled enableWhen conditions for the ``data-when`` attribute."""
        return json.dumps(self.when, separators=(",", ":")) if self.when else ""

    @property
    def first_input_id(self) -> str:
        """The id an error-summary link should focus."""
        if self.kind in {"radio", "likert", "checkbox", "boolean"}:
            return f"{self.id}-0" if self.options else f"{self.id}-o"
        return self.id

    @property
    def is_question(self) -> bool:
        """True when the item takes answers from the form."""
        return self.type in ANSWER_TYPES and self.kind not in {"unsupported", "readonly", "hidden"}


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


def field_name(link_id: str) -> str:
    """The form field name for a linkId."""
    return f"q:{link_id}"


def other_field_name(link_id: str) -> str:
    """The free-text field name for an open-choice linkId."""
    return f"o:{link_id}"


def html_id(link_id: str) -> str:
    """An injective, CSS-safe element id for a linkId."""
    safe = "".join(
        c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in link_id
    )
    return f"q-{safe}"


def form_values(form: Any) -> Values:
    """A posted form (a Werkzeug MultiDict or a dict of lists) as ``{name: [values]}``."""
    getlist = getattr(form, "getlist", None)
    out: Values = {}
    for key in form.keys():
        raw = getlist(key) if getlist else form[key]
        out[key] = [raw] if isinstance(raw, str) else [str(v) for v in raw]
    return out


def walk(items: list[FormItem]) -> Iterator[FormItem]:
    """Every item of a tree, depth first in document order."""
    for item in items:
        yield item
        yield from walk(item.children)


def build_form(
    questionnaire: Mapping[str, Any],
    values: Any = None,
    errors: Mapping[str, str] | None = None,
) -> QuestionnaireForm:
    """Build the view model; ``values=None`` means a fresh form showing ``initial`` answers."""
    vals = form_values(values) if values is not None else None
    items = [_fill(item, vals) for item in compiled_items(questionnaire)]
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
    (packaged) Questionnaire, so shared between forms and never to be changed; see ``_fill``."""
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


def _fill(compiled: FormItem, vals: Values | None) -> FormItem:
    """A fresh item for one form: the compiled one with this form's answers."""
    item = copy.copy(compiled)
    item.children = [_fill(child, vals) for child in compiled.children]
    if vals is None:
        item.values = list(compiled.values)
    else:
        item.values = list(vals.get(item.name, []))
        item.other = next(iter(vals.get(item.other_name, [])), "")
    return item


def add_errors(form: QuestionnaireForm, errors: Mapping[str, str]) -> None:
    """Put each linkId's message on its item and a link to it in the error summary."""
    for item in form.walk():
        message = errors.get(item.link_id)
        if message:
            item.error = message
            short = item.text if len(item.text) <= 80 else item.text[:77] + "..."
            label = f"{item.prefix} {short}".strip() if item.prefix else short
            form.errors.append(ErrorLink(f"#{item.first_input_id}", f"{label}: {message}"))


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
    elif type_ not in ANSWER_TYPES | {"group", "display"}:
        item.kind = "unsupported"
    if item.read_only and item.kind not in {"group", "display", "unsupported"}:
        item.kind = "readonly"
    if (_ext(raw, EXT_HIDDEN) or {}).get("valueBoolean"):
        item.kind = "hidden"
    item.values = _initial(raw, item.options)
    return item


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
        if key_name == "valueCoding":
            key = str(value.get("code", ""))
            shown = value.get("display")
        else:
            key = str(value)
            shown = key
        ordinal = _ext(entry, EXT_ORDINAL) or _ext(
            value if key_name == "valueCoding" else {}, EXT_ORDINAL
        )
        weight = ordinal.get("valueDecimal") if ordinal else None
        point = key if weight is not None and shown != key else None
        label = escape(shown) if shown else (Markup("") if point else escape(key))
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
