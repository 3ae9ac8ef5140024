"""Submit: score, build the write-back, hand it to the outbox; and what became of a submission.

A submission id is generated once per form (a hidden field), so a double click, a browser retry
or a resubmitted page hands the outbox the same id: the outbox stores it once, and every resource
carries identifiers derived from it, created conditionally, so nothing is written twice.

The completed QuestionnaireResponse is written as a conditional *update* on its identifier (in a
transaction, or as the first of the ordered writes where the server has none): the same
identifier the draft carries, so submitting completes the draft resource instead of leaving it
in progress beside a new one, and a retry still writes nothing new. Where the EHR takes no
answers or scores as data but takes documents, the submission is a DocumentReference holding the
PDF summary (:mod:`smart_app.records.response_summaries`), with the same identifier scheme.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app

from attach_fhir.io.outbox import Mode
from attach_fhir.io.outbox_store import DELIVERED, FAILED, OutboxItem
from attach_fhir.scoring import ScoreResult, score_response
from attach_fhir.writeback import (
    SUBMISSION_SYSTEM,
    WritebackContext,
    build_transaction,
    identifier_value,
)
from smart_app.forms.questionnaire_source import Resolved, registration_option
from smart_app.records import response_summaries
from smart_app.records.delivery import credential_key, outbox_services, send
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext
from smart_app.web.server_profile import WritePlan

log = logging.getLogger(__name__)

SUBMISSION_NS = "assess-submission"
KEPT = "kept"  # not written: keep-and-export
QR = "QuestionnaireResponse"
DOCUMENT = "DocumentReference"
#: The submission id a form's hidden field must carry (the pages hand out UUIDs).
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9-]{16,64}$")


@dataclass(frozen=True)
class People:
    """References for the write-back: author (fhirUser), respondent, patient, encounter."""

    patient: str
    author: str
    source: str
    encounter: str | None


def people(launch: LaunchContext, caregiver: str | None = None) -> People:
    """Author = fhirUser (relative when on this server); source = the respondent."""
    patient = f"Patient/{launch.patient_id}"
    author = relative(launch.iss, launch.fhir_user) if launch.fhir_user else patient
    if caregiver:
        source = caregiver
    elif author.split("/")[0] in ("Patient", "RelatedPerson"):
        source = author  # a patient or a caregiver filled it in themselves
    else:
        source = patient
    encounter = f"Encounter/{launch.encounter_id}" if launch.encounter_id else None
    return People(patient, author, source, encounter)


def patient_submitted(launch: LaunchContext, who: People) -> bool:
    """True for a patient's standalone launch or an author who is the patient or a caregiver."""
    return launch.record.get("kind") == "patient" or who.author.split("/")[0] in (
        "Patient",
        "RelatedPerson",
    )


def relative(base: str, reference: str) -> str:
    """``Type/id`` for an absolute reference under ``base``; other references unchanged."""
    prefix = base.rstrip("/") + "/"
    return reference[len(prefix) :] if reference.startswith(prefix) else reference


def complete_draft(bundle: dict[str, Any]) -> dict[str, Any]:
    """The QR entry as a conditional update on its identifier (completes a draft in place)."""
    first = bundle["entry"][0]
    value = first["resource"]["identifier"]["value"]
    first["request"] = {"method": "PUT", "url": f"{QR}?identifier={SUBMISSION_SYSTEM}|{value}"}
    return bundle


def score(resolved: Resolved, response: Mapping[str, Any]) -> ScoreResult:
    """Score with the packaged (verified) scoring model; InvalidResponse lists every problem."""
    return score_response(resolved.packaged, response)


def submit(
    launch: LaunchContext,
    resolved: Resolved,
    response: Mapping[str, Any],
    plan: WritePlan,
    submission_id: str,
    caregiver: str | None = None,
    assignment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score, build and store the submission; deliver now if the server answers. The record.

    ``assignment``: the Task this submission answers (``task_updates.bound``), kept on the
    record so the Task can be closed once the response is delivered.
    """
    result = score(resolved, response)
    who = people(launch, caregiver)
    ctx = WritebackContext(
        submission_id=submission_id,
        patient=who.patient,
        author=who.author,
        authored=now(),
        encounter=who.encounter,
        source=who.source,
        security_labels=registration_option(launch, "security_labels"),
        include_provenance=plan.provenance,
        # A patient's (or caregiver's) own scores stay preliminary until a clinician reviews
        # them (careplan.confirm); goals are judged only on final ones.
        observation_status="preliminary" if patient_submitted(launch, who) else "final",
    )
    bundle = build_transaction(response, resolved.packaged, result, ctx)
    record: dict[str, Any] = {
        "cred": credential_key(launch),
        "instrument": resolved.instrument.id,
        "scores": result.to_json(),
        "mode": plan.mode,
        "created": time.time(),
        # goal_updates judges care-plan goals only on a clinician's final scores
        "observation_status": ctx.observation_status,
        "authored": ctx.authored,
    }
    if assignment:
        record["assignment"] = dict(assignment)
    if not plan.writes:
        record["bundle"] = bundle  # not written as data: the only copy, for the downloads
    store = launch.services.store
    # Where the answers go through the outbox, its row (synced before anything is sent) is
    # what keeps them; this record, the status page's view of them, is then not synced on its
    # own (docs/outbox.md, "Durability"). Where it is the only copy, it is.
    store.put(SUBMISSION_NS, submission_id, record, _ttl(launch), durable=not plan.writes)
    sending = None
    if plan.writes:  # the draft (same identifier) is completed in place, in either mode
        sending = complete_draft(bundle)
    elif plan.mode == "document-reference":
        sending = response_summaries.document_bundle(
            launch, bundle["entry"][0]["resource"], result, ctx
        )
    if sending is not None:
        ordered = plan.mode == "ordered-creates" or not plan.transaction
        mode: Mode = "ordered-creates" if ordered else "transaction"
        item = send(launch, submission_id, sending, mode)
        log.info("assess.submit outcome=%s mode=%s", item.status, plan.mode)
    return record


def record_outcome(launch: LaunchContext, found: Status, key: str, outcome: dict[str, Any]) -> None:
    """Add one follow-up's outcome (``goals``, ``task_outcome``) to the submission's record.

    Read-modify-write under the record's lock, from the stored copy: two follow-ups finishing at
    once (a page view and the worker) keep both outcomes. Not synced at once: lost in a machine
    crash, the follow-up runs again and its writes (identifiers, If-Match) change nothing twice.
    """
    store = launch.services.store
    with store.lock(f"submission-record:{found.submission_id}"):
        fresh = store.get(SUBMISSION_NS, found.submission_id) or found.record
        store.put(
            SUBMISSION_NS,
            found.submission_id,
            {**fresh, key: outcome},
            _ttl(launch),
            durable=False,
        )
    found.record[key] = outcome


def _ttl(launch: LaunchContext) -> float:
    """Records outlive their launch: the status stays visible after a relaunch."""
    del launch
    return float(current_app.config["LAUNCH_TTL"]) * 14


@dataclass(frozen=True)
class Status:
    """What became of a submission, for the status page."""

    submission_id: str
    record: dict[str, Any]
    item: OutboxItem | None

    @property
    def state(self) -> str:
        """``delivered``, ``waiting``, ``delivering``, ``failed`` or ``kept``."""
        if self.item is None:
            return KEPT
        if self.item.status == DELIVERED:
            return "delivered"
        if self.item.status == FAILED:
            return "failed"
        return "delivering" if self.item.status == "delivering" else "waiting"

    @property
    def document_reference(self) -> str | None:
        """``DocumentReference/<id>`` of the filed PDF summary once delivered."""
        receipt = (self.item.receipt if self.item else None) or {}
        return receipt.get(f"urn:uuid:{identifier_value(self.submission_id, DOCUMENT)}")

    @property
    def response_reference(self) -> str | None:
        """``QuestionnaireResponse/<id>`` on the server once delivered."""
        receipt = (self.item.receipt if self.item else None) or {}
        qr_url = f"urn:uuid:{identifier_value(self.submission_id, QR)}"
        return receipt.get(qr_url)


def status(launch: LaunchContext, submission_id: str) -> Status | None:
    """The submission if it belongs to this user, patient and EHR; None otherwise."""
    record = launch.services.store.get(SUBMISSION_NS, submission_id)
    if record is None or record.get("cred") != credential_key(launch):
        return None
    return Status(submission_id, record, outbox_services().outbox.store.get(submission_id))


def export_bundle(found: Status) -> dict[str, Any] | None:
    """The write-back Bundle while the app still holds it (kept, or not yet delivered).

    The answers and scores as data: the kept Bundle first (also where a PDF summary was filed).
    """
    kept: dict[str, Any] | None = found.record.get("bundle")
    if kept is None and found.item is not None and found.item.payload is not None:
        bundle: dict[str, Any] = found.item.payload["bundle"]
        return bundle
    return kept
