"""The form's items as the templates see them: one ``FormItem`` per item occurrence.

Built by :mod:`smart_app.forms.questionnaire_form` from a Questionnaire; the markup they carry is
escaped or sanitised there. A repeating group is kind ``repeat``; in a filled form its
``children`` are its instances (kind ``instance``, the group's linkId, ``path`` ending in the
instance number), each holding its own copy of the group's items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from smart_app.forms.form_fields import (
    MAX_INSTANCES,
    Path,
    count_name,
    field_name,
    item_key,
    other_field_name,
    scope,
)

ANSWER_TYPES = {"choice", "open-choice", "boolean", "integer", "decimal", "string", "text", "date"}


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
    #: The instance numbers of the repeating groups around the item (an instance's ends in its own).
    path: Path = ()
    #: An instance's number (1, 2, ...); 0 for every other item.
    instance: int = 0
    #: Which instances the item is in, for the error summary ("Pet 2").
    where: str = ""
    min_occurs: int = 0
    max_occurs: int | None = None
    #: A repeating group's linkIds below it (their fields move when an instance is removed).
    members: frozenset[str] = frozenset()
    #: An instance the form lets the user remove; the one the page focuses after add or remove.
    removable: bool = False
    focus: bool = False
    #: The instance path of each enableWhen question answering for this occurrence.
    when_scopes: list[Path] = field(default_factory=list, repr=False)

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
        return field_name(self.link_id, self.path)

    @property
    def other_name(self) -> str:
        """The form field name of an open-choice item's free-text answer."""
        return other_field_name(self.link_id, self.path)

    @property
    def key(self) -> str:
        """This occurrence's key in an error mapping (the linkId outside repeating groups)."""
        return item_key(self.link_id, self.path)

    @property
    def when_json(self) -> str:
        """The compiled enableWhen conditions for the ``data-when`` attribute; ``s`` is the
        instance scope of a question answered inside a repeating group."""
        if not self.when:
            return ""
        scopes = self.when_scopes or [()] * len(self.when)
        pairs = zip(self.when, scopes, strict=True)
        conditions = [{**c, "s": scope(p)} if p else c for c, p in pairs]
        return json.dumps(conditions, separators=(",", ":"))

    @property
    def first_input_id(self) -> str:
        """The id an error-summary link should focus."""
        if self.kind in {"radio", "likert", "checkbox", "boolean"}:
            return f"{self.id}-0" if self.options else f"{self.id}-o"
        if self.kind == "repeat" and self.children:
            return self.children[0].id
        return self.id

    @property
    def min_instances(self) -> int:
        """How many instances a repeating group always shows."""
        return max(1, min(self.min_occurs, MAX_INSTANCES))

    @property
    def can_add(self) -> bool:
        """True when a repeating group may show one instance more."""
        return len(self.children) < min(self.max_occurs or MAX_INSTANCES, MAX_INSTANCES)

    @property
    def count_name(self) -> str:
        """A repeating group's hidden instance-count field."""
        return count_name(self.link_id, self.path)

    @property
    def add_value(self) -> str:
        """The ``action`` value of a repeating group's add button."""
        return f"add{scope(self.path)}:{self.link_id}"

    @property
    def remove_value(self) -> str:
        """The ``action`` value of an instance's remove button."""
        return f"remove{scope(self.path)}:{self.link_id}"

    @property
    def legend(self) -> str:
        """An instance's legend: the group's text and the instance number."""
        return f"{self.text} {self.instance}"

    @property
    def shown_values(self) -> list[str]:
        """What a text-like item's inputs show, one input each: the answer; for a repeating
        item its answers and one empty input while maxOccurs allows one more."""
        if not self.repeats:
            return self.values[:1] or [""]
        given = [v for v in self.values if v.strip()]
        room = self.max_occurs is None or len(given) < self.max_occurs
        return [*given, ""] if room else given

    @property
    def is_question(self) -> bool:
        """True when the item takes answers from the form."""
        return self.type in ANSWER_TYPES and self.kind not in {"unsupported", "readonly", "hidden"}


def walk(items: list[FormItem]) -> Iterator[FormItem]:
    """Every item of a tree, depth first in document order."""
    for item in items:
        yield item
        yield from walk(item.children)
