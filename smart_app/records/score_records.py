"""What the review reads from the EHR: a QuestionnaireResponse, its score Observations, the
patient's earlier score Observations, and the Questionnaire it answers (the EHR's copy first).

Every read goes through the launch's ``FhirClient``; the patient in context bounds what is shown
even where the server would allow more (a QuestionnaireResponse of another patient is "not
found", and every search names the patient).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM, SCORING_MODEL_EXT
from attach_fhir.errors import AttachError
from attach_fhir.instruments import Library
from attach_fhir.io.fhir_client import FhirClient, is_fhir_id
from attach_fhir.scoring_model import compile_model

log = logging.getLogger(__name__)

Json = dict[str, Any]
#: Page size for score searches (the client follows ``next`` links).
PAGE = "200"


class ReviewNotFound(AttachError):
    """The response does not exist, or belongs to another patient than the one in context."""

    code = "review_not_found"
    description = "No such questionnaire response for the patient in context."
    status_code = 404


def _patient_ref(patient_id: str) -> str:
    return f"Patient/{patient_id}"


def _belongs(resource: Mapping[str, Any], patient_id: str | None) -> bool:
    if patient_id is None:
        return True
    reference = str((resource.get("subject") or {}).get("reference") or "")
    return reference == _patient_ref(patient_id) or reference.endswith(
        f"/{_patient_ref(patient_id)}"
    )


def read_response(client: FhirClient, qr_id: str, patient_id: str | None) -> Json:
    """The QuestionnaireResponse ``qr_id`` of the patient in context (else ReviewNotFound)."""
    if not is_fhir_id(qr_id):  # "." would read as a search of every response: nothing is sent
        raise ReviewNotFound()
    try:
        response = client.read("QuestionnaireResponse", qr_id)
    except AttachError as exc:
        if exc.status_code in (404, 410):
            raise ReviewNotFound() from exc
        raise
    if response.get("resourceType") != "QuestionnaireResponse" or not _belongs(
        response, patient_id
    ):
        raise ReviewNotFound()
    return response


def response_observations(client: FhirClient, qr_id: str, patient_id: str | None) -> list[Json]:
    """The score Observations derived from one QuestionnaireResponse."""
    params: dict[str, str] = {"derived-from": f"QuestionnaireResponse/{qr_id}", "_count": PAGE}
    if patient_id:
        params["patient"] = _patient_ref(patient_id)
    return [o for o in client.search("Observation", params) if _belongs(o, patient_id)]


def patient_observations(client: FhirClient, patient_id: str, codes: Iterable[str]) -> list[Json]:
    """The patient's score Observations with any of ``codes``, across submissions."""
    wanted = [f"{SCORES_SYSTEM}|{code}" for code in codes]
    if not wanted:
        return []
    params = {"patient": _patient_ref(patient_id), "code": ",".join(wanted), "_count": PAGE}
    return [o for o in client.search("Observation", params) if _belongs(o, patient_id)]


#: Ids per ``_id`` search, so the query string stays short.
ID_CHUNK = 40


def responses(client: FhirClient, patient_id: str, qr_ids: Iterable[str]) -> list[Json]:
    """The patient's QuestionnaireResponses with these ids (one search per ``ID_CHUNK`` ids).

    The review reads them only to say which ECR-RS relationships were skipped; a server that
    refuses the search leaves that unsaid (an empty list), it does not fail the page.
    """
    wanted = sorted({i for i in qr_ids if is_fhir_id(i)})
    found: list[Json] = []
    try:
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            params = {"_id": ",".join(chunk), "patient": _patient_ref(patient_id)}
            params["_count"] = PAGE
            found += [
                r for r in client.search("QuestionnaireResponse", params) if _belongs(r, patient_id)
            ]
    except AttachError as exc:
        log.info("review.responses_search outcome=%s", exc.code)
        return []
    return found


def _usable(questionnaire: Mapping[str, Any]) -> bool:
    """A copy the review can explain: it carries a scoring model that compiles."""
    if not any(e.get("url") == SCORING_MODEL_EXT for e in questionnaire.get("extension") or []):
        return False
    try:
        compile_model(questionnaire)
    except (AttachError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return False
    return True


@dataclass(frozen=True)
class ResolvedQuestionnaire:
    """The EHR's copy of a canonical (what the EHR calls it) and the copy that explains it."""

    ehr: Json | None
    #: The packaged copy when we ship this url|version (it is the one that scores), else the
    #: EHR's copy if it carries a scoring model that compiles, else None.
    explains: Json | None

    @property
    def title(self) -> str:
        """The title the EHR gives the Questionnaire, else ours."""
        for source in (self.ehr, self.explains):
            if source and isinstance(source.get("title"), str):
                return str(source["title"])
        return ""


def _ehr_copy(client: FhirClient, url: str, version: str) -> Json | None:
    params = {"url": url, **({"version": version} if version else {})}
    try:
        for candidate in client.search("Questionnaire", params):
            if candidate.get("url") == url and (not version or candidate.get("version") == version):
                return candidate
    except AttachError as exc:  # a server that refuses the search still gets a review
        log.info("review.questionnaire_search outcome=%s", exc.code)
    return None


def resolve_questionnaire(
    client: FhirClient, canonical: str, library: Library, may_search: bool
) -> ResolvedQuestionnaire:
    """The Questionnaire a response names (``url|version``), from the EHR and the library."""
    url, _, version = canonical.partition("|")
    ehr = _ehr_copy(client, url, version) if may_search and url else None
    try:
        packaged: Json | None = library.questionnaire(canonical) if url else None
    except AttachError:
        packaged = None
    explains = packaged or (ehr if ehr is not None and _usable(ehr) else None)
    return ResolvedQuestionnaire(ehr, explains)
