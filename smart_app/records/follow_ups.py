"""The one hook that follows up a delivered submission: the care plan's goals, the Task.

Runs wherever a delivery happens (the submit request, the worker, ``attach-fhir outbox drain``,
or the "Update the record now" button); see docs/architecture.md and docs/outbox.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from attach_fhir.errors import AttachError
from smart_app.records import delivery, goal_updates, task_updates
from smart_app.records.submission import SUBMISSION_NS, status
from smart_app.web.context import LaunchContext
from smart_app.web.services import get_services

log = logging.getLogger(__name__)


def after_delivery(delivered: Iterable[str], launch: LaunchContext | None = None) -> None:
    """Run the follow-ups of the delivered submissions that still lack them (in an app context),
    with ``launch`` (the request's) or else the live launch whose token delivered each one.

    Both follow-ups are idempotent: the Task is closed under a per-submission lock and left
    alone once completed with this response; the goal update has one outbox id per submission
    and writes with ``If-Match``. A failure is logged by its code and never raised.
    """
    for sid in delivered:
        try:
            outcome = _follow_up(sid, launch)
        except AttachError as exc:
            outcome = exc.code
        except Exception as exc:  # the worker must survive; the type is logged, no data
            outcome = f"error:{type(exc).__name__}"
        if outcome:
            log.info("outbox.follow_up outcome=%s", outcome)


def _follow_up(sid: str, launch: LaunchContext | None) -> str | None:
    """Follow one delivered submission up; what happened, as a code (None: nothing to do)."""
    record = get_services().store.get(SUBMISSION_NS, sid)
    if record is None or not pending(record):
        return None  # not an assess submission (a care-plan change), or already followed up
    if launch is None:
        item = delivery.outbox_services().outbox.store.get(sid)
        launch = delivery.live_launch(item.target) if item is not None else None
    found = status(launch, sid) if launch is not None else None
    if launch is None or found is None:  # no live launch of its user and patient: the button
        return "no_launch"
    if found.state != "delivered":
        return None
    goals = goal_updates.judge_after_delivery(launch, found)
    task = task_updates.complete_after_delivery(launch, found)
    return f"goals={_state(goals)} task={_state(task)}"


def pending(record: dict[str, Any]) -> bool:
    """Whether a follow-up is still to be tried: the goals of a clinician's final scores not
    judged yet, or an assigning Task not closed yet."""
    goals = record.get("observation_status") == "final" and "goals" not in record
    outcome = record.get("task_outcome")
    task = bool(record.get("assignment")) and (
        outcome is None or outcome.get("state") == task_updates.WAITING
    )
    return goals or task


def _state(outcome: dict[str, Any] | None) -> str:
    return str(outcome.get("state")) if outcome else "none"
