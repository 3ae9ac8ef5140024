"""SMART discovery documents, fetched through an injected ``httpx.Client``.

``{iss}/.well-known/smart-configuration`` first; older (SMART v1) servers announce their OAuth
endpoints only in the CapabilityStatement's ``oauth-uris`` extension. The web app's launch
(``smart_app.web.discovery_cache``), the backend-services token source and the conformance
check all read the documents the same way: a failed or non-JSON answer is "absent", never an
exception.
"""

from __future__ import annotations

from typing import Any

import httpx

from attach_fhir.capabilities import oauth_uris
from attach_fhir.errors import AttachError

WELL_KNOWN = ".well-known/smart-configuration"
FHIR_JSON = "application/fhir+json"


class DiscoveryError(AttachError):
    """Neither the SMART configuration nor the CapabilityStatement named the endpoint needed."""

    code = "discovery_failed"
    description = "The EHR's SMART configuration could not be read."
    status_code = 502


def fetch_json(http: httpx.Client, url: str, accept: str = "application/json") -> Any:
    """The JSON body of a 200 answer to ``GET url``, else None (transport errors included)."""
    try:
        response = http.get(url, headers={"Accept": accept})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def smart_configuration(iss: str, http: httpx.Client) -> dict[str, Any] | None:
    """The ``.well-known/smart-configuration`` document of ``iss``, or None when absent."""
    doc = fetch_json(http, f"{iss.rstrip('/')}/{WELL_KNOWN}")
    return doc if isinstance(doc, dict) else None


def capability_statement(iss: str, http: httpx.Client) -> dict[str, Any] | None:
    """The CapabilityStatement at ``{iss}/metadata``, or None when absent."""
    doc = fetch_json(http, f"{iss.rstrip('/')}/metadata", accept=FHIR_JSON)
    if isinstance(doc, dict) and doc.get("resourceType") == "CapabilityStatement":
        return doc
    return None


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def token_endpoint(iss: str, http: httpx.Client) -> tuple[str, dict[str, Any]]:
    """The token endpoint of ``iss`` and the SMART configuration it came from ({} if none)."""
    doc = smart_configuration(iss, http)
    if doc is not None and _http_url(doc.get("token_endpoint")):
        return str(doc["token_endpoint"]), doc
    uris = oauth_uris(capability_statement(iss, http))
    if _http_url(uris.get("token")):
        return uris["token"], {}
    raise DiscoveryError(
        "Neither .well-known/smart-configuration nor the CapabilityStatement names a "
        "token endpoint.",
        iss=iss,
    )
