"""The patient in context as the assess flow needs it: name, birth date, children, caregiver.

Reads are best effort beyond the Patient itself: children (``Patient.link`` to RelatedPerson
records whose ``patient`` is the child) and a young child's caregiver need RelatedPerson reads
the EHR may not grant; when they fail the fit rules say "could not tell" instead of guessing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from attach_fhir.errors import AttachError
from attach_fhir.human_names import human_name
from attach_fhir.instrument_fit import PatientFacts
from smart_app.web.context import LaunchContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Patient:
    """What the pages show and the rules use."""

    id: str
    name: str
    birth_date: str | None
    facts: PatientFacts


def load(launch: LaunchContext) -> Patient:
    """Read the patient in context (and, if allowed, the children they care for)."""
    assert launch.patient_id is not None
    resource: dict[str, Any] = {}
    if launch.can("Patient", "r"):
        try:
            resource = launch.fhir().read("Patient", launch.patient_id)
        except AttachError as exc:
            log.info("assess.patient outcome=%s", exc.code)
    birth = resource.get("birthDate") if isinstance(resource.get("birthDate"), str) else None
    facts = PatientFacts(birth_date=birth, children=_children(launch, resource))
    return Patient(launch.patient_id, human_name(resource.get("name")), birth, facts)


def _children(launch: LaunchContext, patient: dict[str, Any]) -> tuple[str, ...] | None:
    links = [
        str((link.get("other") or {}).get("reference") or "")
        for link in patient.get("link") or []
        if isinstance(link, dict)
    ]
    related = [ref for ref in links if ref.startswith("RelatedPerson/")]
    if not related:
        return ()  # the record names no one the patient cares for
    if not launch.can("RelatedPerson", "r"):
        return None
    births: list[str] = []
    try:
        client = launch.fhir()
        for ref in related:
            person = client.read_reference(ref)
            child_ref = str((person.get("patient") or {}).get("reference") or "")
            if child_ref.startswith("Patient/") and child_ref != f"Patient/{launch.patient_id}":
                child = client.read_reference(child_ref)
                if isinstance(child.get("birthDate"), str):
                    births.append(child["birthDate"])
    except AttachError as exc:
        log.info("assess.children outcome=%s", exc.code)
        return None
    return tuple(births)


def caregiver(launch: LaunchContext) -> str | None:
    """``RelatedPerson/<id>`` of the one caregiver the record lists for the patient, if any."""
    if not launch.can("RelatedPerson", "s"):
        return None
    try:
        found = list(launch.fhir().search("RelatedPerson", {"patient": str(launch.patient_id)}))
    except AttachError as exc:
        log.info("assess.caregiver outcome=%s", exc.code)
        return None
    return f"RelatedPerson/{found[0]['id']}" if len(found) == 1 else None
