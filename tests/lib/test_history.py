"""Score history from hand-written Observations (as a FHIR search returns them, in any order)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.history import (
    local_day,
    parse_time,
    plane_points,
    points,
    relationship_scores,
    series,
    skipped_targets,
    start_of,
    to_point,
)


def obs(
    code: str,
    value: float | None,
    when: str,
    qr: str | None,
    *,
    status: str = "final",
    category: str | None = None,
    note: str | None = None,
    oid: str | None = None,
) -> dict[str, Any]:
    """A score Observation shaped like the write-back's."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": SCORES_SYSTEM, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "method": {"text": "ecr-r-subscale-means 1.0.0"},
    }
    if oid:
        resource["id"] = oid
    if qr:
        resource["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{qr}"}]
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": "{score}"}
    if category is not None:
        resource["valueCodeableConcept"] = {"coding": [{"code": category}]}
    if note:
        resource["note"] = [{"text": note}]
    return resource


# Three ECR-R submissions, read back newest first, plus noise a search may return.
ECR_R = [
    obs("ecr-r-anxiety", 2.3888888889, "2024-05-10T09:00:00Z", "qr3"),
    obs("ecr-r-avoidance", 2.1666666667, "2024-05-10T09:00:00Z", "qr3"),
    obs("ecr-r-avoidance", 4.0, "2024-03-10T09:00:00Z", "qr2"),
    obs("ecr-r-anxiety", 4.0, "2024-03-10T09:00:00Z", "qr2"),
    obs("ecr-r-anxiety", 6.0, "2024-01-10T09:00:00Z", "qr1", oid="o1"),
    obs("ecr-r-avoidance", 2.0, "2024-01-10T09:00:00Z", "qr1"),
]
NOISE = [
    obs("ecr-r-anxiety", 7.0, "2024-04-01T09:00:00Z", "qr9", status="entered-in-error"),
    {**obs("ecr-r-anxiety", 1.0, "2024-04-01", "qr8"), "code": {"coding": [{"code": "x"}]}},
    obs("ecr-r-anxiety", None, "2024-04-02", "qr7"),  # no value
]


def test_series_are_per_code_in_time_order_whatever_the_search_order() -> None:
    found = series(points(ECR_R + NOISE))
    assert list(found) == ["ecr-r-anxiety", "ecr-r-avoidance"]
    assert [(p.recorded[:10], p.value) for p in found["ecr-r-anxiety"]] == [
        ("2024-01-10", 6.0),
        ("2024-03-10", 4.0),
        ("2024-05-10", 2.3888888889),
    ]
    assert [p.value for p in found["ecr-r-avoidance"]] == [2.0, 4.0, 2.1666666667]
    assert [p.submission for p in found["ecr-r-anxiety"]] == [
        "QuestionnaireResponse/qr1",
        "QuestionnaireResponse/qr2",
        "QuestionnaireResponse/qr3",
    ]
    assert found["ecr-r-anxiety"][0].observation == "Observation/o1"


def test_plane_points_pair_anxiety_and_avoidance_of_each_submission() -> None:
    planes = plane_points(points(ECR_R))
    assert list(planes) == ["ecr-r"]
    assert [(p.submission, p.avoidance, p.anxiety) for p in planes["ecr-r"]] == [
        ("QuestionnaireResponse/qr1", 2.0, 6.0),
        ("QuestionnaireResponse/qr2", 4.0, 4.0),
        ("QuestionnaireResponse/qr3", 2.1666666667, 2.3888888889),
    ]


def test_a_submission_missing_one_dimension_is_not_a_point() -> None:
    only_anxiety = [obs("ecr-anxiety", 3.0, "2024-02-01", "e1")]
    both = [
        obs("ecr-anxiety", 3.5, "2024-03-01", "e2"),
        obs("ecr-avoidance", 2.5, "2024-03-01", "e2"),
    ]
    planes = plane_points(points(only_anxiety + both + ECR_R[:2]))
    assert [(p.avoidance, p.anxiety) for p in planes["ecr"]] == [(2.5, 3.5)]
    assert [(p.avoidance, p.anxiety) for p in planes["ecr-r"]] == [(2.1666666667, 2.3888888889)]


def test_ecr_rs_scores_group_per_submission_and_relationship() -> None:
    first = [
        obs("ecr-rs-partner-anxiety", 5.0, "2024-01-05", "rs1"),
        obs("ecr-rs-partner-avoidance", 2.5, "2024-01-05", "rs1"),
        obs("ecr-rs-mother-avoidance", 3.0, "2024-01-05", "rs1"),
        obs("ecr-rs-mother-anxiety", 1.0, "2024-01-05", "rs1"),
    ]
    second = [obs("ecr-rs-friend-anxiety", 2.0, "2024-06-05", "rs2")]
    found = relationship_scores(points(second + first))
    assert [r.submission for r in found] == [
        "QuestionnaireResponse/rs1",
        "QuestionnaireResponse/rs2",
    ]
    # Targets in the instrument's order (mother, father, partner, friend), skipped ones absent.
    assert dict(found[0].targets) == {"mother": (1.0, 3.0), "partner": (5.0, 2.5)}
    assert list(found[0].targets) == ["mother", "partner"]
    assert dict(found[1].targets) == {"friend": (2.0, None)}


def test_flags_category_and_grouping_without_a_response_reference() -> None:
    prorated = to_point(
        obs(
            "ecr-r-anxiety",
            3.25,
            "2024-01-01",
            None,
            note="Prorated: mean of the 16 of 18 items answered (local convention)",
            status="preliminary",
        )
    )
    assert prorated is not None
    assert prorated.prorated is True
    assert prorated.status == "preliminary"
    assert prorated.submission == "at:2024-01-01"
    assert prorated.method == "ecr-r-subscale-means 1.0.0"
    category = to_point(obs("ecr-category", None, "2024-01-01", "e1", category="fearful"))
    assert category is not None
    assert (category.value, category.category) == (None, "fearful")


def test_a_duplicate_observation_of_the_same_submission_counts_once() -> None:
    twice = [ECR_R[4], {**ECR_R[4], "id": "o1-copy"}]
    assert [p.observation for p in points(twice)] == ["Observation/o1-copy"]


def test_fhir_partial_dates_parse_to_utc() -> None:
    assert parse_time("2024") == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert parse_time("2024-03") == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    assert parse_time("2024-03-10T10:00:00+01:00") == dt.datetime(2024, 3, 10, 9, tzinfo=dt.UTC)


def test_submissions_in_the_same_second_keep_the_order_the_server_stored_them() -> None:
    # Two submissions recorded in one second; "zz" was stored first, "aa" 40 ms later.
    stored_first = obs("ecr-rs-partner-anxiety", 3.0, "2024-06-05T10:00:00Z", "zz")
    stored_first["meta"] = {"lastUpdated": "2024-06-05T10:00:00.120Z"}
    stored_later = obs("ecr-rs-partner-anxiety", 4.0, "2024-06-05T10:00:00Z", "aa")
    stored_later["meta"] = {"lastUpdated": "2024-06-05T10:00:00.160Z"}
    found = points([stored_later, stored_first])
    assert [p.value for p in series(found)["ecr-rs-partner-anxiety"]] == [3.0, 4.0]
    assert [r.submission for r in relationship_scores(found)] == [
        "QuestionnaireResponse/zz",
        "QuestionnaireResponse/aa",
    ]


def gate(target: str, answer: bool | None) -> dict[str, Any]:
    """An ECR-RS target group as a QuestionnaireResponse holds it (gate answered or not)."""
    inner: dict[str, Any] = {"linkId": f"{target}.applies"}
    if answer is not None:
        inner["answer"] = [{"valueBoolean": answer}]
    return {"linkId": target, "item": [inner]}


def test_a_relationship_is_skipped_unless_its_gate_is_answered_yes() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "item": [gate("mother", True), gate("father", False), gate("partner", True)],
    }  # friend's gate left unanswered: the form leaves the item out
    assert skipped_targets(response) == {"father", "friend"}


def test_a_plain_day_is_itself_and_begins_at_local_midnight() -> None:
    """The app writes plan starts as its local day; an instant of that local day, from any
    zone, is on or after the start (the suite runs once more in UTC+14 and UTC-12)."""
    assert local_day("2026-12-05") == dt.date(2026, 12, 5)
    start = start_of("2026-12-05")
    assert start.tzinfo is not None and start.date() == dt.date(2026, 12, 5)
    assert (start.hour, start.minute) == (0, 0)
    one_minute_in = (start + dt.timedelta(minutes=1)).astimezone(dt.UTC)
    assert local_day(one_minute_in.isoformat()) == dt.date(2026, 12, 5)
    assert parse_time(one_minute_in.isoformat()) >= start


def test_an_instant_is_counted_on_the_local_day_and_garbage_on_none() -> None:
    instant = "2026-12-05T23:30:00Z"
    assert local_day(instant) == dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC).astimezone().date()
    assert start_of(instant) == dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC)
    assert local_day("not a date") is None
