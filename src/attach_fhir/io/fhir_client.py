"""One small FHIR R4 REST client over an injected ``httpx.Client`` (fhirpy's shape, httpx's IO).

Every request goes to the client's base URL: each URL (relative paths, ``next`` links,
redirects) is normalised first (:mod:`attach_fhir.fhir_url`), checked against the base, and sent
as checked; one that points elsewhere is refused before anything is sent, so the bearer token
never leaves the base, not even for another path of the same host. Reads take a resource type
and a FHIR id, never a free path. Errors map onto the typed classes of
:mod:`attach_fhir.fhir_errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from attach_fhir.fhir_errors import (
    FhirError,
    FhirReferenceRefused,
    FhirTimeout,
    FhirTransportError,
    FhirUrlRefused,
    error_for_status,
)
from attach_fhir.fhir_url import (
    checked_path,
    is_fhir_id,
    is_resource_type,
    normalise,
    reference_path,
)

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"

#: Supplies the bearer token. Called with ``None`` for the current token; called with the token
#: the server just rejected (401) to refresh it: return a new token to retry once, or ``None``.
TokenSource = Callable[[str | None], str | None]

Params = Mapping[str, str | int | list[str]] | list[tuple[str, str]]

_MAX_REDIRECTS = 3
_MAX_PAGES = 1000
_DEFAULT_PORTS = {"http": 80, "https": 443}


__all__ = ["FhirClient", "TokenSource", "is_fhir_id"]


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    """Scheme, host, port and path as httpx will send them (so the check sees what is sent)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "", "", -1, ""
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    path = parsed.raw_path.split(b"?", 1)[0].decode("ascii")
    return parsed.scheme, parsed.host.lower(), port, path.rstrip("/")


def _refused(exc: FhirUrlRefused) -> FhirUrlRefused:
    # The URL stays out of the log: it may name a patient, and only the reason is needed.
    log.warning("fhir.url refused code=%s", exc.code)
    return exc


class FhirClient:
    """FHIR REST interactions against one base URL."""

    def __init__(
        self, base_url: str, http: httpx.Client, token_source: TokenSource | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FhirUrlRefused("The FHIR base URL must be an absolute http(s) URL.")
        self.base_url = normalise(base_url).rstrip("/")
        self._base = _origin_and_path(self.base_url)
        self._http = http
        self._token_source = token_source

    # -- URLs ---------------------------------------------------------------------------------

    def is_within_base(self, url: str) -> bool:
        """Whether an absolute URL, normalised, lies under this client's base (same origin,
        path prefix)."""
        try:
            url = normalise(url)
        except FhirUrlRefused:
            return False
        scheme, host, port, path = _origin_and_path(url)
        b_scheme, b_host, b_port, b_path = self._base
        if (scheme, host, port) != (b_scheme, b_host, b_port):
            return False
        return path == b_path or path.startswith(b_path + "/")

    def url(self, path_or_url: str) -> str:
        """The normalised absolute URL of a relative path or an absolute URL, the one to send;
        FhirUrlRefused (logged without the URL) unless it lies under the base."""
        absolute = path_or_url
        if not (urlsplit(path_or_url).scheme or path_or_url.startswith("//")):
            absolute = (
                f"{self.base_url}/{path_or_url.lstrip('/')}" if path_or_url else self.base_url
            )
        try:
            url = normalise(absolute)
        except FhirUrlRefused as exc:
            raise _refused(exc) from None
        if not self.is_within_base(url):
            raise _refused(FhirUrlRefused())
        return url

    def _path(self, resource_type: str, resource_id: str, *history: str) -> str:
        try:
            return checked_path(resource_type, resource_id, *history)
        except FhirUrlRefused as exc:
            raise _refused(exc) from None

    def _type(self, resource_type: str) -> str:
        if not is_resource_type(resource_type):
            raise _refused(FhirReferenceRefused("This is not a FHIR resource type."))
        return resource_type

    # -- interactions -------------------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        """The server's CapabilityStatement (``GET [base]/metadata``)."""
        return self._json(self.request("GET", "metadata"))

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [type]/[id]``; FhirReferenceRefused for a type or id of another shape."""
        return self._json(self.request("GET", self._path(resource_type, resource_id)))

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """``GET [type]/[id]/_history/[vid]``."""
        path = self._path(resource_type, resource_id, "_history", version_id)
        return self._json(self.request("GET", path))

    def history(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [type]/[id]/_history``: the first page of the resource's history Bundle."""
        path = f"{self._path(resource_type, resource_id)}/_history"
        return self._json(self.request("GET", path))

    def read_reference(self, reference: str) -> dict[str, Any]:
        """Read a relative (``Type/id[/_history/vid]``) or in-base absolute reference; any other
        reference (a query, dot segments, escapes, another server) is refused unsent."""
        relative = reference
        parts = urlsplit(reference)
        if parts.scheme or reference.startswith("//"):
            base_path = self._base[3] + "/"
            if not self.is_within_base(reference) or not parts.path.startswith(base_path):
                raise _refused(FhirUrlRefused())
            relative = parts.path[len(base_path) :] + ("?" if parts.query or parts.fragment else "")
        try:
            path = reference_path(relative)
        except FhirUrlRefused as exc:
            raise _refused(exc) from None
        return self._json(self.request("GET", path))

    def search(self, resource_type: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """Yield every matching resource, following ``next`` links (only within the base)."""
        for bundle in self.search_pages(resource_type, params):
            entries = bundle.get("entry")
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue  # not an entry at all: nothing in it can be read
                search = entry.get("search")
                mode = search.get("mode", "match") if isinstance(search, dict) else "match"
                if mode == "match" and isinstance(entry.get("resource"), dict):
                    yield entry["resource"]

    def search_pages(
        self, resource_type: str, params: Params | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield each searchset Bundle page, following ``next`` links within the base."""
        bundle = self._json(self.request("GET", self._type(resource_type), params=params))
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            yield bundle
            links = bundle.get("link")
            link = next(
                (
                    ln.get("url")
                    for ln in (links if isinstance(links, list) else [])
                    if isinstance(ln, dict) and ln.get("relation") == "next"
                ),
                None,
            )
            if not isinstance(link, str) or not link or link in seen:
                return
            seen.add(link)
            bundle = self._json(self.request("GET", link))

    def search_post(self, resource_type: str, params: Params) -> dict[str, Any]:
        """One searchset page by ``POST [type]/_search``, the parameters form-encoded in the
        body: they stay out of URLs, so out of every access log between here and the server."""
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        body = urlencode(pairs, doseq=True).encode("ascii")
        path = f"{self._type(resource_type)}/_search"
        response = self.request("POST", path, content=body, headers={"Content-Type": FORM})
        return self._json(response)

    def search_first_page(
        self, resource_type: str, params: Params, *, by_post: bool = True
    ) -> tuple[dict[str, Any], str]:
        """The first searchset page and the method that fetched it (``POST`` or ``GET``).

        By POST first (the FHIR RESTful API defines search as ``GET [type]?...`` and as ``POST
        [type]/_search``) unless ``by_post`` is false; by GET when the server answers the POST
        with 404 or 405. Later pages are not followed: their ``next`` links are GET URLs.
        """
        if by_post:
            try:
                return self.search_post(resource_type, params), "POST"
            except FhirError as exc:
                if exc.http_status not in (404, 405):
                    raise
                log.info("fhir search by POST refused http=%s: by GET", exc.http_status)
        return self._json(self.request("GET", self._type(resource_type), params=params)), "GET"

    def create(
        self, resource: Mapping[str, Any], if_none_exist: str | None = None
    ) -> dict[str, Any]:
        """``POST [type]``, conditional on ``If-None-Exist`` when given; returns the resource."""
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        path = self._type(str(resource["resourceType"]))
        response = self.request("POST", path, json=resource, headers=headers)
        return self._written(response)

    def update(self, resource: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]:
        """``PUT [type]/[id]``; ``if_match`` is a version id (sent as a weak ETag)."""
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else {}
        path = self._path(str(resource["resourceType"]), str(resource["id"]))
        return self._written(self.request("PUT", path, json=resource, headers=headers))

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``transaction`` Bundle to the base; returns the transaction-response."""
        return self._post_bundle(bundle, "transaction")

    def batch(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``batch`` Bundle to the base; returns the batch-response."""
        return self._post_bundle(bundle, "batch")

    # -- plumbing -----------------------------------------------------------------------------

    def _post_bundle(self, bundle: Mapping[str, Any], kind: str) -> dict[str, Any]:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
            raise ValueError(f"expected a Bundle of type {kind!r}")
        return self._json(self.request("POST", "", json=bundle))

    def _written(self, response: httpx.Response) -> dict[str, Any]:
        if response.content:
            return self._json(response)
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if not location:
            return {}
        # Location is [base]/[type]/[id]/_history/[vid]; read the current version back.
        path = location.split("/_history/")[0]
        return self._json(self.request("GET", path))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise FhirError("The FHIR server answered with something other than JSON.") from exc
        if not isinstance(data, dict):
            raise FhirError("The FHIR server answered with something other than a resource.")
        return data

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request under the base (refresh-once on 401); raise typed errors on failure.

        ``json`` is sent as FHIR JSON; ``content`` as it is, typed by ``headers``;
        ``extensions`` reach the transport (the audit trail's name for a Bulk Data step)."""
        url = self.url(path_or_url)
        token = self._token_source(None) if self._token_source else None
        body = _Body(json, content)
        response = self._send(method, url, params, body, headers, token, extensions)
        if response.status_code == 401 and self._token_source and token:
            fresh = self._token_source(token)
            if fresh and fresh != token:
                response = self._send(method, url, params, body, headers, fresh, extensions)
        if 300 <= response.status_code < 400:
            raise FhirError("The FHIR server answered with an unexpected redirect.")
        if response.status_code >= 400:
            error = error_for_status(
                response.status_code, response.content, response.headers.get("Retry-After")
            )
            log.info("fhir %s %s -> %s", method, _path_only(url), error.log_text())
            raise error
        return response

    def _send(
        self,
        method: str,
        url: str,
        params: Params | None,
        body: _Body,
        headers: Mapping[str, str] | None,
        token: str | None,
        extensions: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        all_headers = {"Accept": FHIR_JSON}
        if body.json is not None:
            all_headers["Content-Type"] = FHIR_JSON
            all_headers["Prefer"] = "return=representation"
        all_headers.update(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                response = self._http.request(
                    method,
                    url,
                    params=params,  # type: ignore[arg-type]
                    json=body.json,
                    content=body.content,
                    headers=all_headers,
                    follow_redirects=False,
                    extensions=dict(extensions) if extensions else None,
                )
            except httpx.TimeoutException as exc:
                raise FhirTimeout() from exc
            except httpx.TransportError as exc:
                raise FhirTransportError() from exc
            if not (response.is_redirect and method == "GET" and response.next_request):
                return response
            # Follow redirects ourselves so a hop to another host can never carry the token.
            url = self.url(str(response.next_request.url))
            params = None
        raise FhirTransportError("The FHIR server redirected too many times.")


class _Body:
    """A request body: a FHIR JSON resource, or bytes typed by the caller's headers."""

    __slots__ = ("content", "json")

    def __init__(self, json: Any, content: bytes | None) -> None:
        if json is not None and content is not None:
            raise ValueError("a request has one body: json or content")
        self.json = json
        self.content = content


def _path_only(url: str) -> str:
    """The URL path without query (search parameters may hold patient data)."""
    return urlsplit(url).path
