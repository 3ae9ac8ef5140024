"""What changed in a care plan between two versions, in sentences a clinician reads (pure).

Used when a revision meets a 412/409: the version the clinician started from is compared with
the server's current one, so they see what someone else changed before deciding again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Goals = Mapping[str, Mapping[str, Any]]


def _goal_label(goal: Mapping[str, Any]) -> str:
    return str((goal.get("description") or {}).get("text") or "a goal")


def _target(goal: Mapping[str, Any]) -> str:
    items = goal.get("target") or [{}]
    item = items[0]
    if "detailQuantity" in item:
        quantity = item["detailQuantity"]
        return f"{quantity.get('comparator', '')}{quantity.get('value')}"
    if "detailRange" in item:
        low = item["detailRange"].get("low", {}).get("value")
        high = item["detailRange"].get("high", {}).get("value")
        return f"{low}\u2013{high}"
    return "none"


def _achievement(goal: Mapping[str, Any]) -> str:
    codings = (goal.get("achievementStatus") or {}).get("coding") or [{}]
    return str(codings[0].get("code") or "none")


def _goal_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    label = _goal_label(before)
    out = []
    if _goal_label(after) != label:
        out.append(f"Goal \u201c{label}\u201d was reworded: \u201c{_goal_label(after)}\u201d.")
    fields = (
        ("target", _target),
        ("due date", lambda g: str((g.get("target") or [{}])[0].get("dueDate", "none"))),
        ("status", lambda g: str(g.get("lifecycleStatus", "none"))),
        ("achievement", _achievement),
    )
    for name, read in fields:
        old, new = read(before), read(after)
        if old != new:
            out.append(f"Goal \u201c{label}\u201d: {name} changed from {old} to {new}.")
    outcomes = len(after.get("outcomeReference") or []) - len(before.get("outcomeReference") or [])
    if outcomes > 0:
        out.append(f"Goal \u201c{label}\u201d: {outcomes} new result(s) linked.")
    return out


def _activity_key(activity: Mapping[str, Any]) -> str:
    detail = activity.get("detail") or {}
    codings = (detail.get("code") or {}).get("coding") or [{}]
    return str(codings[0].get("code") or detail.get("description") or "")


def _activity_label(activity: Mapping[str, Any]) -> str:
    detail = activity.get("detail") or {}
    return str((detail.get("code") or {}).get("text") or _activity_key(activity) or "an activity")


def _activity_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    label = _activity_label(before)
    old, new = before.get("detail") or {}, after.get("detail") or {}
    out = []
    if old.get("description") != new.get("description"):
        text = new.get("description")
        out.append(f"Activity \u201c{label}\u201d was reworded: \u201c{text}\u201d.")
    if old.get("status") != new.get("status"):
        out.append(
            f"Activity \u201c{label}\u201d: status changed from {old.get('status')} to "
            f"{new.get('status')}."
        )
    if old.get("scheduledTiming") != new.get("scheduledTiming"):
        out.append(f"Activity \u201c{label}\u201d: its schedule changed.")
    return out


def plan_changes(
    base_plan: Mapping[str, Any],
    base_goals: Goals,
    server_plan: Mapping[str, Any],
    server_goals: Goals,
) -> list[str]:
    """Every difference from ``base`` to ``server``, one sentence each (empty: none seen)."""
    out = []
    for key, name in (("status", "status"), ("title", "title"), ("description", "description")):
        if base_plan.get(key) != server_plan.get(key):
            out.append(
                f"The plan's {name} changed from {base_plan.get(key)} to {server_plan.get(key)}."
            )
    if base_plan.get("period") != server_plan.get("period"):
        out.append(
            f"The plan's period changed to {server_plan.get('period', {}).get('start')} \u2013 "
            f"{server_plan.get('period', {}).get('end')}."
        )
    base_refs = [g.get("reference") for g in base_plan.get("goal") or []]
    server_refs = [g.get("reference") for g in server_plan.get("goal") or []]
    for ref in server_refs:
        if ref not in base_refs:
            goal = server_goals.get(str(ref), {})
            out.append(f"Goal \u201c{_goal_label(goal)}\u201d was added.")
    for ref in base_refs:
        goal = base_goals.get(str(ref), {})
        if ref not in server_refs:
            out.append(f"Goal \u201c{_goal_label(goal)}\u201d was removed from the plan.")
        elif str(ref) in server_goals:
            out.extend(_goal_changes(goal, server_goals[str(ref)]))
    before = {_activity_key(a): a for a in base_plan.get("activity") or []}
    after = {_activity_key(a): a for a in server_plan.get("activity") or []}
    for key, activity in after.items():
        if key not in before:
            out.append(f"Activity \u201c{_activity_label(activity)}\u201d was added.")
    for key, activity in before.items():
        if key not in after:
            out.append(f"Activity \u201c{_activity_label(activity)}\u201d was removed.")
        else:
            out.extend(_activity_changes(activity, after[key]))
    return out
