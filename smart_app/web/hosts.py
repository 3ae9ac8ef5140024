"""Which ``Host`` headers the app answers, so that no request chooses the app's own URLs.

Where ``ATTACH_PUBLIC_URL`` is unset, the redirect URI sent to the authorization server (and
the CDS Hooks URLs) are built from the request's ``Host``: a forged header would make them point
elsewhere. So without a public URL the app answers loopback names only (werkzeug's
``TRUSTED_HOSTS``), and ``attach-fhir serve`` refuses to bind anything but loopback
(:func:`public_url_needed`). With a public URL nothing is built from ``Host``; an operator may
still name the hosts to answer (``ATTACH_TRUSTED_HOSTS``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from smart_app.web.errors import ConfigurationError

#: The names a loopback-bound app is reached by (werkzeug compares them without the port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


def check_public_url(value: Any) -> str | None:
    """``ATTACH_PUBLIC_URL`` as a base URL without a trailing slash; ConfigurationError when it
    is not an absolute http(s) URL without credentials, query or fragment."""
    if value is None or value == "":
        return None
    text = str(value)
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ConfigurationError(
            f"ATTACH_PUBLIC_URL must be the app's public base URL, such as "
            f"https://attach.example.org, not {text[:200]!r}."
        )
    return text.rstrip("/")


def trusted_hosts(config: Mapping[str, Any]) -> list[str] | None:
    """The ``Host`` names to answer: ``TRUSTED_HOSTS`` when given (a list, or names separated by
    spaces or commas), else loopback names only where no ``PUBLIC_URL`` is set, else any."""
    given = config.get("TRUSTED_HOSTS")
    if isinstance(given, str):
        given = [h for h in re.split(r"[\s,]+", given) if h]
    if given:
        if not isinstance(given, list) or not all(isinstance(h, str) for h in given):
            raise ConfigurationError("ATTACH_TRUSTED_HOSTS must be a list of host names.")
        return list(given)
    if not config.get("PUBLIC_URL"):
        return list(LOOPBACK_HOSTS)
    return None


def is_loopback(host: str) -> bool:
    """True when a bind address only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def public_url_needed(bind_host: str, public_url: str | None) -> str | None:
    """Why ``serve`` must not bind ``bind_host`` without a public URL; None when it may."""
    if public_url or is_loopback(bind_host):
        return None
    return (
        f"--host {bind_host} accepts connections from other machines, and ATTACH_PUBLIC_URL is "
        "not set: each request's Host header would choose the OAuth redirect URI. Set "
        "ATTACH_PUBLIC_URL to the app's public base URL (e.g. https://attach.example.org), or "
        "bind to 127.0.0.1 behind a proxy."
    )
