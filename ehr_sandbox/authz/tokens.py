"""Access tokens (RFC 9068 JWTs the FHIR server verifies) and the SMART launch context."""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from . import scopes
from .config import AuthzConfig
from .keys import SIGNING_ALG
from .models import Client, Grantee
from .storage import new_token

OFFLINE_REFRESH_LIFETIME = 30 * 24 * 3600
ONLINE_REFRESH_LIFETIME = 3600


def fhir_user_url(config: AuthzConfig, user_ref: str) -> str:
    """The absolute ``fhirUser`` URL of a relative reference on the sandbox FHIR server."""
    return f"{config.fhir_base}/{user_ref}"


def refresh_lifetime(granted: list[str]) -> int:
    """Seconds a refresh token lives: long for offline_access, short for online_access."""
    return OFFLINE_REFRESH_LIFETIME if "offline_access" in granted else ONLINE_REFRESH_LIFETIME


def launch_context(config: AuthzConfig, grantee: Grantee, granted: list[str]) -> dict[str, Any]:
    """The SMART 2.2 launch context parameters for a token response (``fhirContext`` for an
    EHR launch that names resources beside the patient and encounter)."""
    context: dict[str, Any] = {}
    launched = any(s in ("launch", "launch/patient", "launch/encounter") for s in granted)
    if grantee.patient and (launched or scopes.needs_patient(granted)):
        context["patient"] = grantee.patient
    if grantee.encounter and ("launch" in granted or "launch/encounter" in granted):
        context["encounter"] = grantee.encounter
    if grantee.fhir_context and "launch" in granted:  # SMART 2.x: only the EHR launch has one
        context["fhirContext"] = [{"reference": ref} for ref in grantee.fhir_context]
    if launched:
        banner = config.knobs.need_patient_banner
        context["need_patient_banner"] = (not grantee.embedded) if banner is None else banner
        if config.knobs.smart_style:
            context["smart_style_url"] = f"{config.issuer}/smart-style.json"
        if grantee.intent:
            context["intent"] = grantee.intent
        if config.tenant:
            context["tenant"] = config.tenant
    return context


class TokenIssuer:
    """authlib token generator: a signed JWT access token, an opaque refresh token, context."""

    def __init__(self, config: AuthzConfig, key: RSAKey) -> None:
        self.config = config
        self.key = key

    def access_token(self, client: Client, grantee: Grantee | None, granted: list[str]) -> str:
        """A JWT access token for the FHIR server (``aud`` = the FHIR base URL).

        Without a grantee (a backend service's client_credentials grant) the subject is the
        client itself and the token carries no user and no patient.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            "aud": self.config.fhir_base,
            "iat": now,
            "exp": now + self.config.knobs.access_token_lifetime,
            "jti": new_token(16),
            "scope": " ".join(granted),
            "client_id": client.get_client_id(),
            "sub": client.get_client_id() if grantee is None else grantee.user_ref,
        }
        if grantee is not None:
            claims["fhirUser"] = fhir_user_url(self.config, grantee.user_ref)
            if grantee.patient and scopes.needs_patient(granted):
                claims["patient"] = grantee.patient
            if grantee.encounter:
                claims["encounter"] = grantee.encounter
        header = {"alg": SIGNING_ALG, "kid": self.key.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self.key, algorithms=[SIGNING_ALG])

    def __call__(
        self,
        grant_type: str,
        client: Client,
        user: Grantee | None,
        scope: str,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The token response body (authlib calls this for every grant)."""
        granted = scopes.split(scope)
        token: dict[str, Any] = {
            "access_token": self.access_token(client, user, granted),
            "token_type": "Bearer",
            "expires_in": self.config.knobs.access_token_lifetime,
            "scope": " ".join(granted),
        }
        if include_refresh_token and scopes.wants_refresh_token(granted):
            token["refresh_token"] = new_token(32)
        if user is not None:
            token.update(launch_context(self.config, user, granted))
        return token
