"""FhirClient faults a real server will not produce on demand (httpx.MockTransport), the typed
error mapping, and the rule that nothing (least of all the token) leaves the base URL. The
client against a real server: tests/e2e/test_fhir_client_e2e.py."""

from __future__ import annotations

import calendar
import json
import posixpath
from collections.abc import Callable
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import (
    FhirClientError,
    FhirConflict,
    FhirError,
    FhirForbidden,
    FhirGone,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRateLimited,
    FhirReferenceRefused,
    FhirServerError,
    FhirTimeout,
    FhirTransportError,
    FhirUnauthorized,
    FhirUnprocessable,
    FhirUrlRefused,
    OperationOutcome,
    error_for_status,
    parse_retry_after,
)
from attach_fhir.fhir_url import normalise, remove_dot_segments
from attach_fhir.io.fhir_client import FhirClient, is_fhir_id

BASE = "https://fhir.example.org/r4"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "required",
            "diagnostics": "Observation.status is required",
            "expression": ["Observation.status"],
        },
        {"severity": "warning", "code": "informational", "details": {"text": "slow down"}},
    ],
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Wraps a handler and keeps every request that reached the 'network'."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


def client_for(handler: Handler, token: str | None = "tok-1") -> tuple[FhirClient, Recorder]:
    recorder = Recorder(handler)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return FhirClient(BASE, http, (lambda stale: token) if token else None), recorder


def bundle(entries: list[dict[str, object]], next_url: str | None = None) -> dict[str, object]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def test_dropped_connection_is_a_retryable_transport_error() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    client, _ = client_for(drop)
    with pytest.raises(FhirTransportError) as caught:
        client.create({"resourceType": "Observation", "status": "final"})
    assert caught.value.retryable is True
    assert isinstance(caught.value, AttachError)


def test_timeout_is_its_own_retryable_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    client, _ = client_for(slow)
    with pytest.raises(FhirTimeout) as caught:
        client.read("Patient", "1")
    assert caught.value.retryable is True


def test_503_with_retry_after_carries_seconds_and_outcome() -> None:
    client, _ = client_for(
        lambda r: httpx.Response(503, json=OUTCOME, headers={"Retry-After": "120"})
    )
    with pytest.raises(FhirServerError) as caught:
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    error = caught.value
    assert (error.http_status, error.retry_after, error.retryable) == (503, 120.0, True)
    assert error.outcome.codes() == ["required", "informational"]
    assert error.outcome.issues[0].diagnostics == "Observation.status is required"
    assert error.user_text() == (
        "The FHIR server had a problem.\n"
        "error: Observation.status is required (at Observation.status)\n"
        "warning: slow down"
    )
    # The loggable form holds codes only, never the server's diagnostics.
    assert error.log_text() == "fhir_server_error http=503 issues=required,informational"


def test_429_is_rate_limited_and_retryable() -> None:
    client, _ = client_for(lambda r: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(FhirRateLimited) as caught:
        client.read("Observation", "1")
    assert (caught.value.retry_after, caught.value.retryable) == (7.0, True)


def test_retry_after_as_http_date() -> None:
    now = calendar.timegm((2015, 10, 21, 7, 27, 0))
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, FhirClientError, False),
        (401, FhirUnauthorized, False),
        (403, FhirForbidden, False),
        (404, FhirNotFound, False),
        (405, FhirClientError, False),
        (409, FhirConflict, False),
        (410, FhirGone, False),
        (412, FhirPreconditionFailed, False),
        (422, FhirUnprocessable, False),
        (429, FhirRateLimited, True),
        (500, FhirServerError, True),
        (502, FhirServerError, True),
    ],
)
def test_status_mapping(status: int, cls: type[FhirError], retryable: bool) -> None:
    error = error_for_status(status, json.dumps(OUTCOME).encode())
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.http_status == status
    assert [i.severity for i in error.outcome.issues] == ["error", "warning"]


def test_body_that_is_not_an_outcome_gives_no_issues() -> None:
    assert OperationOutcome.from_body(b"<html>Bad gateway</html>").issues == ()
    assert OperationOutcome.from_body(b'{"resourceType": "Patient"}').issues == ()


def test_next_link_to_a_foreign_host_is_refused_before_sending() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = bundle(
            [{"resource": {"resourceType": "Observation", "id": "a"}}],
            next_url="https://evil.example.net/r4/Observation?page=2",
        )
        return httpx.Response(200, json=page)

    client, recorder = client_for(handler)
    seen: list[str] = []
    with pytest.raises(FhirUrlRefused):
        for resource in client.search("Observation", {"code": "x"}):
            seen.append(resource["id"])
    assert seen == ["a"]
    assert [r.url.host for r in recorder.requests] == ["fhir.example.org"]


def test_next_links_within_the_base_are_followed() -> None:
    pages = {
        "1": bundle([{"resource": {"id": "a"}}], f"{BASE}/Observation?page=2"),
        "2": bundle(
            [
                {"resource": {"id": "b"}},
                {"resource": {"id": "inc"}, "search": {"mode": "include"}},
            ],
            f"{BASE}/Observation?page=3",
        ),
        "3": bundle([{"resource": {"id": "c"}}]),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("page", "1")])

    client, recorder = client_for(handler)
    assert [r["id"] for r in client.search("Observation")] == ["a", "b", "c"]
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/r4/Patient/1",
        "https://fhir.example.org.evil.net/r4/Patient/1",
        "http://fhir.example.org/r4/Patient/1",  # scheme downgrade
        "https://fhir.example.org:8443/r4/Patient/1",  # other port
        "https://fhir.example.org/r4-other/Patient/1",  # path prefix, not a sub-path
        "//evil.example.net/r4/Patient/1",
        "urn:uuid:1234",
    ],
)
def test_absolute_urls_outside_the_base_are_refused(url: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "x"}))
    with pytest.raises(FhirUrlRefused):
        client.read_reference(url)
    assert recorder.requests == []


def test_in_base_absolute_url_and_default_port_are_accepted() -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "1"}))
    assert client.read_reference("https://FHIR.example.org:443/r4/Patient/1") == {"id": "1"}
    # A URL in the query does not make a relative path absolute.
    assert client.request("GET", "Patient/1?x=http://elsewhere").json() == {"id": "1"}
    assert [str(r.url) for r in recorder.requests] == [
        "https://fhir.example.org/r4/Patient/1",  # httpx drops the default port
        "https://fhir.example.org/r4/Patient/1?x=http://elsewhere",
    ]


def test_token_goes_to_the_base_only_even_when_redirected_away() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/r4/Patient/1":
            return httpx.Response(302, headers={"Location": "/r4/Patient/1/_history/2"})
        if request.url.path == "/r4/Patient/1/_history/2":
            return httpx.Response(
                307, headers={"Location": "https://evil.example.net/steal?from=fhir"}
            )
        return httpx.Response(200, json={"id": "stolen"})

    client, recorder = client_for(handler)
    with pytest.raises(FhirUrlRefused):
        client.read("Patient", "1")
    assert [(r.url.host, r.url.path) for r in recorder.requests] == [
        ("fhir.example.org", "/r4/Patient/1"),
        ("fhir.example.org", "/r4/Patient/1/_history/2"),
    ]
    assert {r.headers["Authorization"] for r in recorder.requests} == {"Bearer tok-1"}


def test_401_refreshes_once_then_retries_with_the_new_token() -> None:
    asked: list[str | None] = []

    def tokens(stale: str | None) -> str | None:
        asked.append(stale)
        return "fresh" if stale == "old" else ("old" if len(asked) == 1 else "fresh")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer fresh":
            return httpx.Response(200, json={"resourceType": "Patient", "id": "1"})
        return httpx.Response(401, json=OUTCOME)

    recorder = Recorder(handler)
    client = FhirClient(BASE, httpx.Client(transport=httpx.MockTransport(recorder)), tokens)
    assert client.read("Patient", "1")["id"] == "1"
    assert asked == [None, "old"]
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer old",
        "Bearer fresh",
    ]


def test_401_after_refresh_is_unauthorized_and_refresh_is_not_looped() -> None:
    asked: list[str | None] = []

    def tokens(stale: str | None) -> str | None:
        asked.append(stale)
        return "t2" if stale else "t1"

    recorder = Recorder(lambda r: httpx.Response(401))
    client = FhirClient(BASE, httpx.Client(transport=httpx.MockTransport(recorder)), tokens)
    with pytest.raises(FhirUnauthorized):
        client.read("Patient", "1")
    assert asked == [None, "t1"]
    assert len(recorder.requests) == 2


def test_no_token_source_sends_no_authorization() -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "1"}), token=None)
    client.read("Patient", "1")
    assert "Authorization" not in recorder.requests[0].headers


def test_bundle_kind_is_checked_before_sending() -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={}))
    with pytest.raises(ValueError, match="transaction"):
        client.transaction({"resourceType": "Bundle", "type": "batch"})
    assert recorder.requests == []


def test_search_by_post_sends_the_parameters_in_a_form_body_not_the_url() -> None:
    found = bundle([{"resource": {"resourceType": "Patient", "id": "p1"}}])
    client, recorder = client_for(lambda r: httpx.Response(200, json=found))
    page, method = client.search_first_page(
        "Patient", {"name": "Zoë O'Neil", "birthdate": "1997-10-22", "_count": "20"}
    )
    assert (page, method) == (found, "POST")
    sent = recorder.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", f"{BASE}/Patient/_search")
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # UTF-8 percent-encoded by hand: ë = C3 AB, ' = 27, space = +
    assert sent.content == b"name=Zo%C3%AB+O%27Neil&birthdate=1997-10-22&_count=20"
    assert sent.headers["Authorization"] == "Bearer tok-1"
    assert "Prefer" not in sent.headers


@pytest.mark.parametrize("status", [404, 405])
def test_search_falls_back_to_get_when_the_server_refuses_post(status: int) -> None:
    found = bundle([{"resource": {"resourceType": "Patient", "id": "p1"}}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(status, json=OUTCOME)
        return httpx.Response(200, json=found)

    client, recorder = client_for(handler)
    assert client.search_first_page("Patient", {"name": "Ada"}) == (found, "GET")
    assert [(r.method, str(r.url)) for r in recorder.requests] == [
        ("POST", f"{BASE}/Patient/_search"),
        ("GET", f"{BASE}/Patient?name=Ada"),
    ]


def test_search_by_post_refused_otherwise_is_an_error_not_a_get() -> None:
    client, recorder = client_for(lambda r: httpx.Response(403, json=OUTCOME))
    with pytest.raises(FhirForbidden):
        client.search_first_page("Patient", {"name": "Ada"})
    assert [r.method for r in recorder.requests] == ["POST"]


def test_search_by_get_when_asked_sends_no_post() -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json=bundle([])))
    assert client.search_first_page("Patient", [("identifier", "MRN-1")], by_post=False)[1] == "GET"
    assert [(r.method, str(r.url)) for r in recorder.requests] == [
        ("GET", f"{BASE}/Patient?identifier=MRN-1")
    ]


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_segments_are_no_ids(value: str) -> None:
    # R4's id pattern allows them, but as a path segment httpx resolves them: Task/.. would
    # read the base, Patient/. search every Patient.
    assert not is_fhir_id(value)
    assert is_fhir_id("...") and is_fhir_id(".a") and is_fhir_id("a..b")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ09-._/%?#\\ :", min_size=1, max_size=6))
def test_an_accepted_id_names_exactly_that_resource_in_the_request_path(value: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"resourceType": "Task"}))
    if not is_fhir_id(value):
        return
    client.read("Task", value)
    assert recorder.requests[0].url.raw_path.decode() == f"/r4/Task/{value}"


# -- the token never leaves the base (issue 14): the normaliser, then every way in -------------

H = "https://fhir.example.org"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (f"{H}/r4/Patient/1", f"{H}/r4/Patient/1"),
        (f"{H}/r4/Practitioner/../../../leak", f"{H}/leak"),
        (f"{H}/r4/Practitioner/%2e%2e/%2E%2E/%2e%2E/leak", f"{H}/leak"),
        (f"{H}/r4/a/.%2e/b", f"{H}/r4/b"),
        (f"{H}/r4/a/%2e./b", f"{H}/r4/b"),
        (f"{H}/r4/a\\..\\..\\x", f"{H}/x"),
        (f"{H}/r4/a/./b/.", f"{H}/r4/a/b/"),
        (f"{H}/r4/a/b/..", f"{H}/r4/a/"),
        (f"{H}/r4/a//../b", f"{H}/r4/a/b"),
        (f"{H}/../../x", f"{H}/x"),
        (f"{H}/r4/%7Eu/%41%2D", f"{H}/r4/~u/A-"),  # unreserved escapes decoded
        (f"{H}/r4/a%20b", f"{H}/r4/a%20b"),  # others kept
        (f"{H}/r4/a%3f", f"{H}/r4/a%3F"),
        ("HTTPS://fhir.example.org/r4/x#frag", f"{H}/r4/x"),
        (f"{H}/r4/x?next=/../../y&b=%2e", f"{H}/r4/x?next=/../../y&b=%2e"),  # query untouched
        (f"{H}/r4/a/...", f"{H}/r4/a/..."),  # three dots are a name, not a segment
        (f"{H}/r4/a/.b/..c", f"{H}/r4/a/.b/..c"),
        ("https://fhir.example.org", "https://fhir.example.org"),
    ],
)
def test_normalise_reads_the_path_as_a_server_would(url: str, normalised: str) -> None:
    assert normalise(url) == normalised


@pytest.mark.parametrize(
    "url",
    [
        f"{H}/r4/a%2f..%2f..%2fleak",  # a server decoding %2f sees /a/../../leak
        f"{H}/r4/a%2F..",
        f"{H}/r4/a%5c..%5cleak",
        f"{H}/r4/%252e%252e/leak",  # a second decoding makes %2e%2e
        f"{H}/r4/..;/..;/leak",  # Tomcat reads "..;" as ".."
        f"{H}/r4/a/.;x/b",
        f"{H}/r4/..%3b/leak",
        f"{H}/r4/a%00/b",
        f"{H}/r4/a%zz",
        f"{H}/r4/a%2",
        f"{H}/r4/a b",
        f"{H}/r4/caf\u00e9",
        f"{H}/r4/a\u2024\u2024/b",  # one-dot leaders, folded to dots by some servers
    ],
)
def test_normalise_refuses_what_a_server_may_decode_into_a_way_out(url: str) -> None:
    with pytest.raises(FhirUrlRefused):
        normalise(url)


def test_remove_dot_segments_follows_rfc_3986_examples() -> None:
    # RFC 3986 section 5.2.4's worked examples.
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("mid/content=5/../6") == "mid/content=5/../6"  # relative: as is
    assert remove_dot_segments("/b/c/../../../g") == "/g"


def leak_free(path: bytes) -> bool:
    """Whether a lenient server (decoding first, then resolving dots) stays under /r4."""
    served = posixpath.normpath(unquote(unquote(path.decode("ascii").split("?")[0])))
    return served == "/r4" or served.startswith("/r4/")


@pytest.mark.parametrize(
    "reference",
    [
        "Practitioner/../../../leak",
        f"{BASE}/../../leak",
        f"{BASE}/Practitioner/../../../leak",
        "Practitioner/%2e%2e/%2e%2e/%2e%2e/leak",
        f"{BASE}/%2E%2E/%2e%2e/leak",
        "Practitioner\\..\\..\\..\\leak",
        "Goal/../../../leak-goal",
        f"{BASE}/../r4/Patient/1",  # lands in the base, but is no reference
        "Patient/.",
        "Patient/..",
        "Patient",
        "Patient/1/2",
        "Patient/1/_history",
        "Patient/1/_history/..",
        "Patient/1?_format=xml",
        "Patient/1#x",
        "patient/1",
        "Pat%69ent/1",
        "../Patient/1",
        "",
    ],
)
def test_a_reference_that_is_no_type_and_id_is_refused_unsent(
    reference: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "leaked"}))
    with pytest.raises(FhirUrlRefused):
        client.read_reference(reference)
    assert recorder.requests == []
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert "tok-1" not in caplog.text and "leak" not in caplog.text


@pytest.mark.parametrize(
    ("resource_type", "resource_id"),
    [("Practitioner", "../../leak"), ("../Patient", "1"), ("Patient/..", "x"), ("Task", "%2e%2e")],
)
def test_read_refuses_a_type_or_id_of_another_shape(resource_type: str, resource_id: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "leaked"}))
    with pytest.raises(FhirReferenceRefused):
        client.read(resource_type, resource_id)
    assert recorder.requests == []


@pytest.mark.parametrize("version", ["..", "1/../../..", "%2e%2e", "1?x"])
def test_vread_refuses_a_version_of_another_shape(version: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "leaked"}))
    with pytest.raises(FhirReferenceRefused):
        client.vread("Task", "1", version)
    assert recorder.requests == []


@pytest.mark.parametrize("resource_type", ["../metadata", "Patient/..", "patient", "Obs%65rvation"])
def test_searches_and_writes_refuse_a_type_of_another_shape(resource_type: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json=bundle([])))
    with pytest.raises(FhirReferenceRefused):
        list(client.search(resource_type))
    with pytest.raises(FhirReferenceRefused):
        client.search_post(resource_type, {"a": "1"})
    with pytest.raises(FhirReferenceRefused):
        client.create({"resourceType": resource_type})
    with pytest.raises(FhirReferenceRefused):
        client.update({"resourceType": resource_type, "id": "1"})
    assert recorder.requests == []


def test_references_of_the_right_shape_are_read_at_exactly_that_path() -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={"id": "1"}))
    client.read_reference("Practitioner/p-1.a")
    client.read_reference(f"{BASE}/Goal/g1/_history/3")
    client.read_reference("https://FHIR.example.org:443/r4/Goal/g2")
    assert [r.url.raw_path for r in recorder.requests] == [
        b"/r4/Practitioner/p-1.a",
        b"/r4/Goal/g1/_history/3",
        b"/r4/Goal/g2",
    ]


@pytest.mark.parametrize(
    "next_url",
    [f"{BASE}/../../x", f"{BASE}/%2e%2e/%2e%2e/x", f"{BASE}/Observation/..%2f..%2f..%2fx"],
)
def test_a_next_link_out_of_the_base_path_is_refused_unsent(next_url: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bundle([{"resource": {"id": "a"}}], next_url))

    client, recorder = client_for(handler)
    with pytest.raises(FhirUrlRefused):
        list(client.search("Observation"))
    assert [r.url.raw_path for r in recorder.requests] == [b"/r4/Observation"]


def test_a_next_link_with_dot_segments_inside_the_base_is_sent_normalised() -> None:
    pages = {
        "1": bundle([{"resource": {"id": "a"}}], f"{BASE}/x/%2e%2e/Observation?page=2"),
        "2": bundle([{"resource": {"id": "b"}}]),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("page", "1")])

    client, recorder = client_for(handler)
    assert [r["id"] for r in client.search("Observation")] == ["a", "b"]
    assert recorder.requests[1].url.raw_path == b"/r4/Observation?page=2"


@pytest.mark.parametrize("location", ["/r4/../leak", "/r4/%2e%2e/leak", "../../leak"])
def test_a_redirect_out_of_the_base_path_is_refused_unsent(location: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": location})

    client, recorder = client_for(handler)
    with pytest.raises(FhirUrlRefused):
        client.read("Patient", "1")
    assert [r.url.raw_path for r in recorder.requests] == [b"/r4/Patient/1"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["..", ".", "/", "\\", "%2e", "%2E", "%2f", "%25", "a", "P", ";", "?"])
    ).map("".join)
)
def test_whatever_the_path_a_request_carrying_the_token_stays_under_the_base(path: str) -> None:
    client, recorder = client_for(lambda r: httpx.Response(200, json={}))
    try:
        client.request("GET", path)
    except FhirUrlRefused:
        assert recorder.requests == []
        return
    assert all(leak_free(r.url.raw_path) for r in recorder.requests)
