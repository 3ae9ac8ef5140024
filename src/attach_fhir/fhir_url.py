"""Where a FHIR request may go: request URLs normalised, references checked part by part.

A URL is normalised the way a server, or a proxy in front of it, may read it: backslashes as
slashes, percent-encoded unreserved characters decoded (so ``%2e`` is a dot), dot segments
removed (RFC 3986 section 5.2.4). Only the normalised URL is checked against the base, and it is
the one sent. Escapes a server may decode into a separator (``%2f``, ``%5c``, ``%25``, ``%3b``),
control or non-ASCII characters, and ``..;`` segments (read as ``..`` by some servers) are
refused.
"""

from __future__ import annotations

import json
import re
import string
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from attach_fhir.fhir_errors import FhirReferenceRefused, FhirUrlRefused

#: A FHIR resource id (R4 ``id`` datatype).
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: The resource types of FHIR R4 (4.0.1): its StructureDefinitions of kind ``resource``, neither
#: abstract nor constraints (tests/lib/test_fhir_url_types.py compares the list with the R4
#: definitions the sandbox's Medplum ships).
R4_RESOURCE_TYPES = frozenset(
    json.loads(
        resources.files("attach_fhir.data").joinpath("r4-resource-types.json").read_text("utf-8")
    )
)

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%(.{0,2})", re.DOTALL)
_HEX = frozenset(string.hexdigits)


def is_fhir_id(value: Any) -> bool:
    """Whether ``value`` is a FHIR resource id (so it can name nothing but one resource).

    ``.`` and ``..`` match R4's pattern but are URL dot segments: httpx resolves
    ``Task/..`` to the base and ``Patient/.`` to a type-wide search, so they are refused."""
    return (
        isinstance(value, str) and FHIR_ID.fullmatch(value) is not None and value not in (".", "..")
    )


def is_resource_type(value: Any) -> bool:
    """Whether ``value`` is a FHIR R4 resource type (``Patient``, ``Goal``; not ``Leak``)."""
    return isinstance(value, str) and value in R4_RESOURCE_TYPES


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: ``/a/b/../c/./d`` becomes ``/a/c/d``."""
    if not path.startswith("/"):
        return path
    segments = path.split("/")[1:]
    out: list[str] = []
    for n, segment in enumerate(segments):
        last = n == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if last:  # "/a/b/.." is "/a/": the trailing slash stays
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _decoded_path(path: str) -> str:
    """Unreserved escapes decoded, the others kept (upper-cased); dangerous ones refused."""

    def one(match: re.Match[str]) -> str:
        digits = match.group(1)
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise FhirUrlRefused("Refused a URL with a malformed percent escape.")
        char = chr(int(digits, 16))
        if char in _UNRESERVED:
            return char
        if char in "/\\%;" or not " " <= char < "\x7f":
            # A server that decodes before routing would see a separator or a second escape.
            raise FhirUrlRefused("Refused a URL with an encoded separator in its path.")
        return "%" + digits.upper()

    return _ESCAPE.sub(one, path)


def normalise(url: str) -> str:
    """``url`` as a server would read its path (dot segments gone); the fragment dropped."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise FhirUrlRefused("Refused a URL that cannot be parsed.") from exc
    if any(not " " < c < "\x7f" for c in parts.path):
        raise FhirUrlRefused("Refused a URL with a space, control or non-ASCII character.")
    path = remove_dot_segments(_decoded_path(parts.path.replace("\\", "/")))
    if any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/")):
        raise FhirUrlRefused("Refused a URL with a dot segment carrying parameters.")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))


def reference_path(reference: str) -> str:
    """The request path of a relative reference: ``Type/id`` or ``Type/id/_history/vid`` only.

    Anything else (another shape, a query, a type or id of other characters) is refused, so a
    reference from data or a token can only ever name one resource."""
    parts = reference.split("/")
    if len(parts) not in (2, 4):
        raise FhirReferenceRefused()
    return checked_path(parts[0], parts[1], *parts[2:])


def checked_path(resource_type: str, resource_id: str, *history: str) -> str:
    """The request path for a type, id and optional ``_history``/version; refused otherwise."""
    if not is_resource_type(resource_type) or not is_fhir_id(resource_id):
        raise FhirReferenceRefused()
    if history and (len(history) != 2 or history[0] != "_history" or not is_fhir_id(history[1])):
        raise FhirReferenceRefused()
    return "/".join((resource_type, resource_id, *history))
