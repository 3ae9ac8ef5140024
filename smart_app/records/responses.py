"""The patient's QuestionnaireResponses on the FHIR server: drafts in progress and earlier ones.

A draft is an ``in-progress`` QuestionnaireResponse carrying the same client-generated identifier
the submission's completed response will carry (``writeback.identifier_value(sid, ...)``), so
re-saving updates the one draft and submitting completes that same resource. The submission id
itself travels in a ``meta.tag``, which is how a resumed draft (after token expiry or a new
launch, found by patient + questionnaire + status) keeps writing to the same resource.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.canonical import BASE
from attach_fhir.errors import AttachError
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.writeback import SECURITY_LABELS, SUBMISSION_SYSTEM, identifier_value
from smart_app.web.clock import now

log = logging.getLogger(__name__)

SUBMISSION_TAG = f"{BASE}/tag/submission-id"
QR = "QuestionnaireResponse"


class DraftClosed(AttachError):
    """The draft's submission was already sent: it can no longer be saved as a draft."""

    code = "draft_closed"
    description = "These answers were already submitted, so they can no longer be saved as a draft."
    status_code = 409


@dataclass(frozen=True)
class StoredResponse:
    """A QuestionnaireResponse of the patient, as the Choose page lists it."""

    id: str
    questionnaire: str
    status: str
    authored: str
    submission_id: str | None

    @property
    def url(self) -> str:
        """The questionnaire canonical without version."""
        return self.questionnaire.partition("|")[0]


def submission_tag(resource: Mapping[str, Any]) -> str | None:
    """The submission id a draft carries, if any."""
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if tag.get("system") == SUBMISSION_TAG and isinstance(tag.get("code"), str):
            return str(tag["code"])
    return None


def _stored(resource: Mapping[str, Any]) -> StoredResponse:
    return StoredResponse(
        id=str(resource.get("id")),
        questionnaire=str(resource.get("questionnaire") or ""),
        status=str(resource.get("status") or ""),
        authored=str(resource.get("authored") or ""),
        submission_id=submission_tag(resource),
    )


def search(
    client: FhirClient, patient: str, status: str, questionnaire: str | None = None
) -> list[StoredResponse]:
    """The patient's responses with ``status`` (to one questionnaire), newest first."""
    params: dict[str, str] = {"subject": f"Patient/{patient}", "status": status}
    if questionnaire:
        params["questionnaire"] = questionnaire
    found = [_stored(r) for r in client.search(QR, params)]
    return sorted(found, key=lambda r: r.authored, reverse=True)


def by_submission(client: FhirClient, submission_id: str) -> dict[str, Any] | None:
    """The response of this submission (draft or completed), if the server has it."""
    value = identifier_value(submission_id, QR)
    for resource in client.search(QR, {"identifier": f"{SUBMISSION_SYSTEM}|{value}"}):
        return resource
    return None


@dataclass(frozen=True)
class DraftContext:
    """Who and where a draft belongs to."""

    submission_id: str
    patient: str
    author: str
    source: str
    encounter: str | None = None
    security_labels: bool = False


def draft_resource(response: Mapping[str, Any], ctx: DraftContext) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse to store for a parsed form."""
    meta: dict[str, Any] = {"tag": [{"system": SUBMISSION_TAG, "code": ctx.submission_id}]}
    if ctx.security_labels:
        meta["security"] = [dict(label) for label in SECURITY_LABELS]
    draft: dict[str, Any] = {
        "resourceType": QR,
        "meta": meta,
        "identifier": {
            "system": SUBMISSION_SYSTEM,
            "value": identifier_value(ctx.submission_id, QR),
        },
        "questionnaire": response["questionnaire"],
        "status": "in-progress",
        "subject": {"reference": f"Patient/{ctx.patient}"},
        "authored": now(),
        "author": {"reference": ctx.author},
        "source": {"reference": ctx.source},
    }
    if ctx.encounter:
        draft["encounter"] = {"reference": f"Encounter/{ctx.encounter}"}
    if response.get("item"):
        draft["item"] = response["item"]
    if response.get("extension"):  # the clinician's "use anyway" (assess.routes)
        draft["extension"] = response["extension"]
    return draft


def save_draft(client: FhirClient, response: Mapping[str, Any], ctx: DraftContext) -> str:
    """Create or update the submission's draft; its id. DraftClosed once it was submitted."""
    draft = draft_resource(response, ctx)
    existing = by_submission(client, ctx.submission_id)
    if existing is None:
        value = draft["identifier"]["value"]
        written = client.create(draft, if_none_exist=f"identifier={SUBMISSION_SYSTEM}|{value}")
        if written.get("status") != "in-progress":  # created meanwhile by a submission
            raise DraftClosed()
    else:
        if existing.get("status") != "in-progress":
            raise DraftClosed()
        draft["id"] = existing["id"]
        version = (existing.get("meta") or {}).get("versionId")
        written = client.update(draft, if_match=version)
    log.info("assess.draft saved")
    return str(written.get("id") or draft.get("id"))
