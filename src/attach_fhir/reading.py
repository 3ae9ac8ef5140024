"""Numbers as a person reads them.

FHIR keeps full precision; every page, PDF, card and report shows a score through
:func:`for_reading`, so that "4.055555555555555" never reaches a reader.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from numbers import Real

PLACES = 2


def for_reading(value: float | int | Decimal, places: int = PLACES) -> str:
    """``value`` rounded half away from zero to ``places`` decimals, as text.

    Raises ``ValueError`` for a value that is not a finite number (a bool, NaN, text).
    """
    if isinstance(value, bool) or not isinstance(value, (Real, Decimal)):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    quantum = Decimal(1).scaleb(-places)
    return str(exact.quantize(quantum, rounding=ROUND_HALF_UP))
