"""The attach-fhir web app: a Flask app factory with one blueprint per user flow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``ATTACH_*`` environment, then ``test_config``."""
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=True,
    )
    app.config.from_prefixed_env("ATTACH")
    if test_config is not None:
        app.config.from_mapping(test_config)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
