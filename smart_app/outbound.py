"""The only way the app makes HTTP requests: httpx with the SSRF guard on every request.

Redirects are not followed (a redirect could point anywhere); each request's host is resolved
and checked against the registration's allowed address classes before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from smart_app import netguard

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def client(allow: Iterable[str], transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client whose every request passes ``netguard.check_url`` first."""
    allowed = tuple(allow)

    def guard(request: httpx.Request) -> None:
        netguard.check_url(str(request.url), allowed)

    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        event_hooks={"request": [guard]},
        transport=transport,
        headers={"User-Agent": "attach-fhir"},
    )
