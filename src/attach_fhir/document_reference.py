"""The summary document a submission files where answers and scores cannot be written as data.

Some EHRs take no QuestionnaireResponse or Observation (read-only there) but accept documents.
Then a submission is one DocumentReference whose attachment is the PDF summary
(:mod:`attach_fhir.summary_pdf`), plus a Provenance where the server takes one. Pure: built from
the PDF bytes and the same :class:`~attach_fhir.writeback.WritebackContext` as the data
write-back, with the same identifier scheme (``uuid5`` of the submission id and the role), and
created with ``ifNoneExist`` on it, so a retry writes nothing twice.

Codes: ``type`` and ``category`` come from the project's own CodeSystem
(``questionnaires/codesystem-attach-documents.json``): no LOINC document code could be verified
for "attachment questionnaire summary", and none is guessed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from attach_fhir.canonical import BASE
from attach_fhir.fhir_models import DocumentReference
from attach_fhir.writeback import (
    SECURITY_LABELS,
    SUBMISSION_SYSTEM,
    InvalidWriteback,
    WritebackContext,
    create_entry,
    identifier_value,
    provenance_resource,
    validate,
)

DOCUMENTS_SYSTEM = f"{BASE}/CodeSystem/attach-documents"
SUMMARY_TYPE = {"system": DOCUMENTS_SYSTEM, "code": "assessment-summary"}
SUMMARY_TYPE_DISPLAY = "Attachment assessment summary"
ASSESSMENT_CATEGORY = {"system": DOCUMENTS_SYSTEM, "code": "assessment", "display": "Assessment"}
PDF = "application/pdf"
#: The identifier role of the summary document within a submission.
ROLE = "DocumentReference"


@dataclass(frozen=True)
class SummaryDocument:
    """The rendered summary and how it is labelled."""

    pdf: bytes
    title: str
    description: str
    language: str = "en"


def attachment(document: SummaryDocument, created: str) -> dict[str, Any]:
    """The PDF as an Attachment: inline base64 data, size, and SHA-1 hash (base64, as R4 says)."""
    return {
        "contentType": PDF,
        "language": document.language,
        "data": base64.b64encode(document.pdf).decode("ascii"),
        "size": len(document.pdf),
        "hash": base64.b64encode(hashlib.sha1(document.pdf).digest()).decode("ascii"),  # noqa: S324 - R4 Attachment.hash is SHA-1
        "title": document.title,
        "creation": created,
    }


def document_reference(
    document: SummaryDocument,
    ctx: WritebackContext,
    relates_to: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The DocumentReference of a submission's summary; ``relates_to`` is (code, reference)."""
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [
            {"system": SUBMISSION_SYSTEM, "value": identifier_value(ctx.submission_id, ROLE)}
        ],
        "status": "current",
        "docStatus": "final",
        "type": {
            "coding": [{**SUMMARY_TYPE, "display": SUMMARY_TYPE_DISPLAY}],
            "text": SUMMARY_TYPE_DISPLAY,
        },
        "category": [{"coding": [dict(ASSESSMENT_CATEGORY)]}],
        "subject": {"reference": ctx.patient},
        "date": ctx.authored,
        "author": [{"reference": ctx.author}],
        "description": document.description,
        "content": [{"attachment": attachment(document, ctx.authored)}],
    }
    if ctx.security_labels:
        resource["meta"] = {"security": [dict(label) for label in SECURITY_LABELS]}
    if ctx.organization:
        resource["custodian"] = {"reference": ctx.organization}
    if relates_to:
        resource["relatesTo"] = [
            {"code": code, "target": {"reference": target}} for code, target in relates_to
        ]
    if ctx.encounter:
        resource["context"] = {"encounter": [{"reference": ctx.encounter}]}
    return resource


def _check(resource: Mapping[str, Any]) -> None:
    try:
        DocumentReference.model_validate(resource)
    except ValidationError as exc:
        problems = [f"DocumentReference: {e['loc']}: {e['msg']}" for e in exc.errors()]
        raise InvalidWriteback(problems=problems) from exc


def document_transaction(
    document: SummaryDocument,
    ctx: WritebackContext,
    relates_to: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The transaction Bundle filing the summary (raises InvalidWriteback if not valid FHIR)."""
    resource = document_reference(document, ctx, relates_to)
    entries = [create_entry(resource, SUBMISSION_SYSTEM, identifier_value(ctx.submission_id, ROLE))]
    if ctx.include_provenance:
        value = identifier_value(ctx.submission_id, "Provenance")
        provenance = provenance_resource(
            ctx, [entries[0]["fullUrl"]], tag=(SUBMISSION_SYSTEM, value)
        )
        entries.append(create_entry(provenance, SUBMISSION_SYSTEM, value))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    validate(bundle)  # the Bundle and the Provenance
    _check(resource)
    return bundle
