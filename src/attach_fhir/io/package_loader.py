"""Load the FHIR package's resources into a FHIR server, idempotently.

Each canonical resource is written by a conditional update on its ``url`` and ``version``
(``PUT [type]?url=...&version=...``), so the server holds exactly one copy per ``url|version``
and that copy is ours. A copy that already matches ours (every element but ``id``, ``text`` and
the server's own ``meta``; ``meta.profile`` is ours and counts) is left alone, so a second load
writes nothing and every ``versionId`` stays. Two copies under one ``url|version`` are an error
the loader does not guess its way through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from attach_fhir.errors import AttachError
from attach_fhir.io.fhir_client import FhirClient

Json = dict[str, Any]
Action = Literal["created", "updated", "unchanged"]
#: Elements a server may set or rewrite; they do not change what the resource says.
SERVER_KEYS = ("id", "meta", "text")
#: How many matches of a url+version search are looked at (one is expected).
MAX_MATCHES = 5


class DuplicateCanonical(AttachError):
    """The server holds more than one resource under one ``url|version``."""

    code = "duplicate_canonical"
    description = "The FHIR server holds more than one resource with this url and version."
    status_code = 409


@dataclass(frozen=True)
class Loaded:
    """What the load did with one resource."""

    resource_type: str
    url: str
    version: str
    action: Action
    id: str


def content(resource: Mapping[str, Any]) -> Json:
    """The resource without what a server sets (``id``, ``text``, ``meta`` but its profiles)."""
    out = {k: v for k, v in resource.items() if k not in SERVER_KEYS}
    profiles = (resource.get("meta") or {}).get("profile")
    if profiles:
        out["meta"] = {"profile": list(profiles)}
    return out


def load_resource(client: FhirClient, resource: Mapping[str, Any]) -> Loaded:
    """Make the server's copy of one canonical resource equal ours; report what changed."""
    rtype, url, version = str(resource["resourceType"]), str(resource["url"]), resource["version"]
    criteria = {"url": url, "version": str(version)}
    found = [
        r
        for r in islice(client.search(rtype, criteria), MAX_MATCHES)
        if r.get("url") == url and r.get("version") == version
    ]
    if len(found) > 1:
        raise DuplicateCanonical(
            f"The FHIR server holds {len(found)} {rtype} resources with url {url} and version "
            f"{version}; remove all but one, then load again.",
            canonical=f"{url}|{version}",
        )
    ours = content(resource)
    if found and content(found[0]) == ours:
        return Loaded(rtype, url, str(version), "unchanged", str(found[0].get("id")))
    # No id in the body: the server keeps the id of its copy, or assigns one to a new copy.
    response = client.request("PUT", rtype, params=criteria, json={"resourceType": rtype, **ours})
    written = response.json() if response.content else {}
    action: Action = "updated" if found else "created"
    return Loaded(rtype, url, str(version), action, str(written.get("id", "")))


def load_package(
    client: FhirClient,
    resources: Iterable[Mapping[str, Any]],
    progress: Callable[[Loaded], None] | None = None,
) -> list[Loaded]:
    """Load every resource in order (definitions before the Questionnaires that use them is
    the caller's order); ``progress`` hears of each as it is done."""
    out = []
    for resource in resources:
        loaded = load_resource(client, resource)
        out.append(loaded)
        if progress is not None:
            progress(loaded)
    return out
