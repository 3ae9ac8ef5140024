"""A care plan's version as a clinician reads it: "version 3, updated 5 Dec 2026".

The server's ``meta.versionId`` is an opaque id (often a UUID); the number is the count of
versions in the plan's history, and the day is ``meta.lastUpdated`` in the app's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_text(day: dt.date) -> str:
    """``5 Dec 2026``: no leading zero, the month abbreviated in English."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def updated_day(last_updated: object, zone: dt.tzinfo | None = None) -> dt.date | None:
    """The day of an instant (``meta.lastUpdated``) in ``zone`` (the process's zone if None)."""
    if not isinstance(last_updated, str) or not last_updated:
        return None
    try:
        moment = dt.datetime.fromisoformat(last_updated.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(zone).date()


def plan_version(
    careplan: Mapping[str, Any], versions: int | None, zone: dt.tzinfo | None = None
) -> str:
    """``version 3, updated 5 Dec 2026``; either part left out when the record lacks it."""
    meta = careplan.get("meta") or {}
    day = updated_day(meta.get("lastUpdated"), zone)
    parts = []
    if versions is not None and versions > 0:
        parts.append(f"version {versions}")
    if day is not None:
        parts.append(f"updated {day_text(day)}")
    return ", ".join(parts)
