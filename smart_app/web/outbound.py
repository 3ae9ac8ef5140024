"""The only way the app makes HTTP requests: httpx with the SSRF guard on every request.

Redirects are not followed (a redirect could point anywhere); each request's host is resolved
and checked against the registration's allowed address classes before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from smart_app.web import metrics, netguard, request_ids

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class SharedTransport(httpx.BaseTransport):
    """One HTTP transport for every outbound client of an app: its TLS context is built once
    (building one per client cost tens of milliseconds per request). No connection is kept
    alive between requests, as before, so nothing stays open; a client closing leaves it open.
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request."""
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Called by each client that closes: the transport outlives them (see ``shutdown``)."""

    def shutdown(self) -> None:
        """Close the underlying pool."""
        self._inner.close()


def client(allow: Iterable[str], transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client whose every request passes ``netguard.check_url`` first."""
    allowed = tuple(allow)

    def guard(request: httpx.Request) -> None:
        netguard.check_url(str(request.url), allowed)
        request_id = request_ids.for_outbound()
        if request_id is not None:  # the FHIR server's logs can name the app's request
            request.headers[request_ids.HEADER] = request_id

    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        event_hooks={"request": [guard, metrics.timed], "response": [metrics.observed]},
        transport=transport,
        headers={"User-Agent": "attach-fhir"},
    )
