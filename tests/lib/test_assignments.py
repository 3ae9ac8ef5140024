"""Assignments read from the EHR's Tasks and care plans: what counts, and that a malformed
resource (a member of the wrong JSON type) is treated as absent instead of failing the page."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from attach_fhir.assignments import (
    Assignment,
    assignments,
    from_careplans,
    from_tasks,
    journal_activity,
    last_done,
    plan_activities,
)

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0"

TASK = {
    "resourceType": "Task",
    "id": "t1",
    "status": "requested",
    "intent": "order",
    "description": "Before our next session",
    "authoredOn": "2026-11-01",
    "restriction": {"period": {"end": "2026-11-20"}},
    "input": [{"type": {"text": "questionnaire"}, "valueCanonical": ECR_R}],
}
PLAN = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "status": "active",
    "period": {"start": "2026-10-01"},
    "activity": [
        {
            "detail": {
                "status": "scheduled",
                "code": {"text": "Re-assessment", "coding": [{"system": "s", "code": "reassess"}]},
                "instantiatesCanonical": [ECR_R],
            }
        }
    ],
}


def test_an_open_task_naming_a_questionnaire_is_an_assignment() -> None:
    expected = Assignment(ECR_R, "Task/t1", "Before our next session", "2026-11-20", "2026-11-01")
    assert from_tasks([TASK]) == [expected]
    assert from_tasks([TASK | {"status": "completed"}]) == []
    assert assignments([TASK], [PLAN]) == [expected]  # Tasks first, the plan only without them


def test_without_tasks_the_plans_open_reassessment_is_the_assignment() -> None:
    assert assignments([], [PLAN]) == [
        Assignment(ECR_R, "CarePlan/cp1", "Re-assessment", None, "2026-10-01")
    ]
    done = PLAN | {
        "activity": [{"detail": PLAN["activity"][0]["detail"] | {"status": "completed"}}]
    }
    assert from_careplans([done]) == []


def test_members_of_the_wrong_type_are_absent_not_errors() -> None:
    odd_task = TASK | {
        "status": ["requested"],  # a list where a code belongs: not open
    }
    assert from_tasks([odd_task]) == []
    shapeless = TASK | {"restriction": "soon", "code": [], "description": 7, "authoredOn": 1}
    assert from_tasks([shapeless]) == [Assignment(ECR_R, "Task/t1", "Assessment", None, None)]
    plan = PLAN | {"activity": ["x", {"detail": "y"}, {"detail": {"code": "z"}}], "period": 3}
    assert from_careplans([plan]) == []
    assert [a.title for a in plan_activities([plan])] == ["Activity", "Activity", "Activity"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "id",
        "status",
        "input",
        "instantiatesCanonical",
        "restriction",
        "code",
        "description",
        "authoredOn",
        "activity",
        "period",
    ]
)


@given(
    tasks=st.lists(st.dictionaries(KEYS, JSON, max_size=6), max_size=3),
    plans=st.lists(st.dictionaries(KEYS, JSON, max_size=6), max_size=3),
)
def test_whatever_shape_the_ehr_sends_nothing_raises(
    tasks: list[dict[str, Any]], plans: list[dict[str, Any]]
) -> None:
    found = assignments(tasks, plans)
    for assignment in found:
        assert isinstance(assignment.questionnaire, str) and isinstance(assignment.title, str)
        assert assignment.due is None or isinstance(assignment.due, str)
        last_done(assignment, [{"status": "completed", "questionnaire": 5, "authored": None}])
    for activity in plan_activities(plans):
        assert all(isinstance(v, str) for v in activity.coding.values())
    journal_activity(plans)
