"""SMART App Launch scopes (v1 and v2 syntax) as the sandbox understands them."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Scopes that are not resource permissions, in the order the configuration advertises them.
_NON_RESOURCE = (
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
)
NON_RESOURCE_SCOPES = frozenset(_NON_RESOURCE)

_V1 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*)$")
_V2 = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(?=[cruds])(c?r?u?d?s?)(\?[^\s]*)?$")

#: The scopes advertised in the SMART configuration (examples; any well-formed scope is understood).
SCOPES_SUPPORTED = [
    *_NON_RESOURCE,
    "patient/*.rs",
    "user/*.rs",
    "patient/*.cruds",
    "user/*.cruds",
    "patient/*.read",
    "user/*.read",
    "patient/*.write",
    "user/*.write",
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
]


def split(scope: str | None) -> list[str]:
    """The scope string as a list, order kept, duplicates removed."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return list(seen)


def is_v1(scope: str) -> bool:
    """Whether the scope is a SMART v1 resource scope (``patient/Observation.read``)."""
    return bool(_V1.match(scope))


def is_v2(scope: str) -> bool:
    """Whether the scope is a SMART v2 resource scope (``patient/Observation.rs``)."""
    return bool(_V2.match(scope))


def is_understood(scope: str) -> bool:
    """Whether the sandbox knows what the scope means."""
    return scope in NON_RESOURCE_SCOPES or is_v1(scope) or is_v2(scope)


def is_system(scope: str) -> bool:
    """Whether the scope is a system/ resource scope (SMART Backend Services), v1 or v2."""
    return scope.startswith("system/") and (is_v1(scope) or is_v2(scope))


def needs_patient(scopes: Iterable[str]) -> bool:
    """Whether a patient must be in context for these scopes."""
    return any(s == "launch/patient" or s.startswith("patient/") for s in scopes)


def wants_refresh_token(scopes: Iterable[str]) -> bool:
    """Whether the grant includes a refresh token."""
    return any(s in ("offline_access", "online_access") for s in scopes)


def grant(
    requested: Iterable[str], allowed: Iterable[str] | None, grant_only: Iterable[str] | None
) -> list[str]:
    """The scopes granted: requested, understood, allowed for the client, within the knob.

    The ``grant_only`` knob narrows resource scopes only; launch, identity and refresh scopes
    pass through so that a narrowed grant still launches.
    """
    allowed_set = None if allowed is None else set(allowed)
    only_set = None if grant_only is None else set(grant_only)
    return [
        s
        for s in requested
        if is_understood(s)
        and (allowed_set is None or s in allowed_set)
        and (only_set is None or s in NON_RESOURCE_SCOPES or s in only_set)
    ]
