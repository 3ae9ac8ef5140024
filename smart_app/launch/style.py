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

from smart_app.web.errors import ForbiddenAddress

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


#: The app's own colours (static/app.css) where the EHR sets none.
DEFAULTS = {
    "--ehr-background": "#ffffff",
    "--ehr-text": "#1b1b1b",
    "--ehr-highlight": "#005ea2",
    "--ehr-error": "#b50909",
}
#: Colours the app writes text in on the background (body text, links and buttons, errors).
TEXT_COLOURS = ("--ehr-text", "--ehr-highlight", "--ehr-error")
#: WCAG 2.1 AA contrast for normal text (1.4.3).
AA = 4.5
#: The patient banner's text colour (on the highlight colour); white unless that fails AA.
ON_HIGHLIGHT = "--ehr-on-highlight"

RGB = tuple[float, float, float]


def stylesheet(values: dict[str, str]) -> str:
    """A ``:root`` rule setting the custom properties (values were validated on the way in),
    with text colours made readable on the background (see :func:`readable`)."""
    valid = {prop: value for prop, value in values.items() if is_colour(value)}
    lines = [f"  {prop}: {value};" for prop, value in readable(valid).items()]
    return ":root {\n" + "\n".join(lines) + "\n}\n"


def readable(values: dict[str, str]) -> dict[str, str]:
    """The EHR's colours with every text colour reaching 4.5:1 on the background (WCAG 2.1 AA).

    A colour that already does is kept as sent; one that does not (the EHR's, or the app's own
    default on the EHR's background) is moved towards black on a light background, or white on
    a dark one, just far enough. The banner's text on the highlight colour is white, or else
    the background colour (which the highlight contrasts with by then).
    """
    if not values:
        return {}
    out = dict(values)
    background = _opaque(values.get("--ehr-background") or DEFAULTS["--ehr-background"], None)
    for prop in TEXT_COLOURS:
        colour = _opaque(values.get(prop) or DEFAULTS[prop], background)
        if contrast(colour, background) < AA:
            out[prop] = _hex(_readable_on(colour, background))
    highlight = _opaque(out.get("--ehr-highlight") or DEFAULTS["--ehr-highlight"], background)
    if contrast((255.0, 255.0, 255.0), highlight) < AA:
        out[ON_HIGHLIGHT] = _hex(background)
    return out


def contrast(a: RGB, b: RGB) -> float:
    """The WCAG contrast ratio of two opaque sRGB colours (1 to 21)."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _luminance(rgb: RGB) -> float:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _readable_on(colour: RGB, background: RGB) -> RGB:
    """``colour`` mixed towards black (or white, on a dark background) until it reaches AA."""
    light = contrast((0.0, 0.0, 0.0), background) >= contrast((255.0, 255.0, 255.0), background)
    target = 0.0 if light else 255.0
    for step in range(1, 21):
        t = step / 20
        # whole channels, as the stylesheet writes them, so what is checked is what is served
        mixed = (
            float(round(colour[0] + (target - colour[0]) * t)),
            float(round(colour[1] + (target - colour[1]) * t)),
            float(round(colour[2] + (target - colour[2]) * t)),
        )
        if contrast(mixed, background) >= AA:
            return mixed
    return (target, target, target)


def _parse(value: str) -> tuple[RGB, float]:
    """(r, g, b) 0-255 and alpha 0-1 of a colour that passed :func:`is_colour`."""
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (3, 4):
            digits = "".join(d * 2 for d in digits)
        channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        alpha = channels[3] / 255 if len(channels) == 4 else 1.0
        return (float(channels[0]), float(channels[1]), float(channels[2])), alpha
    parts = [p.strip() for p in value[value.index("(") + 1 : -1].split(",")]

    def channel(p: str) -> float:
        return min(255.0, float(p[:-1]) * 2.55 if p.endswith("%") else float(p))

    alpha = float(parts[3]) if len(parts) == 4 else 1.0
    return (channel(parts[0]), channel(parts[1]), channel(parts[2])), alpha


def _opaque(value: str, under: RGB | None) -> RGB:
    """The colour as seen over ``under`` (white when None), for see-through colours."""
    (r, g, b), alpha = _parse(value)
    base = under or (255.0, 255.0, 255.0)
    return (
        r * alpha + base[0] * (1 - alpha),
        g * alpha + base[1] * (1 - alpha),
        b * alpha + base[2] * (1 - alpha),
    )


def _hex(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)
