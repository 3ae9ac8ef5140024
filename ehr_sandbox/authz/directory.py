"""The people the EHR knows: patients, practitioners and encounters read from the FHIR server."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from attach_fhir.errors import AttachError

from .config import AuthzConfig
from .keys import SIGNING_ALG
from .storage import new_token

#: What the EHR itself may read to draw its pages (never handed to an app).
EHR_SCOPE = "user/Patient.rs user/Practitioner.rs user/Encounter.rs"


class DirectoryError(AttachError):
    """The FHIR server could not be read."""

    code = "fhir_unavailable"
    description = "The sandbox FHIR server could not be read."
    status_code = 502


@dataclasses.dataclass(frozen=True)
class Person:
    """A patient or practitioner as the EHR pages show them."""

    ref: str
    name: str
    birth_date: str | None = None
    gender: str | None = None

    @property
    def id(self) -> str:
        """The logical id."""
        return self.ref.split("/", 1)[1]


def display_name(resource: dict[str, Any]) -> str:
    """First human name as 'Given Family', or the reference when it has none."""
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _person(resource: dict[str, Any]) -> Person:
    return Person(
        ref=f"{resource['resourceType']}/{resource['id']}",
        name=display_name(resource),
        birth_date=resource.get("birthDate"),
        gender=resource.get("gender"),
    )


class Directory:
    """Reads the FHIR server over HTTP with a short-lived token the EHR mints for itself."""

    def __init__(self, config: AuthzConfig, key: RSAKey, http: httpx.Client) -> None:
        self.config = config
        self.key = key
        self.http = http

    def _token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.config.issuer,
            "aud": self.config.fhir_base,
            "iat": now,
            "exp": now + 300,
            "jti": new_token(16),
            "scope": EHR_SCOPE,
            "client_id": "sandbox-ehr",
            "sub": "sandbox-ehr",
        }
        header = {"alg": SIGNING_ALG, "kid": self.key.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self.key, algorithms=[SIGNING_ALG])

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.config.fhir_internal_base}/{path}"
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/fhir+json"}
        try:
            response = self.http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise DirectoryError() from exc
        if response.status_code == 404:
            return {}
        if response.status_code >= 400:
            raise DirectoryError(f"the FHIR server answered {response.status_code}")
        data: dict[str, Any] = response.json()
        return data

    def _search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        bundle = self._get(resource_type, {"_count": "200", **params})
        return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]

    def patients(self) -> list[Person]:
        """Every patient, by name."""
        return sorted((_person(r) for r in self._search("Patient", {})), key=lambda p: p.name)

    def practitioners(self) -> list[Person]:
        """Every practitioner, by name."""
        found = self._search("Practitioner", {})
        return sorted((_person(r) for r in found), key=lambda p: p.name)

    def person(self, ref: str) -> Person | None:
        """One patient or practitioner by relative reference."""
        kind, _, ident = ref.partition("/")
        if kind not in ("Patient", "Practitioner") or not ident or "/" in ident:
            return None
        resource = self._get(f"{kind}/{ident}")
        return _person(resource) if resource.get("id") else None

    def encounters(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's encounters, newest first."""
        found = self._search("Encounter", {"patient": patient_id})
        return sorted(found, key=_encounter_start, reverse=True)


def _encounter_start(encounter: dict[str, Any]) -> str:
    return str((encounter.get("period") or {}).get("start") or "")
