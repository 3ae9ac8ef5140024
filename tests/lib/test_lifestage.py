"""Life stage boundaries (organisational, see attach_fhir.lifestage), by hand-picked dates."""

from datetime import date

import pytest

from attach_fhir.lifestage import (
    InvalidBirthDate,
    LifeStage,
    age_in_years,
    birth_date_bounds,
    is_caregiver_of_young_child,
    life_stage,
    stage_for_age,
)


@pytest.mark.parametrize(
    ("age", "stage"),
    [
        (0, LifeStage.EARLY_CHILDHOOD),
        (5, LifeStage.EARLY_CHILDHOOD),
        (6, LifeStage.SCHOOL_AGE),
        (11, LifeStage.SCHOOL_AGE),
        (12, LifeStage.ADOLESCENCE),
        (17, LifeStage.ADOLESCENCE),
        (18, LifeStage.ADULTHOOD),
        (90, LifeStage.ADULTHOOD),
    ],
)
def test_each_stage_starts_and_ends_at_the_documented_age(age: int, stage: LifeStage) -> None:
    assert stage_for_age(age) is stage


def test_age_counts_completed_years() -> None:
    assert age_in_years(date(2000, 6, 15), date(2018, 6, 14)) == 17
    assert age_in_years(date(2000, 6, 15), date(2018, 6, 15)) == 18
    assert age_in_years(date(2025, 1, 6), date(2025, 1, 6)) == 0


def test_a_leap_day_birthday_counts_from_first_of_march_in_common_years() -> None:
    assert age_in_years(date(2004, 2, 29), date(2022, 2, 28)) == 17
    assert age_in_years(date(2004, 2, 29), date(2022, 3, 1)) == 18


def test_stage_changes_on_the_birthday() -> None:
    # Born 2019-03-10: five on 2025-03-09, six on 2025-03-10.
    assert life_stage("2019-03-10", date(2025, 3, 9)) is LifeStage.EARLY_CHILDHOOD
    assert life_stage(date(2019, 3, 10), date(2025, 3, 10)) is LifeStage.SCHOOL_AGE
    assert life_stage("2007-01-07", date(2025, 1, 6)) is LifeStage.ADOLESCENCE
    assert life_stage("2007-01-06", date(2025, 1, 6)) is LifeStage.ADULTHOOD


def test_partial_birth_dates() -> None:
    assert birth_date_bounds("2013") == (date(2013, 1, 1), date(2013, 12, 31))
    assert birth_date_bounds("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    on = date(2025, 6, 1)
    # Born in 2013: 12 if born by 1 June, else 11 -> the stage is not determined.
    assert life_stage("2013", on) is None
    # Born in 2010: 15 or 14, adolescent either way.
    assert life_stage("2010", on) is LifeStage.ADOLESCENCE
    # Born February 2013: 12 on 1 June 2025 whichever day.
    assert life_stage("2013-02", on) is LifeStage.ADOLESCENCE
    # Born this year, some days of which are still to come.
    assert life_stage("2025", on) is LifeStage.EARLY_CHILDHOOD


@pytest.mark.parametrize("bad", ["2013-13-01", "13/01/2013", "2013-02-30", "20130101", ""])
def test_malformed_birth_dates_are_refused(bad: str) -> None:
    with pytest.raises(InvalidBirthDate):
        life_stage(bad, date(2025, 6, 1))


def test_a_birth_date_after_the_reference_date_is_refused() -> None:
    with pytest.raises(InvalidBirthDate):
        life_stage("2025-06-02", date(2025, 6, 1))
    with pytest.raises(InvalidBirthDate):
        life_stage("2026", date(2025, 6, 1))


def test_caregiver_of_a_young_child() -> None:
    on = date(2025, 6, 1)
    assert is_caregiver_of_young_child(["2022-05-01"], on)  # 3 years old
    # A child born 2019-06-02 is still 5 on 2025-06-01; one born a day earlier is 6.
    assert is_caregiver_of_young_child(["2015-01-01", "2019-06-02"], on)
    assert not is_caregiver_of_young_child(["2015-01-01", "2019-06-01"], on)  # 10 and 6
    assert not is_caregiver_of_young_child([], on)
