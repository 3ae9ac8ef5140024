"""What follows a delivered submission when the background worker delivered it.

A submission delivered at once is followed up by the submit request itself (the care plan's
goals judged, the assigning Task closed: :mod:`smart_app.records.goal_updates`,
:mod:`smart_app.records.task_updates`). One left waiting (the server was down) is delivered later
by the
worker, when nobody may open a page again; so after each drain the worker runs the same
follow-ups for what it delivered, with the launch whose token delivered it (the user's live
launch for that patient, as :func:`smart_app.records.delivery.live_launch` finds it). Without one,
or
where that launch is no longer this submission's user and patient, the follow-ups wait for the
next page that shows the submission, as before. Both are idempotent: the Task is closed under a
per-submission lock and left alone once completed with this response; the goal update has one
outbox id per submission and writes with ``If-Match``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from attach_fhir.errors import AttachError
from smart_app.records import delivery, goal_updates, task_updates
from smart_app.records.submission import SUBMISSION_NS, status
from smart_app.web.services import get_services

log = logging.getLogger(__name__)


def after_delivery(delivered: Iterable[str]) -> None:
    """Run the follow-ups of the delivered submissions that still lack them (in an app context).

    A failure is logged by its code and never raised: the worker goes on draining.
    """
    for sid in delivered:
        try:
            outcome = _follow_up(sid)
        except AttachError as exc:
            outcome = exc.code
        except Exception as exc:  # the worker must survive; the type is logged, no data
            outcome = f"error:{type(exc).__name__}"
        if outcome:
            log.info("outbox.follow_up outcome=%s", outcome)


def _follow_up(sid: str) -> str | None:
    """Follow one delivered submission up; what happened, as a code (None: nothing to do)."""
    record = get_services().store.get(SUBMISSION_NS, sid)
    if record is None or not _pending(record):
        return None  # not an assess submission (a care-plan change), or already followed up
    item = delivery.assess_services().outbox.store.get(sid)
    launch = delivery.live_launch(item.target) if item is not None else None
    found = status(launch, sid) if launch is not None else None
    if launch is None or found is None:  # no live launch of its user and patient: next page
        return "no_launch"
    goals = goal_updates.judge_after_delivery(launch, found)
    task = task_updates.complete_after_delivery(launch, found)
    return f"goals={_state(goals)} task={_state(task)}"


def _pending(record: dict[str, Any]) -> bool:
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
