"""Browser-facing security: the opaque session cookie, CSRF tokens, and response headers.

The cookie carries a random id only; everything else lives in the server-side store under it.
It is ``Secure; HttpOnly; SameSite=None`` (the app runs inside EHR iframes, i.e. cross-site)
and ``Partitioned`` (CHIPS) when the request comes from an iframe, so browsers that block
third-party cookies still keep it for this EHR.

Blueprints get CSRF protection for free: every POST/PUT/PATCH/DELETE must carry this browser's
token as the form field ``csrf_token`` or the header ``X-CSRF-Token``. Templates write
``{{ csrf_field() }}`` inside forms. Machine endpoints authenticated otherwise (e.g. CDS Hooks
with a bearer JWT) opt out with ``@csrf_exempt``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from markupsafe import Markup, escape

from smart_app.web.errors import CsrfFailed
from smart_app.web.services import get_services

COOKIE_NAME = "attach_sid"
BROWSER_NS = "browser"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Any])


def csrf_exempt(view: F) -> F:
    """Mark a view as authenticated by other means than the browser cookie."""
    view._csrf_exempt = True  # type: ignore[attr-defined]
    return view


def browser_session(create: bool = False) -> tuple[str, dict[str, Any]] | None:
    """This browser's ``(sid, record)``; a new one (cookie set on the response) if ``create``."""
    cached = g.get("attach_browser")
    if cached is not None:
        sid, record = cached
        return str(sid), record
    store = get_services().store
    sid = request.cookies.get(COOKIE_NAME, "")
    record = store.get(BROWSER_NS, sid) if 16 <= len(sid) <= 100 else None
    if record is None:
        if not create:
            return None
        sid = secrets.token_urlsafe(32)
        record = {"created": int(time.time()), "csrf": secrets.token_urlsafe(32)}
        store.put(BROWSER_NS, sid, record, current_app.config["BROWSER_SESSION_TTL"])
        g.attach_set_cookie = sid
    g.attach_browser = (sid, record)
    return sid, record


def had_cookie() -> bool:
    """True when the request carried a cookie naming a live browser session."""
    existing = browser_session(create=False)
    return existing is not None and g.get("attach_set_cookie") is None


def csrf_token() -> str:
    """This browser's CSRF token (creating the browser session if needed)."""
    session = browser_session(create=True)
    assert session is not None
    return str(session[1]["csrf"])


def csrf_field() -> Markup:
    """A hidden form field with the CSRF token, for templates."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(csrf_token()))


def _check_csrf() -> None:
    if request.method not in UNSAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_csrf_exempt", False):
        return
    session = browser_session(create=False)
    if session is None:  # refused before the body is read: no cookie, nothing to parse
        raise CsrfFailed()
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    if not hmac.compare_digest(str(session[1]["csrf"]), sent):
        raise CsrfFailed()


def _is_embedded() -> bool:
    return request.headers.get("Sec-Fetch-Dest") in ("iframe", "frame") or bool(
        current_app.config["COOKIE_PARTITIONED"]
    )


def content_security_policy(frame_ancestors: list[str]) -> str:
    """The CSP: own scripts and styles only (no unsafe-inline), framing by the listed origins."""
    ancestors = " ".join(["'self'", *frame_ancestors])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {ancestors}"
    )


def _after(response: Response) -> Response:
    sid = g.get("attach_set_cookie")
    if sid is not None:
        response.set_cookie(
            COOKIE_NAME,
            sid,
            max_age=int(current_app.config["BROWSER_SESSION_TTL"]),
            path="/",
            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
            httponly=True,
            samesite="None",
            partitioned=_is_embedded(),
        )
    headers = response.headers
    headers.setdefault("Content-Security-Policy", current_app.config["ATTACH_CSP"])
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_app(app: Flask, frame_ancestors: list[str]) -> None:
    """Install the CSRF check, the cookie writer, the headers and the template helpers."""
    app.config["ATTACH_CSP"] = content_security_policy(frame_ancestors)
    app.before_request(_check_csrf)
    app.after_request(_after)
    app.add_template_global(csrf_field)
    app.add_template_global(csrf_token)
