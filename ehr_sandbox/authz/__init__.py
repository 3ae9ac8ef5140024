"""The sandbox's SMART authorization server, built on authlib's server components.

``create_authz_app(config)`` returns a Flask app serving /authorize, /token, /jwks.json, the
OpenID and SMART discovery documents, and the EHR's own launch page at /ehr.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template

from .config import AuthzConfig, AuthzConfigError, Knobs, load_config
from .directory import Directory, DirectoryError
from .discovery import smart_configuration
from .keys import generate_signing_key, import_signing_key, public_jwks
from .server import SmartAuthorizationServer
from .state import AuthzState
from .storage import MemoryStore

__all__ = [
    "AuthzConfig",
    "AuthzConfigError",
    "AuthzState",
    "Knobs",
    "create_authz_app",
    "load_config",
    "public_jwks",
    "smart_configuration",
]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def create_authz_app(config: Mapping[str, Any] | AuthzConfig) -> Flask:
    """The authorization server app for a validated configuration."""
    from . import cds_client, ehr, views

    # authlib's grants log every issued token at DEBUG ("Issue token {...}"): never below INFO.
    logging.getLogger("authlib").setLevel(logging.INFO)
    settings = load_config(config)
    key = (
        import_signing_key(settings.signing_key)
        if settings.signing_key is not None
        else generate_signing_key()
    )
    store = MemoryStore()
    server = SmartAuthorizationServer(settings, key, store)
    server.setup()
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.extensions["smart_authz"] = AuthzState(
        config=settings,
        key=key,
        store=store,
        server=server,
        directory=Directory(settings, key, server.http),
    )
    app.register_blueprint(views.bp)
    app.register_blueprint(ehr.bp)
    app.register_blueprint(cds_client.bp)  # the patient record page calls CDS Hooks services

    @app.errorhandler(DirectoryError)
    def fhir_unavailable(exc: DirectoryError) -> tuple[str, int]:
        page = render_template("authz/error.html", error=exc.code, description=exc.description)
        return page, exc.status_code

    return app
