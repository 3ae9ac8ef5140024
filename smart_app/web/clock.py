"""The app's clock: the current instant as a FHIR dateTime (docs/architecture.md)."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    """The current instant as a FHIR dateTime (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
