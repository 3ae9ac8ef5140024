"""``/readyz`` (may this instance take requests?) and ``/metrics`` (behind ``METRICS_TOKEN``),
and the counts of launches and submissions taken from the responses."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from flask import Flask, Response, abort, current_app, request

from attach_fhir.io import migrations
from attach_fhir.io.sql_store import schema_version
from smart_app.web import metrics

log = logging.getLogger(__name__)


def init_app(app: Flask, outbox_store: Any) -> None:
    """Add ``/readyz`` and ``/metrics``; ``outbox_store()`` returns the outbox store."""
    gauges = metrics.OutboxGauges(outbox_store)

    @app.get("/readyz")
    def readyz() -> Any:
        reasons = problems(app, outbox_store())
        if reasons:
            return {"status": "unavailable", "reasons": reasons}, 503
        return {"status": "ok"}

    @app.get("/metrics")
    def prometheus() -> Response:
        token = str(app.config.get("METRICS_TOKEN") or "")
        if not token:
            abort(404)  # not public: off unless a token is set
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            abort(401)
        return Response(metrics.exposition(gauges), mimetype="text/plain; version=0.0.4")

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.endpoint or ""
        ok = response.status_code < 400
        if endpoint == "launch.callback":
            metrics.LAUNCHES.labels("completed" if ok else "refused").inc()
        elif endpoint == "assess.fill" and request.method == "POST" and _form_read():
            if request.form.get("action", "submit") == "submit":
                metrics.SUBMISSIONS.labels(
                    "stored" if response.status_code == 303 else "refused"
                ).inc()
        return response


def _form_read() -> bool:
    """Whether the request's form was already parsed: a body refused unread (413) must never
    be read here, only to count it."""
    return "form" in request.__dict__


def problems(app: Flask, outbox: Any) -> list[str]:
    """Why this instance should not take requests now (none: ready)."""
    found = []
    store = app.extensions["attach_fhir"].store
    try:
        store.get("health", "probe")
        if schema_version(store, migrations.SESSIONS) < migrations.latest(migrations.SESSIONS):
            found.append("sessions schema not current")
    except Exception as exc:  # any failure of the store means not ready; say which kind
        found.append(f"session store unreachable ({type(exc).__name__})")
    trail = app.extensions.get("attach_audit")
    if trail is not None:
        try:
            if schema_version(trail.store, migrations.AUDIT) < migrations.latest(migrations.AUDIT):
                found.append("audit schema not current")
        except Exception as exc:
            found.append(f"audit store unreachable ({type(exc).__name__})")
    try:
        if schema_version(outbox, migrations.OUTBOX) < migrations.latest(migrations.OUTBOX):
            found.append("outbox schema not current")
        oldest = outbox.oldest_pending()
    except Exception as exc:
        found.append(f"outbox store unreachable ({type(exc).__name__})")
        return found
    limit = float(current_app.config.get("READY_OUTBOX_LAG", 300))
    if limit and oldest is not None and time.time() - oldest > limit:
        found.append(f"outbox lag over {limit:.0f} s")
    return found
