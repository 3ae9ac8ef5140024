"""The production WSGI entry point, for gunicorn: ``gunicorn 'smart_app.wsgi:create()' -c
deploy/gunicorn.conf.py`` (docs/deployment.md). Settings come from the ``ATTACH_*`` environment."""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING

from smart_app import create_app, stop
from smart_app.cli import path_only_access_log
from smart_app.web import request_ids

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def create() -> WSGIApplication:
    """The app of this worker process, with the path-only access log and JSON log lines
    (``ATTACH_LOG_FORMAT=text`` for plain ones); its outbox worker runs unless
    ``ATTACH_OUTBOX_WORKER=false`` (several instances may all run one: claims are shared)."""
    request_ids.configure_logging(os.environ.get("ATTACH_LOG_FORMAT", "json"))
    config = {} if "ATTACH_OUTBOX_WORKER" in os.environ else {"OUTBOX_WORKER": True}
    app = create_app(config)
    atexit.register(stop, app)  # the worker thread ends, the store closes, when gunicorn stops us
    return path_only_access_log(app)
