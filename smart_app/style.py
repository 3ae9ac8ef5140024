"""The EHR's ``smart_style_url``: colours only, validated, served back as CSS custom properties.

The style document is fetched once at callback time, without credentials, and only from the
origin of the FHIR server or the authorization server. Only colour values matching a strict
pattern survive; anything else (fonts, URLs, raw CSS) is dropped, so nothing the EHR sends can
inject CSS. The app's stylesheet reads the values as ``var(--ehr-...)`` with its own defaults.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from smart_app.errors import ForbiddenAddress

#: SMART style keys the app honours -> the CSS custom property they set.
COLOUR_KEYS = {
    "color_background": "--ehr-background",
    "color_text": "--ehr-text",
    "color_highlight": "--ehr-highlight",
    "color_error": "--ehr-error",
    "color_success": "--ehr-success",
    "color_modal_backdrop": "--ehr-modal-backdrop",
}

_COLOUR = re.compile(
    r"^(#[0-9a-fA-F]{3,4}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}"
    r"|rgba?\(\s*\d{1,3}%?\s*,\s*\d{1,3}%?\s*,\s*\d{1,3}%?\s*(,\s*(0|1|0?\.\d{1,3})\s*)?\))$"
)


def is_colour(value: Any) -> bool:
    """True for a hex colour or an rgb()/rgba() with plain numbers; nothing else."""
    return isinstance(value, str) and len(value) <= 40 and _COLOUR.fullmatch(value) is not None


def colours(doc: Any) -> dict[str, str]:
    """The valid colours of a style document, keyed by CSS custom property."""
    if not isinstance(doc, dict):
        return {}
    return {prop: doc[key] for key, prop in COLOUR_KEYS.items() if is_colour(doc.get(key))}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return parts.scheme, parts.hostname or "", port


def fetch_colours(url: str, trusted: list[str], http: httpx.Client) -> dict[str, str]:
    """Fetch ``url`` (only from a ``trusted`` origin) and keep its valid colours; {} on failure."""
    if not url or _origin(url) not in {_origin(t) for t in trusted}:
        return {}
    try:
        response = http.get(url, headers={"Accept": "application/json"})
        doc = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, ForbiddenAddress):
        return {}
    return colours(doc)


def stylesheet(values: dict[str, str]) -> str:
    """A ``:root`` rule setting the custom properties (values were validated on the way in)."""
    lines = [f"  {prop}: {value};" for prop, value in values.items() if is_colour(value)]
    return ":root {\n" + "\n".join(lines) + "\n}\n"
