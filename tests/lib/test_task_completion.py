"""Closing an assigning Task: what is written, and when nothing is (SDC sdc-task, FHIR Workflow).

The expected Tasks are written out by hand from the SDC profile: ``status`` completed, an
``output`` typed ``http://hl7.org/fhir/uv/sdc/CodeSystem/temp#questionnaire-response`` with a
``valueReference`` to the response, ``lastModified`` the time given; everything else untouched.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.assignments import task_questionnaires
from attach_fhir.task_completion import (
    CLOSED,
    DONE,
    REFUSED,
    UPDATE,
    Decision,
    assignment_problem,
    completed_task,
    completed_with,
    decide,
    is_for,
    is_open,
    local_reference,
    written_like,
)

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
WHEN = "2026-03-04T05:06:07Z"


def task(**changes: Any) -> dict[str, Any]:
    """An open SDC-style Task asking patient pt1 to complete the ECR-R."""
    base: dict[str, Any] = {
        "resourceType": "Task",
        "id": "t1",
        "meta": {"versionId": "7", "lastUpdated": "2026-03-01T00:00:00Z", "tag": [{"code": "x"}]},
        "status": "requested",
        "intent": "order",
        "for": {"reference": "Patient/pt1"},
        "authoredOn": "2026-03-01T09:30:00Z",
        "input": [
            {
                "type": {"text": "questionnaire"},
                "valueCanonical": f"{ECR_R}|1.0.0",
            }
        ],
        "note": [{"text": "Before our next session"}],
    }
    return base | changes


def test_an_open_task_is_completed_with_the_response_as_output() -> None:
    decision = decide(task(), "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN)
    assert decision.action == UPDATE and decision.version == "7"
    assert decision.task == {
        "resourceType": "Task",
        "id": "t1",
        "meta": {"tag": [{"code": "x"}]},  # server-kept version and date are not sent back
        "status": "completed",
        "intent": "order",
        "for": {"reference": "Patient/pt1"},
        "authoredOn": "2026-03-01T09:30:00Z",
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": f"{ECR_R}|1.0.0"}],
        "note": [{"text": "Before our next session"}],
        "lastModified": WHEN,
        "output": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                            "code": "questionnaire-response",
                            "display": "Questionnaire Response",
                        }
                    ]
                },
                "valueReference": {"reference": "QuestionnaireResponse/qr9"},
            }
        ],
    }


KIRITIMATI = dt.timezone(dt.timedelta(hours=14))
BAKER_ISLAND = dt.timezone(dt.timedelta(hours=-12))


@pytest.mark.parametrize(
    ("authored", "zone", "written"),
    [
        # 2026-12-05T14:14:52Z is already 6 December at UTC+14: a Task the EHR wrote that day
        # must not look modified the day before it was authored (R4 Task inv-1).
        ("2026-12-06", KIRITIMATI, "2026-12-06T04:14:52+14:00"),
        ("2026-12-05", BAKER_ISLAND, "2026-12-05T02:14:52-12:00"),
        ("2026-12", KIRITIMATI, "2026-12-06T04:14:52+14:00"),
        # An instant the EHR wrote with an offset gets that offset back, whatever our zone.
        ("2026-12-05T08:00:00Z", BAKER_ISLAND, "2026-12-05T14:14:52Z"),
        ("2026-12-05T08:00:00-05:00", KIRITIMATI, "2026-12-05T09:14:52-05:00"),
        ("2026-12-05T22:00:00+10:00", None, "2026-12-06T00:14:52+10:00"),
        # Nothing to follow: the instant as given.
        (None, KIRITIMATI, "2026-12-05T14:14:52Z"),
        ("yesterday", KIRITIMATI, "2026-12-05T14:14:52Z"),
        ("2026-12-05T08:00:00", KIRITIMATI, "2026-12-05T14:14:52Z"),
    ],
)
def test_last_modified_is_written_in_the_offset_of_authored_on(
    authored: object, zone: dt.tzinfo | None, written: str
) -> None:
    assert written_like(authored, "2026-12-05T14:14:52Z", zone) == written


def test_a_task_authored_as_a_local_day_is_closed_after_it_as_written() -> None:
    """Compared as text, as Medplum does, the new lastModified is not before authoredOn."""
    for day, zone in (("2026-12-06", KIRITIMATI), ("2026-12-05", BAKER_ISLAND)):
        closed = written_like(day, "2026-12-05T14:14:52Z", zone)
        assert closed >= day and dt.datetime.fromisoformat(closed) == dt.datetime(
            2026, 12, 5, 14, 14, 52, tzinfo=dt.UTC
        )


def test_building_leaves_the_task_read_unchanged() -> None:
    read = task()
    before = copy.deepcopy(read)
    completed_task(read, "QuestionnaireResponse/qr9", WHEN)
    assert read == before


def test_a_generated_narrative_is_dropped_and_a_written_one_kept() -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml">Task requested: complete the ECR-R</div>'
    generated = completed_task(
        task(text={"status": "generated", "div": div}), "QuestionnaireResponse/qr9", WHEN
    )
    assert "text" not in generated  # it would still describe a requested Task
    written = {"status": "additional", "div": div}
    kept = completed_task(task(text=written), "QuestionnaireResponse/qr9", WHEN)
    assert kept["text"] == written


def test_a_task_completed_with_this_response_is_left_alone() -> None:
    done = completed_task(task(), "QuestionnaireResponse/qr9", WHEN) | {"meta": {"versionId": "8"}}
    # The server may hand the reference back absolute or versioned: still the same response.
    absolute = copy.deepcopy(done)
    absolute["output"][0]["valueReference"]["reference"] = (
        "https://ehr.example/fhir/QuestionnaireResponse/qr9/_history/2"
    )
    for current in (done, absolute):
        assert decide(current, "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN) == (
            Decision(DONE)
        )
    assert completed_with(done, "QuestionnaireResponse/qr9")
    assert not completed_with(done, "QuestionnaireResponse/other")


def test_an_open_task_already_pointing_at_the_response_gets_no_second_output() -> None:
    half = completed_task(task(), "QuestionnaireResponse/qr9", WHEN) | {
        "status": "in-progress",
        "meta": {"versionId": "8"},
    }
    decision = decide(half, "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN)
    assert decision.action == UPDATE and decision.task is not None
    assert decision.task["status"] == "completed"
    assert len(decision.task["output"]) == 1


@pytest.mark.parametrize("status", ["completed", "cancelled", "rejected", "entered-in-error"])
def test_a_task_closed_by_someone_else_is_left_alone_and_said(status: str) -> None:
    decision = decide(task(status=status), "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN)
    assert decision == Decision(
        CLOSED, reason=f"The clinic's record already shows the task as {status}."
    )


def test_another_patients_or_another_questionnaires_task_is_refused() -> None:
    theirs = task(**{"for": {"reference": "Patient/pt2"}})
    assert decide(theirs, "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN) == Decision(
        REFUSED, reason="The task is not this patient's."
    )
    rq = "http://attach-fhir.org/fhir/Questionnaire/rq"
    assert assignment_problem(task(), "Patient/pt1", rq) == (
        "The task does not ask for this questionnaire."
    )
    assert assignment_problem(task(), "Patient/pt1", f"{ECR_R}|2.0.0") is None  # any version
    assert assignment_problem(task(**{"for": None}), "Patient/pt1", ECR_R) == (
        "The task is not this patient's."
    )


def test_a_task_without_a_version_is_not_written_blind() -> None:
    decision = decide(task(meta=None), "QuestionnaireResponse/qr9", "Patient/pt1", ECR_R, WHEN)
    assert decision.action == REFUSED
    assert decision.reason == (
        "The EHR did not give the task's version, so it cannot be updated safely."
    )


def test_local_reference() -> None:
    assert local_reference("QuestionnaireResponse/a") == "QuestionnaireResponse/a"
    assert local_reference("https://x.example/r4/Task/t1/_history/3") == "Task/t1"
    assert local_reference("Patient/pt1/_history/1") == "Patient/pt1"


def test_is_for_reads_the_tasks_for_reference_only() -> None:
    assert is_for(task(), "Patient/pt1")
    assert is_for(task(**{"for": {"reference": "https://x.example/r4/Patient/pt1"}}), "Patient/pt1")
    assert not is_for(task(), "Patient/pt2")
    for subject in (None, "Patient/pt1", {"display": "pt1"}, {"reference": 7}):
        assert not is_for(task(**{"for": subject}), "Patient/pt1")


def test_the_questionnaires_a_task_names() -> None:
    """R4 ``Task.instantiatesCanonical`` is one canonical; ``input`` may name more."""
    rq = "http://attach-fhir.org/fhir/Questionnaire/rq"
    assert task_questionnaires(task()) == [f"{ECR_R}|1.0.0"]
    assert task_questionnaires(task(input=None, instantiatesCanonical=rq)) == [rq]
    assert task_questionnaires(
        task(instantiatesCanonical=[rq, "http://x.example/PlanDefinition/p"])
    ) == [
        f"{ECR_R}|1.0.0",
        rq,
    ]
    assert task_questionnaires(task(input=["not an object", {"valueCanonical": 3}])) == []


def test_a_malformed_task_is_judged_without_raising() -> None:
    qr = "QuestionnaireResponse/qr9"
    # a status that is no string (a list cannot even be looked up in a set) is not open
    for status in (["requested"], {"x": 1}, None, 7):
        assert not is_open(task(status=status))
        assert decide(task(status=status), qr, "Patient/pt1", ECR_R, WHEN) == Decision(
            CLOSED, reason="The clinic's record already shows the task as unknown."
        )
    shouting = task(status="<b>cancelled</b>")
    assert decide(shouting, qr, "Patient/pt1", ECR_R, WHEN).reason == (
        "The clinic's record already shows the task as unknown."
    )
    # outputs, narrative and meta of the wrong shape: the Task still closes, built from the rest
    odd = task(output=True, text="generated", meta={"versionId": "7", "tag": "x"})
    decision = decide(odd, qr, "Patient/pt1", ECR_R, WHEN)
    assert decision.action == UPDATE and decision.task is not None
    assert decision.task["output"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp",
                        "code": "questionnaire-response",
                        "display": "Questionnaire Response",
                    }
                ]
            },
            "valueReference": {"reference": qr},
        }
    ]
    assert decision.task["text"] == "generated" and decision.task["meta"] == {"tag": "x"}
    assert not completed_with(task(status="completed", output=["x", {"valueReference": "y"}]), qr)
    assert task_questionnaires(task(input=True)) == []


@pytest.mark.parametrize("version", ['7"', "7\r\nX-Evil: 1", 7, {"v": 1}, "", "a" * 65])
def test_a_version_that_is_no_id_is_not_put_in_if_match(version: object) -> None:
    decision = decide(
        task(meta={"versionId": version}), "QuestionnaireResponse/q", "Patient/pt1", ECR_R, WHEN
    )
    assert decision.action == REFUSED and decision.task is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["reference", "valueReference", "status", "versionId", "text", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)
_FIELDS = ["status", "output", "meta", "text", "for", "input", "instantiatesCanonical"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELDS), _JSON))
def test_any_task_a_server_sends_is_decided_without_raising(changes: dict[str, Any]) -> None:
    decision = decide(task(**changes), "QuestionnaireResponse/q", "Patient/pt1", ECR_R, WHEN)
    if decision.action == UPDATE:  # written only for this patient's open assignment
        assert is_for(task(**changes), "Patient/pt1") and is_open(task(**changes))
        assert decision.version is not None and '"' not in decision.version
