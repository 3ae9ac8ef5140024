"""Form field names and element ids: one per item occurrence (a linkId and its instance path).

An item outside repeating groups posts as ``q:<linkId>``; inside the n-th instance of a repeating
group as ``q.<n>:<linkId>`` (``q.<n>.<m>:<linkId>`` one repeating group deeper). What comes before
the first colon is a word and dot-separated numbers, so no linkId (which may hold any character,
colons too) makes two names alike. The words: ``q`` an item's answers, ``o`` an open-choice item's
own text, ``n`` how many instances a repeating group shows, ``add`` and ``remove`` the buttons'
``action`` values (``add<scope>:<linkId>`` adds an instance to that group, ``remove<scope>.<n>:``
removes its n-th).
"""

from __future__ import annotations

import re

Path = tuple[int, ...]

NAME = re.compile(r"(q|o|n|add|remove)((?:\.[1-9]\d{0,3})*):(.*)", re.DOTALL)
FIELD_KINDS = {"q", "o", "n"}
#: The most instances one repeating group shows, whatever a post or a response says.
MAX_INSTANCES = 100
#: The most instances one form shows in all: nested groups multiply (100 trips of 100 stops
#: from a 3 kB post, or a Questionnaire's minOccurs at each level), the form stays bounded.
MAX_FORM_INSTANCES = 1000


def scope(path: Path) -> str:
    """The instance path as it sits between a name's word and its colon (``.1.2``)."""
    return "".join(f".{n}" for n in path)


def field_name(link_id: str, path: Path = ()) -> str:
    """The form field name for a linkId (in the instance at ``path``)."""
    return f"q{scope(path)}:{link_id}"


def other_field_name(link_id: str, path: Path = ()) -> str:
    """The free-text field name for an open-choice linkId (in the instance at ``path``)."""
    return f"o{scope(path)}:{link_id}"


def count_name(link_id: str, path: Path = ()) -> str:
    """The hidden field carrying how many instances a repeating group shows."""
    return f"n{scope(path)}:{link_id}"


def item_key(link_id: str, path: Path = ()) -> str:
    """The key of an item occurrence in an error mapping: the linkId, ``[n]`` per instance."""
    return link_id + "".join(f"[{n}]" for n in path)


def html_id(link_id: str, path: Path = ()) -> str:
    """An injective, CSS-safe element id for a linkId (in the instance at ``path``)."""
    safe = "".join(
        c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in link_id
    )
    # "q-" outside instances, "q_1_2-" inside: the character after the q tells them apart.
    return f"q{''.join(f'_{n}' for n in path)}-{safe}"


def parse_name(name: str) -> tuple[str, Path, str] | None:
    """A field name or action value as (word, instance path, linkId); None for anything else."""
    match = NAME.fullmatch(name)
    if match is None:
        return None
    word, dotted, link_id = match.groups()
    return word, tuple(int(n) for n in dotted.split(".")[1:]), link_id


def is_form_field(name: str) -> bool:
    """True for the fields that carry a form's answers and instance counts."""
    if name[1:2] == ":":  # outside instances, the common case: no pattern needed
        return name[:1] in FIELD_KINDS
    found = parse_name(name) if name[:1] in FIELD_KINDS else None
    return found is not None and found[0] in FIELD_KINDS


def instance_count(raw: list[str]) -> int:
    """A posted instance count (0 when it is not a small whole number)."""
    text = raw[0].strip() if raw else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 4 else 0
