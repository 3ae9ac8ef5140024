"""Which network addresses the app may call: the SSRF guard for every outbound request.

Public addresses are always allowed. Loopback and private (RFC 1918, ULA) addresses only when the
registration lists them in ``allow_addresses``; link-local (cloud metadata at 169.254.169.254),
multicast, unspecified and reserved addresses never. Host names are resolved and every address
they resolve to must pass, so ``http://2852039166/`` (169.254.169.254 spelled as a number) fails
like the dotted form.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from smart_app.web.errors import ForbiddenAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Classes a registration may opt into; everything else except "public" is always refused.
OPT_IN_CLASSES = frozenset({"loopback", "private"})


def address_class(ip: IPAddress) -> str:
    """Classify one address: public, loopback, private, link-local or reserved."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        return "private"
    if not ip.is_global:
        return "reserved"
    return "public"


_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def literal_address(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal in canonical form, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(ip: IPAddress, allow: Iterable[str], url: str) -> None:
    """Raise ForbiddenAddress unless ``ip``'s class is public or in ``allow``."""
    cls = address_class(ip)
    if cls == "public" or (cls in OPT_IN_CLASSES and cls in set(allow)):
        return
    raise ForbiddenAddress(
        f"The address of {_origin(url)} is {cls}; this EHR's registration does not allow it."
    )


def check_url(url: str, allow: Iterable[str]) -> None:
    """Resolve ``url``'s host and check every address it has (no request is made)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenAddress(f"{url!r} is not an http(s) URL.")
    allowed = tuple(allow)
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise ForbiddenAddress(f"{_origin(url)} must use https.")
    literal = literal_address(parts.hostname)
    if literal is not None:
        check_address(literal, allowed, url)
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ForbiddenAddress(f"The host of {_origin(url)} cannot be resolved.") from exc
    for info in infos:
        check_address(ipaddress.ip_address(info[4][0]), allowed, url)


def _is_loopback_host(host: str) -> bool:
    literal = literal_address(host)
    if literal is not None:
        return address_class(literal) == "loopback"
    return host == "localhost"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
