"""The EHR's colours are made readable: every text colour reaches WCAG 2.1 AA (4.5:1) on the
background, checked with the published formula written out here, independently of the app."""

from __future__ import annotations

import re

import pytest

from smart_app.launch import style


def luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rrggbb``."""
    channels = []
    for i in (1, 3, 5):
        c = int(hex_colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def served(values: dict[str, str]) -> dict[str, str]:
    """The custom properties of the stylesheet, parsed back."""
    return dict(re.findall(r"  (--[a-z-]+): ([^;]+);", style.stylesheet(values)))


def test_the_formula_on_known_pairs() -> None:
    assert ratio("#ffffff", "#000000") == pytest.approx(21.0)
    assert ratio("#005ea2", "#ffffff") == pytest.approx(6.73, abs=0.01)  # worked by hand


def test_readable_ehr_colours_are_served_as_sent() -> None:
    values = {"--ehr-background": "#ffffff", "--ehr-highlight": "#005ea2", "--ehr-text": "#333"}
    assert served(values) == values


def test_a_light_highlight_is_darkened_until_it_reads_on_the_background() -> None:
    # The sandbox EHR's colours: #69b5ce on #edeae3 is about 2.0:1.
    assert ratio("#69b5ce", "#edeae3") < 2.1
    got = served({"--ehr-background": "#edeae3", "--ehr-highlight": "#69b5ce"})
    highlight = got["--ehr-highlight"]
    assert ratio(highlight, "#edeae3") >= 4.5
    assert ratio(highlight, "#ffffff") >= 4.5  # the banner's white text on it
    original = (0x69, 0xB5, 0xCE)
    darker = tuple(int(highlight[i : i + 2], 16) for i in (1, 3, 5))
    assert all(d < o for d, o in zip(darker, original, strict=True))  # the same hue, darker
    assert "--ehr-on-highlight" not in got


def test_on_a_dark_background_the_app_defaults_are_lightened() -> None:
    got = served({"--ehr-background": "#123456"})
    for prop in ("--ehr-text", "--ehr-highlight", "--ehr-error"):
        assert ratio(got[prop], "#123456") >= 4.5, prop
    # White on the now light highlight would not read: the banner uses the background.
    assert ratio("#ffffff", got["--ehr-highlight"]) < 4.5
    assert got["--ehr-on-highlight"] == "#123456"


def test_a_see_through_text_colour_is_judged_as_it_shows() -> None:
    # 20% black over white shows as #cccccc: 1.6:1 on white.
    got = served({"--ehr-background": "#ffffff", "--ehr-text": "rgba(0, 0, 0, 0.2)"})
    assert got["--ehr-text"] != "rgba(0, 0, 0, 0.2)"
    assert ratio(got["--ehr-text"], "#ffffff") >= 4.5


def test_no_ehr_colours_no_overrides() -> None:
    assert style.stylesheet({}) == ":root {\n\n}\n"
