"""A care plan's version in words: the count of its versions and the day it was last updated."""

from __future__ import annotations

import datetime as dt

from attach_fhir.plan_version import day_text, plan_version

TOKYO = dt.timezone(dt.timedelta(hours=9))
HONOLULU = dt.timezone(dt.timedelta(hours=-10))


def plan(last_updated: str | None) -> dict[str, object]:
    meta = {"versionId": "5f0c2a8e-3a0b-4b8c-9a61-7e7b8f1c2d3e"}
    if last_updated is not None:
        meta["lastUpdated"] = last_updated
    return {"resourceType": "CarePlan", "meta": meta}


def test_the_third_version_updated_on_a_december_morning() -> None:
    text = plan_version(plan("2026-12-05T10:42:00Z"), 3, dt.UTC)
    assert text == "version 3, updated 5 Dec 2026"


def test_the_day_is_the_day_in_the_apps_time_zone() -> None:
    # 23:30 UTC on 5 Dec is 08:30 on 6 Dec in UTC+9 and 13:30 on 5 Dec in UTC-10.
    assert plan_version(plan("2026-12-05T23:30:00Z"), 1, TOKYO) == "version 1, updated 6 Dec 2026"
    assert plan_version(plan("2026-12-05T23:30:00Z"), 1, HONOLULU) == (
        "version 1, updated 5 Dec 2026"
    )


def test_a_server_that_does_not_say_when_gives_the_version_alone() -> None:
    assert plan_version(plan(None), 2, dt.UTC) == "version 2"
    assert plan_version(plan("not a time"), 2, dt.UTC) == "version 2"


def test_a_history_that_could_not_be_read_gives_the_day_alone() -> None:
    assert plan_version(plan("2026-01-09T00:00:00+00:00"), None, dt.UTC) == "updated 9 Jan 2026"


def test_the_version_id_never_shows() -> None:
    assert "5f0c2a8e" not in plan_version(plan("2026-12-05T10:42:00Z"), 3, dt.UTC)


def test_days_read_without_a_leading_zero() -> None:
    assert day_text(dt.date(2027, 3, 1)) == "1 Mar 2027"
    assert day_text(dt.date(2026, 10, 31)) == "31 Oct 2026"
