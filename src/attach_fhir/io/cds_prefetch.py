"""CDS Hooks prefetch for the patient-view service: templates, checks, and fetching what is missing.

The service asks the CDS Client for three things (CDS Hooks 2.0, "Prefetch Template"): the
Patient, the patient's newest score Observations (any code of the attach-scores CodeSystem) and
their in-progress QuestionnaireResponses. A key the client did not satisfy is absent from the
request; a key with no data is ``null``. Absent keys are fetched from ``fhirServer`` with the
``fhirAuthorization`` token through a :class:`FhirClient` the caller builds (so the token only
ever goes to that base URL). Without a way to get the scores the service answers 412.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.cds_cards import PatientData
from attach_fhir.errors import AttachError
from attach_fhir.io.fhir_client import FhirClient

Json = dict[str, Any]

PATIENT_KEY = "patient"
SCORES_KEY = "scores"
DRAFTS_KEY = "drafts"
#: Newest score Observations asked for (one searchset page: prefetch carries no next links).
SCORES_COUNT = 200
DRAFTS_COUNT = 50

#: Prefetch templates, restricted to what the spec recommends: an instance read, type searches
#: on the patient reference, token equality (``system|`` = any code of the system), ``_sort``
#: for newest first and ``_count``.
PREFETCH: Mapping[str, str] = {
    PATIENT_KEY: "Patient/{{context.patientId}}",
    SCORES_KEY: "Observation?patient={{context.patientId}}"
    f"&code={SCORES_SYSTEM}|&_sort=-date&_count={SCORES_COUNT}",
    DRAFTS_KEY: "QuestionnaireResponse?patient={{context.patientId}}"
    f"&status=in-progress&_count={DRAFTS_COUNT}",
}
#: What each search key's Bundle may hold.
SEARCH_TYPES: Mapping[str, str] = {
    SCORES_KEY: "Observation",
    DRAFTS_KEY: "QuestionnaireResponse",
}

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z][A-Za-z0-9]*)\s*\}\}")


class PrefetchInvalid(AttachError):
    """A prefetched value does not answer its template (wrong type, another patient)."""

    code = "prefetch_invalid"
    description = "The prefetched data does not match the service's prefetch templates."
    status_code = 400


class DataUnavailable(AttachError):
    """Neither the prefetch nor the FHIR server gave the data the service needs (HTTP 412)."""

    code = "precondition_failed"
    description = (
        "The patient's score Observations were neither prefetched nor readable from the FHIR "
        "server with the token supplied."
    )
    status_code = 412


def fill(template: str, context: Mapping[str, Any]) -> str:
    """The relative FHIR URL for ``template`` with ``{{context.x}}`` tokens replaced (quoted)."""

    def value(match: re.Match[str]) -> str:
        found = context.get(match.group(1))
        if not isinstance(found, str | int) or isinstance(found, bool) or found == "":
            raise PrefetchInvalid(f"The context has no value for prefetch token {match.group(0)}.")
        return quote(str(found), safe="")

    return _TOKEN.sub(value, template)


def _refers_to(resource: Mapping[str, Any], patient_id: str) -> bool:
    wanted = f"Patient/{patient_id}"
    for field in ("subject", "patient"):
        reference = str((resource.get(field) or {}).get("reference") or "")
        if reference == wanted or reference.endswith(f"/{wanted}"):
            return True
    return False


def _patient(value: Any, patient_id: str) -> Json | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("resourceType") != "Patient":
        raise PrefetchInvalid(f"Prefetch {PATIENT_KEY!r} is not a Patient resource.")
    if value.get("id") != patient_id:
        raise PrefetchInvalid(
            f"Prefetch {PATIENT_KEY!r} is another patient than context.patientId."
        )
    return value


def _matches(key: str, value: Any, patient_id: str) -> list[Json]:
    """The matching resources of a prefetched searchset Bundle (``null`` = none)."""
    if value is None:
        return []
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise PrefetchInvalid(f"Prefetch {key!r} is not a searchset Bundle.")
    if value.get("type") not in (None, "searchset"):
        raise PrefetchInvalid(f"Prefetch {key!r} is a Bundle of type {value.get('type')!r}.")
    wanted = SEARCH_TYPES[key]
    out: list[Json] = []
    for entry in value.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if (entry.get("search") or {}).get("mode", "match") != "match":
            continue
        if resource.get("resourceType") != wanted:
            raise PrefetchInvalid(f"Prefetch {key!r} holds a {resource.get('resourceType')}.")
        # Equivalence with the template: a resource of another patient is not an answer to it.
        if _refers_to(resource, patient_id):
            out.append(resource)
    return out


def fetch(client: FhirClient, key: str, context: Mapping[str, Any]) -> Any:
    """Run one template against the FHIR server: a resource, or a list of matches."""
    url = fill(PREFETCH[key], context)
    path, _, query = url.partition("?")
    if key not in SEARCH_TYPES:
        return client.read_reference(path)
    patient_id = str(context["patientId"])
    found = client.search(path, parse_qsl(query, keep_blank_values=True))
    return [r for r in found if r.get("resourceType") == path and _refers_to(r, patient_id)]


def _from_server(client: FhirClient, key: str, context: Mapping[str, Any]) -> Any:
    if key == PATIENT_KEY:
        try:
            return _patient(fetch(client, key, context), str(context["patientId"]))
        except AttachError as exc:
            if exc.status_code in (404, 410):
                return None
            raise
    return fetch(client, key, context)


def gather(
    context: Mapping[str, Any], prefetch: Mapping[str, Any] | None, client: FhirClient | None
) -> tuple[PatientData, list[str]]:
    """The data for the cards, and the keys fetched from the server (for the log)."""
    patient_id = str(context["patientId"])
    given = prefetch or {}
    fetched: list[str] = []
    values: dict[str, Any] = {}
    for key in PREFETCH:
        if key in given:
            raw = given[key]
            values[key] = (
                _patient(raw, patient_id) if key == PATIENT_KEY else _matches(key, raw, patient_id)
            )
            continue
        if client is None:
            if key == SCORES_KEY:
                raise DataUnavailable()
            values[key] = None
            continue
        try:
            values[key] = _from_server(client, key, context)
        except AttachError as exc:
            if key == SCORES_KEY:
                raise DataUnavailable(
                    f"{DataUnavailable.description} The FHIR server answered: {exc.code}.",
                    fhir_error=exc.code,
                ) from exc
            values[key] = None  # the patient and drafts only add to the cards
        fetched.append(key)
    return (
        PatientData(values[PATIENT_KEY], values[SCORES_KEY] or [], values[DRAFTS_KEY]),
        fetched,
    )
