"""Configuration of the sandbox authorization server: data validated at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import jsonschema

from attach_fhir.errors import AttachError

ClientType = Literal["public", "confidential-symmetric", "confidential-asymmetric"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["issuer", "fhir_base"],
    "additionalProperties": False,
    "properties": {
        "issuer": {"type": "string", "pattern": "^https?://"},
        "fhir_base": {"type": "string", "pattern": "^https?://"},
        "fhir_internal_base": {"type": "string", "pattern": "^https?://"},
        "signing_key": {"type": "object", "required": ["kty", "d"]},
        "clients": {"type": "array", "items": {"$ref": "#/$defs/client"}},
        "knobs": {"$ref": "#/$defs/knobs"},
        "v1_only": {"type": "boolean"},
        "tenant": {"type": "string"},
        # CDS Hooks discovery URLs the EHR calls when a patient's record is opened.
        "cds_services": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}},
    },
    "$defs": {
        "client": {
            "type": "object",
            "required": ["client_id", "type"],
            "additionalProperties": False,
            "properties": {
                "client_id": {"type": "string", "minLength": 1},
                "name": {"type": "string"},
                "type": {"enum": ["public", "confidential-symmetric", "confidential-asymmetric"]},
                "redirect_uris": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": "^https?://"},
                },
                "secret": {"type": "string", "minLength": 16},
                "jwks": {"type": "object", "required": ["keys"]},
                "jwks_url": {"type": "string", "pattern": "^https?://"},
                "launch_url": {"type": "string", "pattern": "^https?://"},
                "standalone_url": {"type": "string", "pattern": "^https?://"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "backend_service": {"type": "boolean"},
            },
            "allOf": [
                {
                    "if": {
                        "properties": {"backend_service": {"const": True}},
                        "required": ["backend_service"],
                    },
                    "then": {"properties": {"type": {"const": "confidential-asymmetric"}}},
                    "else": {"required": ["redirect_uris"]},
                },
                {
                    "if": {"properties": {"type": {"const": "confidential-symmetric"}}},
                    "then": {"required": ["secret"]},
                },
                {
                    "if": {"properties": {"type": {"const": "confidential-asymmetric"}}},
                    "then": {"anyOf": [{"required": ["jwks"]}, {"required": ["jwks_url"]}]},
                },
            ],
        },
        "knobs": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "access_token_lifetime": {"type": "integer", "minimum": 1},
                "refresh_fails": {"type": "boolean"},
                "grant_only": {"type": ["array", "null"], "items": {"type": "string"}},
                "need_patient_banner": {"type": ["boolean", "null"]},
                "smart_style": {"type": "boolean"},
                "auto_approve": {"type": "boolean"},
                "standalone_patient_picker": {"type": "boolean"},
            },
        },
    },
}


class AuthzConfigError(AttachError):
    """The sandbox authorization server's configuration is invalid."""

    code = "authz_config_invalid"
    description = "The sandbox authorization server configuration is invalid."


@dataclasses.dataclass
class Knobs:
    """What the sandbox simulates; testers change these at run time on the /ehr page."""

    #: Lifetime of access tokens, seconds (short values simulate expiry mid-session).
    access_token_lifetime: int = 3600
    #: When true every refresh_token grant fails with invalid_grant.
    refresh_fails: bool = False
    #: When set, only these of the requested scopes are granted (narrower than requested).
    grant_only: list[str] | None = None
    #: None: false for an EHR launch embedded in the EHR's iframe (the EHR shows a banner),
    #: true otherwise. A boolean forces the value.
    need_patient_banner: bool | None = None
    #: Whether token responses carry smart_style_url.
    smart_style: bool = True
    #: When false the user sees an approval page before the code is issued.
    auto_approve: bool = True
    #: When false a standalone launch gets no patient picker: ``launch/patient`` is not granted
    #: and a practitioner's token carries no patient (the app must let them pick one).
    standalone_patient_picker: bool = True

    def update(self, values: Mapping[str, Any]) -> None:
        """Apply validated knob values."""
        _validate({"issuer": "http://x", "fhir_base": "http://x", "knobs": dict(values)})
        for key, value in values.items():
            setattr(self, key, value)


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """One registered client (an app) of the sandbox."""

    client_id: str
    type: ClientType
    redirect_uris: tuple[str, ...]
    name: str = ""
    secret: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    launch_url: str | None = None
    #: Where a patient portal (or a clinician outside the EHR) starts the app's standalone
    #: launch; ``?role=patient|clinician`` is appended by the EHR page.
    standalone_url: str | None = None
    scopes: tuple[str, ...] | None = None
    #: A SMART Backend Services client: client_credentials with private_key_jwt, system/ scopes,
    #: no user and no redirect URIs.
    backend_service: bool = False


@dataclasses.dataclass
class AuthzConfig:
    """The validated configuration of one authorization server instance."""

    issuer: str
    fhir_base: str
    fhir_internal_base: str
    clients: list[ClientConfig]
    knobs: Knobs
    signing_key: Mapping[str, Any] | None = None
    v1_only: bool = False
    tenant: str | None = None
    cds_services: list[str] = dataclasses.field(default_factory=list)


def _validate(data: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise AuthzConfigError(f"invalid authz config at {where}: {first.message}", key=where)


def _client(c: Mapping[str, Any]) -> ClientConfig:
    return ClientConfig(
        client_id=c["client_id"],
        type=c["type"],
        redirect_uris=tuple(c.get("redirect_uris", ())),
        name=c.get("name", c["client_id"]),
        secret=c.get("secret"),
        jwks=c.get("jwks"),
        jwks_url=c.get("jwks_url"),
        launch_url=c.get("launch_url"),
        standalone_url=c.get("standalone_url"),
        scopes=tuple(c["scopes"]) if "scopes" in c else None,
        backend_service=c.get("backend_service", False),
    )


def load_client(data: Mapping[str, Any]) -> ClientConfig:
    """Validate one client registration mapping."""
    _validate({"issuer": "http://x", "fhir_base": "http://x", "clients": [dict(data)]})
    return _client(data)


def load_config(data: Mapping[str, Any] | AuthzConfig) -> AuthzConfig:
    """Validate a configuration mapping and build the typed configuration."""
    if isinstance(data, AuthzConfig):
        return data
    _validate(data)
    clients = [_client(c) for c in data.get("clients", [])]
    ids = [c.client_id for c in clients]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise AuthzConfigError(f"duplicate client_id: {', '.join(duplicates)}", key="clients")
    issuer = data["issuer"].rstrip("/")
    fhir_base = data["fhir_base"].rstrip("/")
    return AuthzConfig(
        issuer=issuer,
        fhir_base=fhir_base,
        fhir_internal_base=data.get("fhir_internal_base", fhir_base).rstrip("/"),
        clients=clients,
        knobs=Knobs(**data.get("knobs", {})),
        signing_key=data.get("signing_key"),
        v1_only=data.get("v1_only", False),
        tenant=data.get("tenant"),
        cds_services=list(data.get("cds_services", [])),
    )
