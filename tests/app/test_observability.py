"""Request ids (passed through or made), JSON log lines that carry them and no data, /readyz and
/metrics (off unless a token is set)."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from flask import Flask

from smart_app import create_app, stop
from smart_app.records import delivery
from smart_app.web.metrics import interaction
from smart_app.web.request_ids import JsonLines, RequestContext
from smart_app.web.token_keys import new_key
from tests.fixtures.postgres import fresh_schema

ISS = "http://127.0.0.1:9/fhir"  # never contacted
REGISTRATION = {
    "name": "local",
    "iss": [ISS],
    "client_id": "c",
    "client_type": "public",
    "allow_addresses": ["loopback"],
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    made = create_app(
        {
            "DATA_DIR": str(tmp_path),
            "REGISTRATIONS_DATA": {"registrations": [REGISTRATION]},
            "METRICS_TOKEN": "scrape-token-0123456789",
        }
    )
    yield made
    stop(made)


def outbox_of(app: Flask):  # type: ignore[no-untyped-def]
    return delivery.outbox_services(app).outbox.store


def test_a_sane_request_id_is_passed_through_and_others_replaced(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.2"}).headers["X-Request-Id"]
        == "lb-7f3a.2"
    )
    for bad in ("two words", "x" * 129, "a\u00e9b", ""):
        made = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made


def test_log_lines_are_json_with_the_request_id_and_no_query_data(app: Flask) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestContext())
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        response = app.test_client().get(
            "/launch?iss=http://evil.example/fhir&launch=L-SECRET-42",
            headers={"X-Request-Id": "req-1"},
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert response.status_code == 403  # an iss no registration names
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines, "the refusal is logged"
    for line in lines:
        assert set(line) >= {"ts", "level", "logger", "event", "request_id", "launch_id"}
        assert line["request_id"] == "req-1"
        assert line["ts"].endswith("+00:00")
    assert "L-SECRET-42" not in out.getvalue() and "evil.example" not in out.getvalue()


def test_readyz_is_ok_until_an_item_waits_too_long(app: Flask) -> None:
    client = app.test_client()
    assert (client.get("/readyz").status_code, client.get("/readyz").json) == (
        200,
        {"status": "ok"},
    )
    outbox_of(app).enqueue("s-old", ISS, {}, time.time() - 301)  # 1 s past the 300 s default
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json == {"status": "unavailable", "reasons": ["outbox lag over 300 s"]}


@pytest.mark.parametrize("component", ["outbox", "audit"])
def test_readyz_names_a_schema_no_longer_current(tmp_path: Path, component: str) -> None:
    with fresh_schema() as schema:
        app = create_app(
            {"DATABASE_URL": schema.dsn, "TOKEN_KEYS": new_key(), "DATA_DIR": str(tmp_path)}
        )
        try:
            assert app.test_client().get("/readyz").status_code == 200
            with psycopg.connect(schema.dsn, autocommit=True) as conn:
                conn.execute("DELETE FROM attach_schema WHERE component = %s", (component,))
            answer = app.test_client().get("/readyz")
            assert (answer.status_code, answer.json["reasons"]) == (
                503,
                [f"{component} schema not current"],
            )
        finally:
            stop(app)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_need_the_token_and_count_what_happened(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bearer = {"Authorization": "Bearer scrape-token-0123456789"}
    before = client.get("/metrics", headers=bearer).text
    outbox_of(app).enqueue("s-1", ISS, {}, time.time() - 60)
    client.get("/callback?state=nothing-of-ours&code=x")  # a callback the app refuses
    after = client.get("/metrics", headers=bearer)
    assert after.status_code == 200 and after.mimetype == "text/plain"
    refused = 'attach_launches_total{outcome="refused"}'
    assert metric(after.text, refused) == metric(before, refused) + 1
    assert metric(after.text, 'attach_outbox_items{state="queued"}') == 1
    assert 60 <= metric(after.text, "attach_outbox_oldest_pending_seconds") < 600

    unset = create_app({"DATA_DIR": str(tmp_path / "other")})
    try:
        assert unset.test_client().get("/metrics", headers=bearer).status_code == 404
    finally:
        stop(unset)


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "http://h/fhir/Patient/p-1", "read"),
        ("GET", "http://h/fhir/Observation?patient=p-1", "search"),
        ("POST", "http://h/fhir", "transaction"),
        ("POST", "http://h/fhir/QuestionnaireResponse", "create"),
        ("PUT", "http://h/fhir/Goal/g-1", "update"),
        ("GET", "http://h/fhir/metadata", "metadata"),
        ("POST", "http://h/auth/token", "token"),
    ],
)
def test_the_interaction_label_holds_no_id(method: str, url: str, expected: str) -> None:
    assert interaction(httpx.Request(method, url)) == expected


class HeaderRecorder(httpx.BaseTransport):
    """A real HTTP transport that remembers each request's X-Request-Id."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.ids.append(request.headers.get("X-Request-Id"))
        return self.inner.handle_request(request)


def test_each_request_to_the_fhir_server_carries_the_request_id_and_its_number(
    tmp_path: Path, fhir_server: Any
) -> None:
    base = fhir_server.base_url.rstrip("/")
    recorder = HeaderRecorder()
    made = create_app(
        {
            "DATA_DIR": str(tmp_path),
            "REGISTRATIONS_DATA": {"registrations": [{**REGISTRATION, "iss": [base]}]},
            "HTTP_TRANSPORT": recorder,
        }
    )
    try:
        client = made.test_client()
        first = client.get(f"/launch?iss={base}&launch=abc", headers={"X-Request-Id": "req-8"})
        assert first.status_code == 303 and recorder.ids == []  # the cookie first, no request
        client.get(first.headers["Location"], headers={"X-Request-Id": "req-9"})
    finally:
        stop(made)
        recorder.inner.close()
    assert recorder.ids, "the launch asked the server for its SMART configuration"
    assert recorder.ids == [f"req-9.{n}" for n in range(1, len(recorder.ids) + 1)]
