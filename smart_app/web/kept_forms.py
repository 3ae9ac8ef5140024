"""Nothing typed is lost: a form post that fails because the EHR session ended is kept.

When a POST under ``/app/<ctx>/`` raises :class:`AuthorizationExpired` (the token expired and
could not be refreshed), the error handler keeps the posted fields (never the CSRF token)
server-side under a key of this browser, EHR, patient and user, so the same person relaunching
for the same patient gets them back. A view restores them with ``take(launch, name)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from smart_app.web.context import LaunchContext
from smart_app.web.errors import LaunchNotFound

KEPT_NS = "kept_form"

F = TypeVar("F", bound=Callable[..., Any])


def not_kept(view: F) -> F:
    """Mark a view whose posted fields are never kept: nothing restores them, and what they
    carry (a patient search's name and birth date) is not to be stored."""
    view._not_kept = True  # type: ignore[attr-defined]
    return view


def _key(record: dict[str, Any], name: str) -> str:
    parts = [
        str(record.get(k) or "") for k in ("sid", "iss", "registration", "patient", "fhir_user")
    ]
    digest = hashlib.sha256("\x1f".join([*parts, name]).encode("utf-8")).hexdigest()
    return digest


def form_name(path: str | None = None) -> str:
    """The name a form is kept under: its path (default: this request's) below ``/app/<ctx>/``."""
    parts = (path or request.path).split("/", 3)
    return parts[3] if len(parts) > 3 else ""


def keep_posted_form(name: str | None = None) -> bool:
    """Keep the current POST's fields for the launch in the URL under ``name`` (default: this
    request's form name); True when something was kept."""
    ctx = (request.view_args or {}).get("ctx")
    if request.method != "POST" or not isinstance(ctx, str):
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_not_kept", False):
        return False
    try:
        launch = LaunchContext.load(ctx)
    except LaunchNotFound:
        return False
    fields = {k: request.form.getlist(k) for k in request.form if k != "csrf_token"}
    if not fields:
        return False
    launch.services.store.put(
        KEPT_NS,
        _key(launch.record, name or form_name()),
        {"fields": fields},
        current_app.config["LAUNCH_TTL"],
    )
    return True


def take(launch: LaunchContext, name: str) -> dict[str, list[str]] | None:
    """The fields kept for ``name`` by this browser, EHR, patient and user (then forgotten)."""
    kept = launch.services.store.take(KEPT_NS, _key(launch.record, name))
    if kept is None:
        return None
    fields: dict[str, list[str]] = kept["fields"]
    return fields


def resendable() -> list[tuple[str, str]]:
    """The current POST's fields, to post again from an error page when nothing could be stored
    (the store is down): the CSRF token included, a view whose fields are never kept excluded."""
    if request.method != "POST":
        return []
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_not_kept", False):
        return []
    return list(request.form.items(multi=True))
