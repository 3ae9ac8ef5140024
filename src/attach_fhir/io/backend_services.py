"""SMART Backend Services: a system access token for jobs that run without a user.

The app authenticates as a registered backend client with the ``client_credentials`` grant and a
``private_key_jwt`` assertion (RS384 or ES384, fresh ``jti``, ``exp`` <= 5 minutes), at the token
endpoint discovered from ``{iss}/.well-known/smart-configuration`` (or the CapabilityStatement).
:class:`BackendTokenSource` caches the token until shortly before it expires and plugs into
``FhirClient(token_source=...)``; :class:`BackendClients` gives the outbox a client per server.
The configuration is a JSON file validated against ``schema/backend-services.schema.json``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jsonschema import Draft202012Validator

from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirUnauthorized
from attach_fhir.io.config_files import read_config_json
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.oauth_client import OAuth2Error, SigningKey, assertion_client, load_signing_key
from attach_fhir.io.outbox import target_base
from attach_fhir.io.smart_discovery import token_endpoint
from attach_fhir.io.system_audit import SystemAudit

log = logging.getLogger(__name__)

SCHEMA_RESOURCE = "schema/backend-services.schema.json"
#: Renew this long before ``exp`` (at most a quarter of the token's lifetime).
RENEW_MARGIN = 60.0
#: SMART requires ``expires_in``; a server that omits it gets this lifetime assumed.
ASSUMED_LIFETIME = 300


class BackendConfigError(AttachError):
    """The backend-services configuration file is invalid; the message names the bad key."""

    code = "backend_config_invalid"
    description = "The backend-services configuration is invalid."


class UnknownBackend(AttachError):
    """No backend-services entry for this FHIR server."""

    code = "unknown_backend"
    description = "No backend-services configuration names this FHIR server."


class BackendTokenError(FhirUnauthorized):
    """The token endpoint did not issue a system access token (the outbox waits and retries)."""

    code = "backend_token_failed"
    description = "The EHR did not issue a system access token to the app."

    def __init__(self, description: str | None = None, oauth_error: str | None = None) -> None:
        super().__init__(description)
        self.oauth_error = oauth_error

    def log_text(self) -> str:
        """The code and the OAuth error code (never the token or the assertion)."""
        return self.code + (f" oauth_error={self.oauth_error}" if self.oauth_error else "")


@dataclass(frozen=True)
class BackendConfig:
    """One EHR the app reaches as a backend service."""

    iss: str
    client_id: str
    key: SigningKey
    scopes: tuple[str, ...]

    @property
    def scope(self) -> str:
        """The scopes as the token request's space-separated ``scope``."""
        return " ".join(self.scopes)


def schema() -> dict[str, Any]:
    """The backend-services JSON schema shipped with the package."""
    data: dict[str, Any] = json.loads(files("attach_fhir").joinpath(SCHEMA_RESOURCE).read_text())
    return data


def schema_errors(data: Any) -> list[str]:
    """Every schema violation as ``"<json path>: <message>"``; a missing key is named."""
    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    out: list[str] = []
    for error in errors:
        path = error.json_path
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            out.extend(f"{path}.{key}: required" for key in missing)
        else:
            out.append(f"{path}: {error.message}")
    return out


def parse_backend_config(data: Any, base_dir: Path, source: str) -> list[BackendConfig]:
    """Validate parsed configuration data; key paths resolve against ``base_dir``."""
    problems = schema_errors(data)
    if problems:
        raise BackendConfigError(f"{source}: " + "; ".join(problems), problems=problems)
    configs: list[BackendConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        where = f"{source}: $[{i}]"
        iss = raw["iss"].rstrip("/")
        if iss in seen:
            raise BackendConfigError(f"{where}.iss: {iss} is listed twice")
        seen.add(iss)
        try:
            key = load_signing_key(
                base_dir / raw["private_key"], raw["alg"], raw.get("kid"), f"$[{i}].private_key"
            )
        except AttachError as exc:
            raise BackendConfigError(f"{source}: {exc.description}") from exc
        configs.append(BackendConfig(iss, raw["client_id"], key, tuple(raw["scopes"])))
    return configs


def load_backend_config(path: str | Path) -> list[BackendConfig]:
    """Read and validate a backend-services file; BackendConfigError names each bad key."""
    path = Path(path)
    data = read_config_json(path, "backend config", BackendConfigError)
    return parse_backend_config(data, path.parent, str(path))


def backend_for(configs: Sequence[BackendConfig], iss: str) -> BackendConfig:
    """The entry for ``iss`` (exact match, trailing slash ignored)."""
    wanted = iss.rstrip("/")
    for config in configs:
        if config.iss == wanted:
            return config
    raise UnknownBackend(iss=wanted)


class BackendTokenSource:
    """A system token for one EHR, cached until shortly before it expires (thread-safe).

    Called as FhirClient's ``token_source``: with ``None`` for the current token, with the
    token the server just refused to get a fresh one (once).
    """

    def __init__(
        self,
        config: BackendConfig,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token_endpoint: str | None = None
        self._token: str | None = None
        self._renew_at = 0.0
        self.granted_scope: str | None = None

    def __call__(self, rejected: str | None) -> str | None:
        """The cached token; a fresh one when ``rejected`` is the cached token."""
        with self._lock:
            if rejected is not None and rejected == self._token:
                self._token = None
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch()
            return self._token

    def access_token(self) -> str:
        """The current system access token (fetched when none is cached or it is due)."""
        token = self(None)
        assert token is not None
        return token

    def _endpoint(self) -> str:
        if self._token_endpoint is None:
            try:
                self._token_endpoint, _doc = token_endpoint(self.config.iss, self._http)
            except AttachError as exc:
                raise BackendTokenError(exc.description) from exc
        return self._token_endpoint

    def _fetch(self) -> None:
        endpoint = self._endpoint()
        client = assertion_client(self._http, self.config.client_id, self.config.key, endpoint)
        host = urlsplit(endpoint).netloc
        try:
            token = client.fetch_token(
                endpoint, grant_type="client_credentials", scope=self.config.scope
            )
        except OAuth2Error as exc:
            log.warning("backend token refused host=%s oauth_error=%s", host, exc.error)
            raise BackendTokenError(oauth_error=exc.error) from exc
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("backend token failed host=%s %s", host, type(exc).__name__)
            raise BackendTokenError(
                "The EHR's token endpoint could not be reached or answered badly."
            ) from exc
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise BackendTokenError("The EHR's token response carried no access token.")
        if str(token.get("token_type", "")).lower() != "bearer":
            raise BackendTokenError("The EHR issued a token type the app does not support.")
        lifetime = token.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = ASSUMED_LIFETIME
        self._token = access
        self._renew_at = self._clock() + lifetime - min(RENEW_MARGIN, lifetime / 4)
        self.granted_scope = token.get("scope") if isinstance(token.get("scope"), str) else None
        log.info(
            "backend token issued host=%s client_id=%s expires_in=%d",
            host,
            self.config.client_id,
            int(lifetime),
        )


def backend_fhir_client(config: BackendConfig, http: httpx.Client) -> FhirClient:
    """A FhirClient for ``config.iss`` that authorizes with the backend's system token."""
    return FhirClient(config.iss, http, token_source=BackendTokenSource(config, http))


class BackendClients:
    """The outbox's ClientFactory: a backend-authorized FhirClient per configured server.

    A target without a configuration gets ``None``: its items wait ("no token yet").
    """

    def __init__(
        self,
        configs: Sequence[BackendConfig],
        timeout: float = 30.0,
        audit: SystemAudit | None = None,
    ) -> None:
        self._configs = list(configs)
        self._timeout = timeout
        self._audit = audit
        self._http: list[httpx.Client] = []
        self._clients: dict[str, FhirClient] = {}

    def __call__(self, target: str) -> FhirClient | None:
        """The client for the target's base URL (whoever's item it is: a system token delivers
        any), or None when no backend entry names that server. With ``audit``, each of its
        FHIR requests is audited for the backend's client_id."""
        key = target_base(target)
        if key not in self._clients:
            try:
                config = backend_for(self._configs, key)
            except UnknownBackend:
                return None
            if self._audit is not None:
                http = self._audit.client(config.iss, config.client_id, self._timeout)
            else:
                http = httpx.Client(timeout=self._timeout)
            self._http.append(http)
            self._clients[key] = backend_fhir_client(config, http)
        return self._clients[key]

    def close(self) -> None:
        """Close the HTTP clients (and the audit trail given, which is now this factory's)."""
        for http in self._http:
            http.close()
        if self._audit is not None:
            self._audit.close()
