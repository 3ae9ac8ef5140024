"""The page filters: ``score`` rounds for reading, ``score_change`` keeps the sign, and
``text_rows`` sizes a text area to its text (expectations worked out by hand)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smart_app.web.filters import score, score_change, text_rows


def test_a_long_mean_reads_with_two_decimals() -> None:
    assert score(73 / 18) == "4.06"  # 4.0555...
    assert score(Decimal("3.285")) == "3.29"  # half away from zero
    assert score(4) == "4.00"
    assert score("2.5") == "2.50"


def test_nothing_to_show_is_the_missing_text() -> None:
    assert score(None) == ""
    assert score(None, "no score") == "no score"


def test_text_that_is_no_number_is_refused() -> None:
    with pytest.raises(ValueError):
        score("high")
    with pytest.raises(ValueError):
        score(True)


def test_a_change_carries_its_sign() -> None:
    assert score_change(0.5) == "+0.50"
    assert score_change(-1.0 / 3) == "-0.33"
    assert score_change(0.0) == "0.00"


def test_a_text_area_fits_its_text() -> None:
    assert text_rows("", 3) == 3
    # 150 characters at 70 a line wrap to 3 lines, plus one empty line to type into.
    assert text_rows("x" * 150, 2) == 4
    assert text_rows("one\ntwo\nthree\nfour", 2) == 5
