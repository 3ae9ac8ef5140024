"""Printable summaries (PDF) of submissions, and the summary document a documents-only EHR gets.

The summary is built from what the app holds or the record has: the kept Bundle (keep and
export), the outbox payload (not delivered yet), or, once delivered, the completed
QuestionnaireResponse (or the filed DocumentReference) read back from the server. Scores come
from the submission record (the values that were written); a response found only on the server
is scored again with the packaged model, which gives the same values from the same answers.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from attach_fhir.assessment_summary import AssessmentSummary, build_summary
from attach_fhir.document_reference import (
    ROLE,
    SummaryDocument,
    document_transaction,
)
from attach_fhir.errors import AttachError
from attach_fhir.instruments import library
from attach_fhir.io.outbox_store import OutboxItem
from attach_fhir.scoring import ScoreResult, score_response
from attach_fhir.summary_pdf import render_pdf
from attach_fhir.writeback import WritebackContext, identifier_value
from smart_app.records import patient_facts
from smart_app.web.context import LaunchContext


class Submitted(Protocol):
    """What a summary needs of a submission (``submission.Status`` has it)."""

    @property
    def submission_id(self) -> str: ...
    @property
    def record(self) -> dict[str, Any]: ...
    @property
    def item(self) -> OutboxItem | None: ...


log = logging.getLogger(__name__)

QR = "QuestionnaireResponse"


def _ref(resource: Mapping[str, Any], key: str) -> str:
    return str((resource.get(key) or {}).get("reference") or "")


def _patient_name(launch: LaunchContext) -> str | None:
    try:
        return patient_facts.load(launch).name or None
    except AttachError as exc:  # the summary still names the patient by reference
        log.info("summary.patient outcome=%s", exc.code)
        return None


def summarize(
    launch: LaunchContext, response: Mapping[str, Any], scores: ScoreResult | Mapping[str, Any]
) -> AssessmentSummary:
    """The summary of a completed response of a packaged instrument (UnknownInstrument if not)."""
    lib = library()
    questionnaire = lib.questionnaire(str(response.get("questionnaire") or ""))
    patient = _ref(response, "subject")
    name = _patient_name(launch)
    return build_summary(
        questionnaire,
        response,
        scores,
        lib.score_codes(),
        authored=str(response.get("authored") or ""),
        author=_ref(response, "author"),
        respondent=_ref(response, "source") or patient,
        patient=f"{name} ({patient})" if name else patient,
    )


def document_bundle(
    launch: LaunchContext, completed: Mapping[str, Any], result: ScoreResult, ctx: WritebackContext
) -> dict[str, Any]:
    """The transaction filing the PDF summary of ``completed`` as a DocumentReference."""
    summary = summarize(launch, completed, result)
    day = summary.authored[:10]
    document = SummaryDocument(
        pdf=render_pdf(summary),
        title=f"{summary.title} {summary.version}: summary {day}",
        description=f"Answers and scores of the {summary.title}, version {summary.version}, "
        f"completed {day} (attach-fhir summary; the record does not take them as data).",
    )
    return document_transaction(document, ctx)


def _attachment_pdf(document: Mapping[str, Any]) -> bytes | None:
    for content in document.get("content") or []:
        attachment = content.get("attachment") or {}
        if attachment.get("contentType") == "application/pdf" and attachment.get("data"):
            return base64.b64decode(attachment["data"])
    return None


def _held_response(found: Submitted) -> Mapping[str, Any] | None:
    """The completed response the app still holds (kept, or in the outbox), if any."""
    for bundle in (
        found.record.get("bundle"),
        (found.item.payload or {}).get("bundle") if found.item else None,
    ):
        for entry in (bundle or {}).get("entry") or []:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == QR:
                return resource
            if resource.get("resourceType") == "DocumentReference":
                return resource
    return None


def submission_pdf(launch: LaunchContext, found: Submitted) -> bytes | None:
    """The printable summary of a submission, or None when neither the app nor the record has it."""
    held = _held_response(found)
    if held is None and found.item is not None and found.item.receipt:
        receipt = found.item.receipt
        sid = found.submission_id
        reference = receipt.get(f"urn:uuid:{identifier_value(sid, QR)}") or receipt.get(
            f"urn:uuid:{identifier_value(sid, ROLE)}"
        )
        if reference:
            held = launch.fhir().read_reference(reference)
    if held is None:
        return None
    if held.get("resourceType") == "DocumentReference":
        return _attachment_pdf(held)
    return render_pdf(summarize(launch, held, found.record.get("scores") or {}))


def response_pdf(launch: LaunchContext, response: Mapping[str, Any]) -> bytes:
    """The printable summary of a completed response read from the record (scored again)."""
    questionnaire = library().questionnaire(str(response.get("questionnaire") or ""))
    return render_pdf(summarize(launch, response, score_response(questionnaire, response)))
