"""The outcomes report's figures on a small population whose every value is worked out by hand.

Patients A-E have ECR anxiety score Observations (first -> latest): A 4 -> 3, B 5 -> 4.5,
C 3 -> 3.5, D 6 -> 5 -> 4, E 2 -> 2; F has one. Changes -1, -0.5, +0.5, -2, 0: mean -0.6,
sample variance 3.70 / 4 = 0.925, standard error sqrt(0.925 / 5) = 0.430116, and t(0.975, 4) =
2.7764 from a printed t table, so the 95% interval is -0.6 +- 1.19417. Patient G has two ECR-R
QuestionnaireResponses and no Observation: the report scores them (the hand-computed examples:
anxiety 67/18, then 114/18).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
from typing import Any

import pytest

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.history import local_day
from attach_fhir.instruments import library
from attach_fhir.outcomes import (
    collect,
    instrument_of,
)
from attach_fhir.outcomes_report import Report, report_of, rows, to_csv, to_html
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import from_answers

Json = dict[str, Any]
ECR = "http://attach-fhir.org/fhir/Questionnaire/ecr"
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
AS_OF = dt.date(2026, 4, 1)
ECR_ANXIETY = {
    "A": [("2026-01-10", 4.0), ("2026-03-10", 3.0)],
    "B": [("2026-01-10", 5.0), ("2026-03-10", 4.5)],
    "C": [("2026-01-12", 3.0), ("2026-03-12", 3.5)],
    "D": [("2026-01-10", 6.0), ("2026-03-01", 5.0), ("2026-05-10", 4.0)],
    "E": [("2026-01-15", 2.0), ("2026-02-15", 2.0)],
    "F": [("2026-01-20", 4.0)],
}


def observation(patient: str, n: int, day: str, value: float, code: str = "ecr-anxiety") -> Json:
    return {
        "resourceType": "Observation",
        "id": f"{patient.lower()}{n}-{code}",
        "status": "final",
        "code": {"coding": [{"system": SCORES_SYSTEM, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"{day}T10:00:00Z",
        "valueQuantity": {"value": value},
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{patient.lower()}{n}"}],
    }


def g_response(rid: str, day: str, example: str) -> Json:
    ecr_r = library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/ecr-r")
    answers = next(e for e in EXAMPLES if e.name == example).answers
    return from_answers(ecr_r, answers) | {
        "id": rid,
        "subject": {"reference": "Patient/G"},
        "authored": f"{day}T09:00:00Z",
    }


def goal(patient: str, lifecycle: str, achievement: str | None, outcome: str | None = None) -> Json:
    resource: Json = {
        "resourceType": "Goal",
        "lifecycleStatus": lifecycle,
        "subject": {"reference": f"Patient/{patient}"},
    }
    if achievement:
        resource["achievementStatus"] = {"coding": [{"system": ACHIEVEMENT, "code": achievement}]}
    if outcome:
        resource["outcomeReference"] = [{"reference": outcome}]
    return resource


def plan(patient: str, period: int, unit: str) -> Json:
    """A plan written on the (local) day of the patient's first assessment, as the app does."""
    start = local_day(f"{ECR_ANXIETY[patient][0][0]}T10:00:00Z")
    assert start is not None
    repeat = {
        "boundsPeriod": {"start": start.isoformat()},
        "frequency": 1,
        "period": period,
        "periodUnit": unit,
    }
    detail = {"instantiatesCanonical": [f"{ECR}|1.1.0"], "scheduledTiming": {"repeat": repeat}}
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "subject": {"reference": f"Patient/{patient}"},
        "activity": [{"detail": detail}, {"detail": {"description": "journaling"}}],
    }


def population() -> list[object]:
    out: list[object] = [
        observation(p, n, day, value)
        for p, points in ECR_ANXIETY.items()
        for n, (day, value) in enumerate(points, start=1)
    ]
    out += [
        g_response("g1", "2026-01-05", "ecr-r cycling 1..7, item 11 = 7"),
        g_response("g2", "2026-02-05", "ecr-r all 7"),
        {"resourceType": "QuestionnaireResponse", "id": "x", "status": "in-progress"},
        {"resourceType": "Patient", "id": "A"},
        "not a resource",
        goal("D", "active", "achieved", "Observation/d3-ecr-anxiety"),
        goal("A", "active", "improving", "Observation/a2-ecr-anxiety"),
        goal("B", "active", None),
        goal("C", "proposed", None),
        goal("E", "completed", None),
        # Plans start on the local day of the first assessment. A: due 01-10 + 60 days = 03-11,
        # re-assessed 03-10: on time.
        plan("A", 2, "mo"),
        # B: due 01-10 + 30 = 02-09, re-assessed only 03-10: late.
        plan("B", 1, "mo"),
        # C: due 01-12 + 91 = 04-13, after the report date: not counted.
        plan("C", 13, "wk"),
    ]
    return out


@pytest.fixture(scope="module")
def report() -> Report:
    return report_of(collect(population(), library()), instrument_of(library()), AS_OF, False)


def test_first_and_latest_per_patient_including_responses_scored_here(report: Report) -> None:
    by = {(r.patient, r.code): r for r in report.rows}
    d = by[("Patient/D", "ecr-anxiety")]
    assert (d.first.value, d.latest.value, d.assessments, d.change) == (6.0, 4.0, 3, -2.0)
    assert by[("Patient/F", "ecr-anxiety")].change is None
    g = by[("Patient/G", "ecr-r-anxiety")]
    assert g.first.value == pytest.approx(67 / 18) and g.latest.value == pytest.approx(114 / 18)
    assert g.change == pytest.approx(47 / 18)
    assert g.first.submission == "QuestionnaireResponse/g1"


def test_mean_change_and_its_t_interval(report: Report) -> None:
    (ecr,) = [m for m in report.means if m.code == "ecr-anxiety"]
    assert ecr.n == 5
    assert ecr.mean_first == pytest.approx(4.0) and ecr.mean_latest == pytest.approx(3.4)
    assert ecr.mean == pytest.approx(-0.6)
    half = 2.7764 * 0.430116
    assert ecr.low == pytest.approx(-0.6 - half, abs=1e-4)
    assert ecr.high == pytest.approx(-0.6 + half, abs=1e-4)
    (g,) = [m for m in report.means if m.code == "ecr-r-anxiety"]
    assert g.n == 1 and g.low is None


def test_patients_assessed_by_instrument(report: Report) -> None:
    titles = {i.id: i.title for i in library().instruments()}
    assert report.assessed == {titles["ecr"]: 6, titles["ecr-r"]: 1}


def test_goals_schedule_and_time_to_goal(report: Report) -> None:
    assert report.goals == {
        "active": 3,
        "achieved": 2,  # D by its status, E by lifecycle completed
        "improving": 1,
        "worsening": 0,
        "no change": 0,
        "not yet judged": 1,
    }
    assert (report.schedule.due, report.schedule.on_time) == (2, 1)
    assert report.days_to_goal == [120]  # D: 2026-01-10 -> 2026-05-10


def test_what_was_left_aside_is_counted(report: Report) -> None:
    assert report.problems == {
        "QuestionnaireResponse not completed": 1,
        "not a resource": 1,
    }


def test_de_identified_rows_carry_pseudonyms_only(report: Report) -> None:
    key = b"k" * 32
    table = rows(report, lambda p: hmac.new(key, p.encode(), hashlib.sha256).hexdigest()[:16])
    text = to_csv(table)
    assert "Patient/" not in text
    parsed = list(csv.DictReader(io.StringIO(text)))
    a_id = hmac.new(key, b"Patient/A", hashlib.sha256).hexdigest()[:16]
    (a,) = [r for r in parsed if r["patient"] == a_id]
    assert (a["first_date"], a["first_value"], a["latest_value"], a["change"]) == (
        "2026-01-10",
        "4.0",
        "3.0",
        "-1.0",
    )


def test_the_page_rounds_suppresses_and_names_no_patient(report: Report) -> None:
    page = to_html(report)
    assert "Patient/" not in page
    assert "-0.60" in page  # the mean change, rounded for reading
    assert f"{-0.6 - 2.7764 * 0.430116:.2f} to {-0.6 + 2.7764 * 0.430116:.2f}" in page
    assert "fewer than 5" in page  # e.g. 3 active goals
    assert "Fewer than 5 patients: not shown." in page  # ECR-R: one patient
    assert "No cut-off, norm or reliable-change rule is applied" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3", "")
