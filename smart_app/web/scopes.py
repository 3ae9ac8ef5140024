"""SMART scopes: the least-privilege request, the v1 fallback, and what was actually granted."""

from __future__ import annotations

import re
from dataclasses import dataclass

from smart_app.web.discovery_cache import SmartConfiguration

#: Resource scopes the app asks for by default (SMART v2 syntax), per compartment. Provenance
#: is created (never read) with every write-back. Score Observations are read back for review
#: and updated only when a clinician confirms a patient's own (preliminary) scores.
RESOURCE_SCOPES = (
    "Patient.r",
    "Questionnaire.rs",
    "QuestionnaireResponse.crus",
    "Observation.crus",
    "CarePlan.crus",
    "Goal.crus",
    "Provenance.c",
)
#: What a patient's own launch needs instead: no confirming of scores, but the Tasks assigning
#: them questionnaires, read to list them and updated to mark one completed by their response.
PATIENT_SCOPE_CHANGES = {"Observation.crus": "Observation.crs"}
PATIENT_EXTRA_SCOPES = ("Task.rus",)
#: A clinician's launch reads its own fhirUser (a Practitioner) to show the user's name.
PRACTITIONER_SCOPE = "Practitioner.r"
IDENTITY_SCOPES = ("openid", "fhirUser", "offline_access")

_V2 = re.compile(r"^(patient|user|system)/([A-Za-z*]+)\.([cruds]+)(\?.*)?$")
_V1 = re.compile(r"^(patient|user|system)/([A-Za-z*]+)\.(read|write|\*)$")


def default_scopes(kind: str) -> list[str]:
    """The v2 least-privilege request: ``ehr`` and ``patient`` use patient/, ``clinician`` user/."""
    if kind == "ehr":
        context, compartment = ["launch"], "patient"
    elif kind == "patient":
        context, compartment = ["launch/patient"], "patient"
    elif kind == "clinician":
        context, compartment = ["launch/patient"], "user"
    else:
        raise ValueError(f"unknown launch kind {kind!r}")
    wanted = list(RESOURCE_SCOPES)
    if kind == "patient":
        wanted = [PATIENT_SCOPE_CHANGES.get(s, s) for s in wanted] + list(PATIENT_EXTRA_SCOPES)
    resources = [f"{compartment}/{s}" for s in wanted]
    if kind == "clinician":
        resources[0] = "user/Patient.rs"  # the app-side patient picker searches
    if kind != "patient":
        # The signed-in clinician's name, read from fhirUser for the page header.
        resources.insert(1, f"user/{PRACTITIONER_SCOPE}")
    return [*context, "openid", "fhirUser", *resources, "offline_access"]


def server_is_v1_only(config: SmartConfiguration) -> bool:
    """True for a server that only knows SMART v1: v1 permissions and nothing of v2, or no
    ``.well-known/smart-configuration`` at all (which every SMART 2 server publishes)."""
    if config.source == "capability-statement":
        return True
    if "permission-v2" in config.capabilities:
        return False
    resource = [s for s in config.scopes_supported if "/" in s and not s.startswith("launch/")]
    if any(_V2.fullmatch(s) for s in resource):
        return False
    return "permission-v1" in config.capabilities or any(_V1.fullmatch(s) for s in resource)


def to_v1(scopes: list[str]) -> list[str]:
    """Translate v2 resource scopes to v1 (.r/.s -> .read; .c/.u/.d -> .write), order kept."""
    out: list[str] = []
    for scope in scopes:
        m = _V2.fullmatch(scope)
        if not m:
            out.append(scope)
            continue
        compartment, resource, letters = m.group(1), m.group(2), m.group(3)
        if set(letters) & set("rs"):
            out.append(f"{compartment}/{resource}.read")
        if set(letters) & set("cud"):
            out.append(f"{compartment}/{resource}.write")
    return list(dict.fromkeys(out))


def request_scopes(
    kind: str, override: str | None, config: SmartConfiguration, extra: str | None = None
) -> list[str]:
    """The scopes to request for this launch: registration override or default, plus the
    registration's extra scopes, v1 if needed."""
    scopes = override.split() if override else default_scopes(kind)
    scopes = list(dict.fromkeys([*scopes, *(extra or "").split()]))
    if server_is_v1_only(config):
        scopes = to_v1(scopes)
    if kind == "clinician" and not _offers_patient_picker(config):
        scopes = [s for s in scopes if s != "launch/patient"]
    return scopes


def _offers_patient_picker(config: SmartConfiguration) -> bool:
    return (
        "launch/patient" in config.scopes_supported
        or "context-standalone-patient" in config.capabilities
    )


@dataclass(frozen=True)
class Granted:
    """The scopes the server granted, answering "may the app do X to resource Y?"."""

    scopes: tuple[str, ...]

    @classmethod
    def parse(cls, scope: str | None) -> Granted:
        """From the token response's space-separated ``scope``."""
        return cls(tuple((scope or "").split()))

    def allows(self, resource: str, interaction: str) -> bool:
        """True when a granted scope covers ``interaction`` (c, r, u, d or s) on ``resource``."""
        for scope in self.scopes:
            v2 = _V2.fullmatch(scope)
            if v2 and v2.group(2) in (resource, "*") and interaction in v2.group(3):
                return True
            v1 = _V1.fullmatch(scope)
            if v1 and v1.group(2) in (resource, "*"):
                letters = {"read": "rs", "write": "cud", "*": "cruds"}[v1.group(3)]
                if interaction in letters:
                    return True
        return False

    def has(self, scope: str) -> bool:
        """True when exactly ``scope`` was granted (e.g. ``offline_access``)."""
        return scope in self.scopes
