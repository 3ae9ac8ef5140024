"""Which delivered scores may judge care-plan goals: a clinician's final ones, never a patient's.

The Observation reference comes from the outbox receipt under the fullUrl the write-back gave
the score (``urn:uuid:`` + uuid5 of ``<submission>/<score code>``), computed here independently.
"""

from __future__ import annotations

import uuid
from typing import Any

from attach_fhir.careplan_writeback import ObservedScore
from attach_fhir.io.outbox_store import DELIVERED, OutboxItem
from smart_app.records.goal_updates import new_scores
from smart_app.records.submission import Status

SID = "0f4c2b8e-1111-4222-8333-944445555666"
SUBMISSIONS = uuid.uuid5(uuid.NAMESPACE_URL, "http://attach-fhir.org/fhir/identifier/submission")


def _status(observation_status: str | None) -> Status:
    anxiety = f"urn:uuid:{uuid.uuid5(SUBMISSIONS, f'{SID}/ecr-r-anxiety')}"
    item = OutboxItem(
        1, SID, "t", None, DELIVERED, 1, 0.0, None, 0.0, 0.0, None, None,
        {anxiety: "Observation/a1"},
    )  # fmt: skip
    record: dict[str, Any] = {
        "scores": {"scores": {"ecr-r-anxiety": {"value": 5.0}, "ecr-r-avoidance": {"value": 2}}},
        "authored": "2026-01-02T03:04:05Z",
    }
    if observation_status is not None:
        record["observation_status"] = observation_status
    return Status(SID, record, item)


def test_a_clinicians_final_scores_are_the_observations_the_receipt_names() -> None:
    # avoidance has no receipt entry (not written): it cannot be an outcome.
    assert new_scores(_status("final")) == {
        "ecr-r-anxiety": ObservedScore("Observation/a1", 5.0, "2026-01-02T03:04:05Z")
    }


def test_a_patients_preliminary_scores_judge_no_goal() -> None:
    assert new_scores(_status("preliminary")) == {}


def test_a_record_that_does_not_say_who_scored_judges_no_goal() -> None:
    assert new_scores(_status(None)) == {}
