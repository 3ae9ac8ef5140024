"""Prometheus metrics (``prometheus_client``; multiprocess mode under gunicorn when
``PROMETHEUS_MULTIPROC_DIR`` is set): launches, submissions, FHIR request latency, token refreshes;
the outbox's depth and oldest item are read from the store at each scrape."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

LAUNCHES = Counter(
    "attach_launches_total", "SMART launch callbacks, by outcome (completed, refused)", ["outcome"]
)
SUBMISSIONS = Counter(
    "attach_submissions_total", "Forms submitted, by outcome (stored, refused)", ["outcome"]
)
TOKEN_REFRESHES = Counter(
    "attach_token_refreshes_total", "Access token refreshes, by outcome (ok, failed)", ["outcome"]
)
FHIR_SECONDS = Histogram(
    "attach_fhir_request_seconds",
    "FHIR and OAuth requests the app makes, by interaction and HTTP status",
    ["interaction", "status"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def interaction(request: httpx.Request) -> str:
    """The FHIR interaction a request is (read, search, create, update, transaction, ...), from
    its method and path shape only: never an id or a query value."""
    parts = [p for p in request.url.path.split("/") if p]
    last = parts[-1] if parts else ""
    method = request.method
    if last in {"token", "smart-configuration", "metadata"} or last.startswith("$"):
        return last.lstrip("$")
    if method == "GET":
        return (
            "read" if len(parts) >= 2 and _ID.match(last) and parts[-2][:1].isupper() else "search"
        )
    if method == "POST":
        return "create" if last[:1].isupper() else "transaction"
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


def timed(request: httpx.Request) -> None:
    """httpx request hook: note when the request left."""
    request.extensions["attach_started"] = time.perf_counter()


def observed(response: httpx.Response) -> None:
    """httpx response hook: the request's latency, by interaction and status."""
    started = response.request.extensions.get("attach_started")
    if started is not None:
        FHIR_SECONDS.labels(interaction(response.request), str(response.status_code)).observe(
            time.perf_counter() - started
        )


class OutboxGauges:
    """The outbox's depth by state and the age of its oldest pending item, read at scrape."""

    def __init__(self, store: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, from the store as it is now."""
        store = self.store()
        depth = GaugeMetricFamily("attach_outbox_items", "Outbox items by state", labels=["state"])
        for state, n in store.counts().items():
            depth.add_metric([state], n)
        yield depth
        oldest = store.oldest_pending()
        age = 0.0 if oldest is None else max(0.0, self.clock() - oldest)
        yield GaugeMetricFamily(
            "attach_outbox_oldest_pending_seconds", "Age of the oldest undelivered item", value=age
        )


def exposition(outbox: OutboxGauges) -> bytes:
    """The metrics of this process (or of every gunicorn worker, in multiprocess mode) and the
    outbox gauges, in the Prometheus text format."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for metric in (LAUNCHES, SUBMISSIONS, TOKEN_REFRESHES, FHIR_SECONDS):
            registry.register(metric)
    registry.register(outbox)
    return generate_latest(registry)
