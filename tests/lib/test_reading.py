from decimal import Decimal

import pytest

from attach_fhir.reading import for_reading


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (4.055555555555555, "4.06"),  # 73/18, the ECR-R value the plan editor used to show
        (3.5, "3.50"),
        (2, "2.00"),
        (1.005, "1.01"),  # repr is "1.005": half away from zero, not binary 1.00499...
        (-0.125, "-0.13"),
        (Decimal("6.999"), "7.00"),
    ],
)
def test_a_score_is_shown_with_two_decimals(value: float, shown: str) -> None:
    assert for_reading(value) == shown


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "4.5", None])
def test_what_is_not_a_number_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        for_reading(bad)  # type: ignore[arg-type]
