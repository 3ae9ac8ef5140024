"""Where a submission's answers went, in words that match the outbox: "Saved to the record
(QuestionnaireResponse and 2 score Observations) at 10:42 on 5 Dec 2026" or "Saved here,
waiting to reach the record". Times are in the app's time zone (the process's, ``TZ``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from attach_fhir.io.outbox_store import DELIVERED, FAILED, OutboxItem
from attach_fhir.plan_version import day_text

#: The resources a clinician is told about, in this order; Provenance is bookkeeping.
_NAMED = ("QuestionnaireResponse", "Observation", "DocumentReference")


@dataclass(frozen=True)
class Receipt:
    """One sentence for the page and the outbox state it says (``data-state``)."""

    state: str
    text: str


def _count(n: int, one: str, many: str) -> str:
    return one if n == 1 else f"{n} {many}"


def written_words(written: Mapping[str, str]) -> str:
    """``QuestionnaireResponse and 2 score Observations`` from a receipt's ``Type/id`` values."""
    kinds = Counter(ref.split("/", 1)[0] for ref in written.values())
    parts = []
    if kinds["QuestionnaireResponse"]:
        parts.append(_count(kinds["QuestionnaireResponse"], "QuestionnaireResponse", "responses"))
    if kinds["Observation"]:
        parts.append(_count(kinds["Observation"], "1 score Observation", "score Observations"))
    if kinds["DocumentReference"]:
        parts.append(_count(kinds["DocumentReference"], "a PDF summary", "PDF summaries"))
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def moment_text(epoch: float, zone: dt.tzinfo | None) -> str:
    """``10:42 on 5 Dec 2026``: the instant in ``zone`` (the process's zone when None)."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone(zone)
    return f"{moment:%H:%M} on {day_text(moment.date())}"


def describe(
    item: OutboxItem | None, zone: dt.tzinfo | None = None, *, patient: bool = False
) -> Receipt:
    """What became of the submission ``item`` says, as one sentence (a patient's own launch: in
    their words, naming no resource types)."""
    if patient:
        return _for_patient(item, zone)
    if item is None:
        return Receipt("kept", "Kept here: this EHR does not accept the results.")
    if item.status == DELIVERED:
        what = written_words(item.receipt or {})
        where = f"Saved to the record ({what})" if what else "Saved to the record"
        return Receipt("delivered", f"{where} at {moment_text(item.updated_at, zone)}.")
    if item.status == FAILED:
        return Receipt("failed", "Not saved to the record: the EHR refused it.")
    return Receipt("waiting", "Saved here, waiting to reach the record.")


def _for_patient(item: OutboxItem | None, zone: dt.tzinfo | None) -> Receipt:
    if item is None:
        return Receipt("kept", "Your answers were not sent to your clinic's record.")
    if item.status == DELIVERED:
        when = moment_text(item.updated_at, zone)
        return Receipt("delivered", f"Your answers are in your clinic's record (sent at {when}).")
    if item.status == FAILED:
        return Receipt("failed", "Your answers were not saved in your clinic's record.")
    return Receipt(
        "waiting",
        "Your answers are kept safely and will be sent to your clinic's record automatically.",
    )
