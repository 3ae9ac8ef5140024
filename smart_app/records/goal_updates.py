"""Goal judgement after a clinician's delivered assessment: the care plan follows its scores.

Once a submission is delivered (the outbox receipt names each score Observation on the server),
every ``active`` Goal of the patient's active CarePlan that is measured by one of the new scores
gets its ``achievementStatus`` and an ``outcomeReference`` to the new Observation: the same
builder (``careplan_writeback.reassessment_transaction``) and write path
(``careplan_delivery.send``, ``If-Match``, one transaction) as the manual "Judge the goals"
button, which stays as the fallback. A patient's own (``preliminary``) scores never judge goals.

The outcome is kept on the submission record (``goals``) so it is tried once per submission and
the pages can say what happened: ``updated``, ``none`` (no goal measured by these scores, or
already judged on them), ``waiting`` or ``not-updated`` with the reason. A failure never undoes
the submission: it counts as delivered.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from attach_fhir.careplan_writeback import ObservedScore, reassessment_transaction
from attach_fhir.errors import AttachError
from attach_fhir.io.outbox_store import DELIVERED, FAILED
from attach_fhir.writeback import identifier_value
from smart_app.records import careplan_delivery as writes
from smart_app.records import careplan_records as records
from smart_app.records.submission import Status, record_outcome, relative
from smart_app.web.context import LaunchContext

log = logging.getLogger(__name__)

UPDATED = "updated"
NONE = "none"
WAITING = "waiting"
NOT_UPDATED = "not-updated"
#: Namespace of the goal-update outbox ids: one per submission, so a retry is the same item.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "http://attach-fhir.org/goal-updates")


def new_scores(found: Status) -> dict[str, ObservedScore]:
    """The delivered submission's final numeric scores, by code, as Observations on the server."""
    record = found.record
    receipt = (found.item.receipt if found.item else None) or {}
    if record.get("observation_status") != "final":  # a patient's own, or not recorded
        return {}
    out = {}
    for code, score in ((record.get("scores") or {}).get("scores") or {}).items():
        value = score.get("value")
        reference = receipt.get(f"urn:uuid:{identifier_value(found.submission_id, code)}")
        if isinstance(value, int | float) and not isinstance(value, bool) and reference:
            out[code] = ObservedScore(reference, float(value), str(record.get("authored", "")))
    return out


def judge_after_delivery(launch: LaunchContext, found: Status) -> dict[str, Any] | None:
    """Judge the plan's goals on a delivered submission's scores, once; the outcome recorded
    (``none`` where there is nothing to judge, so it is not tried again).

    None when there is nothing to do (not delivered, not a clinician's final scores).
    """
    if found.state != "delivered" or "goals" in found.record:
        return found.record.get("goals")
    if found.record.get("observation_status") != "final":
        return None  # a patient's own scores judge no goal
    scores = new_scores(found)
    user = relative(launch.iss, launch.fhir_user) if launch.fhir_user else ""
    # Without care-plan reads the app sees no plan it could follow.
    sees_plans = launch.can("CarePlan", "s") and launch.can("Goal", "r")
    if scores and user.startswith("Practitioner") and _careplan_enabled() and sees_plans:
        outcome = _judge(launch, found.submission_id, scores, user)
        log.info("goals.autoupdate outcome=%s", outcome["state"])
    else:
        outcome = {"state": NONE}
    record_outcome(launch, found, "goals", outcome)
    return outcome


def _careplan_enabled() -> bool:
    return writes.enabled()


def _judge(
    launch: LaunchContext, sid: str, scores: dict[str, ObservedScore], clinician: str
) -> dict[str, Any]:
    try:
        client = launch.fhir()
        found = records.active_plan(client, str(launch.patient_id))
        if found is None:
            return {"state": NONE}
        ctx = writes.context(launch, records.plan_identifier(found.careplan), clinician)
        goals = found.goals.values()
        bundle = reassessment_transaction(goals, scores, ctx, writes.rules().reliable_change)
        if bundle is None:
            return {"state": NONE}
        item = writes.send(launch, str(uuid.uuid5(_NAMESPACE, sid)), bundle, "update")
    except AttachError as exc:
        return {"state": NOT_UPDATED, "reason": exc.description, "code": exc.code}
    except ValueError:  # a Goal read without meta.versionId: no safe If-Match
        reason = "The EHR did not give the goals' versions, so they cannot be updated safely."
        return {"state": NOT_UPDATED, "reason": reason, "code": "no_version"}
    if item.status == DELIVERED:
        changed = [e["request"]["url"] for e in bundle["entry"] if "ifMatch" in e["request"]]
        return {"state": UPDATED, "goals": changed, "sid": item.submission_id}
    if item.status == FAILED:
        reason = item.last_error or "The EHR refused the change."
        return {"state": NOT_UPDATED, "reason": reason, "code": item.last_error_code or ""}
    return {"state": WAITING, "sid": item.submission_id}
