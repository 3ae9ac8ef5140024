"""Request ids and structured logs: each request carries an id (the proxy's ``X-Request-Id`` if it
sent a sane one), echoed to the browser, sent to the FHIR server, and put in every log line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-Id"
#: What an incoming id may be: short, printable, no separators a log parser would trip on.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def init_app(app: Flask) -> None:
    """Give each request its id and send it back in the response's ``X-Request-Id``."""

    @app.before_request
    def assign() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if _SANE.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response


def current() -> str | None:
    """The id of the request being served, if any."""
    return g.get("request_id") if has_request_context() else None


def for_outbound() -> str | None:
    """The id for the next request the app sends while serving this one: ``<id>.<n>`` for the
    n-th, so that each FHIR interaction has its own (the audit trail records each) and every
    one names the request it served."""
    request_id = current()
    if request_id is None:
        return None
    g.outbound_count = n = int(g.get("outbound_count", 0)) + 1
    return f"{request_id}.{n}"


def launch_id() -> str | None:
    """The launch context id of the page being served (``/app/<ctx>/...``), if any."""
    if not has_request_context() or not request.view_args:
        return None
    ctx = request.view_args.get("ctx")
    return ctx if isinstance(ctx, str) else None


class RequestContext(logging.Filter):
    """Adds ``request_id`` and ``launch_id`` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        record.request_id = current()
        record.launch_id = launch_id()
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line: UTC time, level, logger, the event, request and launch ids."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (exceptions as their type only: no data)."""
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "launch_id": getattr(record, "launch_id", None),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"))


def configure_logging(kind: str = "json", level: int = logging.INFO) -> logging.Handler:
    """Send the root logger's records to stderr, as JSON lines (``json``) or text."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestContext())
    if kind == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(message)s request_id=%(request_id)s")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    return handler
