"""The attach-fhir web app: a Flask app factory with one blueprint per user flow."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError

from attach_fhir.errors import AttachError
from attach_fhir.io.discovery_store import PostgresDiscoveryStore
from attach_fhir.io.sql_store import StoreUnavailable, is_shared, store_url
from smart_app.records import audit_copies, delivery, follow_ups
from smart_app.web import (
    audit,
    filters,
    health,
    hosts,
    kept_forms,
    outbound,
    record_reading,
    request_ids,
    request_limits,
    security,
    services,
    session_purge,
)
from smart_app.web import registrations as registrations_module
from smart_app.web.discovery_cache import Cache, DiscoveryCache, SharedDiscoveryCache
from smart_app.web.errors import AuthorizationExpired, ConfigurationError
from smart_app.web.read_cache import ReadCache
from smart_app.web.session_store import open_configured

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SECURE": True,
    # Where the embedded SQLite stores live (ATTACH_DATA_DIR); default: the same directory the
    # `attach-fhir outbox` commands use, $XDG_DATA_HOME/attach-fhir (~/.local/share/attach-fhir).
    "DATA_DIR": None,
    # "postgresql://..." -> every store in PostgreSQL (its schema made by `attach-fhir db
    # upgrade`); None -> SQLite files in DATA_DIR. SESSION_STORE and OUTBOX_DSN override it.
    "DATABASE_URL": None,
    # None/"sqlite" -> SQLite in DATA_DIR; "postgresql://..." -> PostgreSQL (same interface).
    "SESSION_STORE": None,
    # Keys sealing session records (tokens) at rest, newest first: TOKEN_KEYS (comma separated)
    # or TOKEN_KEY_FILE (one a line); neither: DATA_DIR/token-keys, made at first start.
    "TOKEN_KEYS": None,
    "TOKEN_KEY_FILE": None,
    # Path of the registrations JSON file (ATTACH_REGISTRATIONS), or REGISTRATIONS_DATA (dict).
    "REGISTRATIONS": None,
    "REGISTRATIONS_DATA": None,
    # Public base URL (redirect URI and JWKS URL) when behind a proxy; else from the request,
    # whose Host must then be a loopback name (see smart_app.web.hosts).
    "PUBLIC_URL": None,
    # Host names the app answers (ATTACH_TRUSTED_HOSTS); default: see hosts.trusted_hosts.
    "TRUSTED_HOSTS": None,
    # Extra origins allowed to frame the app (space-separated), beside the registrations' own.
    "FRAME_ANCESTORS": "",
    # "Partitioned" on the cookie for every response, not only iframe navigations.
    "COOKIE_PARTITIONED": False,
    "BROWSER_SESSION_TTL": 12 * 3600,
    "STATE_TTL": 600,
    "LAUNCH_TTL": 12 * 3600,
    "DISCOVERY_TTL": 3600,
    # Tests only: the shared discovery cache's clock (seconds since the epoch).
    "DISCOVERY_CLOCK": None,
    "TOKEN_REFRESH_LEEWAY": 60,
    # Seconds between purges of expired session records, per process; 0: never (the store grows).
    "SESSION_PURGE_INTERVAL": 300,
    # Request bodies, refused with 413 before parsing (measurements: smart_app.web.request_limits).
    "MAX_CONTENT_LENGTH": request_limits.MAX_CONTENT_LENGTH,
    "MAX_FORM_MEMORY_SIZE": request_limits.MAX_FORM_MEMORY_SIZE,
    "MAX_FORM_PARTS": request_limits.MAX_FORM_PARTS,
    # Seconds a launch keeps its Patient, CapabilityStatement and Questionnaire reads; 0: none.
    "READ_CACHE_SECONDS": 60,
    # /metrics answers only a request with "Authorization: Bearer <METRICS_TOKEN>"; unset: 404.
    "METRICS_TOKEN": None,
    # /readyz answers 503 while the oldest undelivered submission is older (seconds; 0: never).
    "READY_OUTBOX_LAG": 300,
    # Tests only: an httpx transport for the outbound client (faults a real server cannot make).
    "HTTP_TRANSPORT": None,
    # The audit trail (docs/audit.md): None -> DATABASE_URL, else audit.sqlite3 in DATA_DIR;
    # AUDIT_OBSERVER names this instance in each record's source (default "attach-fhir").
    "AUDIT_STORE": None,
    "AUDIT_OBSERVER": None,
    # Also queue each launch's records for its EHR, where it accepts AuditEvent create.
    "AUDIT_TO_EHR": False,
    # Tests only: the audit trail's clock (seconds since the epoch).
    "AUDIT_CLOCK": None,
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``ATTACH_*`` environment, then ``test_config``."""
    app = Flask(__name__)
    # httpx logs every request URL at INFO; ours carry patient ids in paths and queries.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # authlib logs whole token responses at DEBUG ("Issue token {...}"): never below INFO.
    logging.getLogger("authlib").setLevel(logging.INFO)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("ATTACH")
    if test_config is not None:
        app.config.from_mapping(test_config)

    app.config["PUBLIC_URL"] = hosts.check_public_url(app.config["PUBLIC_URL"])
    app.config["TRUSTED_HOSTS"] = hosts.trusted_hosts(app.config)
    regs = _load_registrations(app)
    store = open_configured(app.config)  # also resolves DATA_DIR and makes it 0700
    trail = audit.init_app(app, app.config["DATA_DIR"])
    services.init_app(
        app,
        services.Services(
            registrations=regs,
            store=store,
            cache=_discovery_cache(app),
            # One transport (one TLS context) for every outbound client; tests may inject one.
            transport=app.config["HTTP_TRANSPORT"] or outbound.SharedTransport(),
            reads=ReadCache(_seconds(app, "READ_CACHE_SECONDS")),
            audit=trail,
        ),
    )
    frame_ancestors = sorted({*str(app.config["FRAME_ANCESTORS"]).split(), *regs.frame_ancestors()})
    session_purge.init_app(app, store, _seconds(app, "SESSION_PURGE_INTERVAL"))
    request_ids.init_app(app)  # first: every later log line of the request carries its id
    request_limits.init_app(app)  # a body too large is refused before the CSRF check
    security.init_app(app, frame_ancestors)
    record_reading.init_app(app)
    filters.init_app(app)
    _register_error_handlers(app)
    # The outbox (and its worker if OUTBOX_WORKER) belongs to the app, not to one flow.
    outbox = delivery.init_app(app, after_delivery=follow_ups.after_delivery)
    health.init_app(app, lambda: outbox.outbox.store)  # /readyz, /metrics
    if app.config["AUDIT_TO_EHR"]:
        audit_copies.init_app(app, trail)
    _register_blueprints(app)

    @app.teardown_appcontext
    def close_outbound(_exc: BaseException | None) -> None:
        for client in g.pop("attach_http", []):
            client.close()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _register_blueprints(app: Flask) -> None:
    """One blueprint per user flow. Add new flows here (e.g. assess, review, cds)."""
    from smart_app import assess, assign, careplan, cds, launch, patient, picker, review

    app.register_blueprint(launch.bp)
    app.register_blueprint(picker.bp)  # the patient picker, where the EHR gave no patient
    app.register_blueprint(assess.bp)
    app.register_blueprint(assign.bp)  # a clinician asks the patient to fill one in at home
    app.register_blueprint(review.bp)
    app.register_blueprint(cds.bp)  # CDS Hooks: /cds-services (config: CDS_* keys, see module)
    app.register_blueprint(careplan.bp)  # loads and validates ATTACH_CAREPLAN_RULES
    app.register_blueprint(patient.bp)


def _discovery_cache(app: Flask) -> Cache:
    """Shared by every instance where the sessions are (PostgreSQL), else per process."""
    ttl = float(app.config["DISCOVERY_TTL"])
    url = store_url(app.config.get("SESSION_STORE"), app.config.get("DATABASE_URL"))
    if not is_shared(url):
        return DiscoveryCache(ttl)
    assert url is not None
    clock = app.config["DISCOVERY_CLOCK"] or time.time
    return SharedDiscoveryCache(PostgresDiscoveryStore(url), ttl, clock)


def _seconds(app: Flask, key: str) -> float:
    """A setting that is a number of seconds, zero or more (else the app does not start)."""
    value = app.config[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"ATTACH_{key} must be a number of seconds, 0 or more.")
    return float(value)


def _load_registrations(app: Flask) -> registrations_module.Registrations:
    """Registrations from REGISTRATIONS_DATA (a mapping) or the REGISTRATIONS file."""
    data = app.config["REGISTRATIONS_DATA"]
    if data is not None:
        base = Path(app.config.get("REGISTRATIONS_BASE_DIR") or os.getcwd())
        return registrations_module.parse(data, base_dir=base, source="REGISTRATIONS_DATA")
    path = app.config["REGISTRATIONS"]
    if not path:
        # Every launch is refused (unknown iss); `attach-fhir serve` always passes a file.
        log.warning("app.start registrations=none: set ATTACH_REGISTRATIONS to allow launches")
        return registrations_module.Registrations(items=())
    return registrations_module.load(path)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def _register_error_handlers(app: Flask) -> None:
    """Map every AttachError (and HTTP error) to one page, or JSON for API clients."""

    @app.errorhandler(AttachError)
    def attach_error(exc: AttachError) -> Any:
        log.info("request.error code=%s", exc.code)
        status = int(getattr(exc, "status_code", 400))
        note = None
        if isinstance(exc, AuthorizationExpired) and kept_forms.keep_posted_form():
            note = exc.kept_note
        headers = {}
        resend: list[tuple[str, str]] = []
        if isinstance(exc, StoreUnavailable):
            # Nothing was stored, and the store cannot keep the fields either: the page carries
            # them back to the browser, to post again once the store answers.
            headers["Retry-After"] = str(exc.retry_after)
            resend = kept_forms.resendable()
        if _wants_json():
            body = jsonify({"code": exc.code, "description": exc.description})
            return body, status, headers
        page = render_template(
            "error.html",
            code=exc.code,
            description=exc.description,
            note=note,
            resend=resend,
            resend_to=request.full_path.rstrip("?"),
        )
        return page, status, headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if isinstance(exc, SecurityError):
            # A Host the app does not answer: no URL can be built, so no page; the Host itself
            # is not repeated (it came from the request).
            log.info("request.error code=untrusted_host")
            text = "The request's Host header names a host this app does not serve.\n"
            return Response(text, 400, mimetype="text/plain")
        status = exc.code or 500
        description = exc.description or exc.name
        if _wants_json():
            return jsonify({"code": exc.name, "description": description}), status
        return render_template("error.html", code=exc.name, description=description), status


def stop(app: Flask) -> None:
    """Stop the app's background work: the outbox worker, and close the outbox and audit
    stores."""
    delivery.stop(app)
    trail = app.extensions.get(audit.EXTENSION)
    if trail is not None:
        trail.close()
