"""The local stack's own routes under ``/_local/``: never in the template, never deployed. The
outbox (``local.outbox``) and ``POST /_local/rotate`` (the stack's), answered only for a ``Host`` that
names this machine by a loopback name; the request log names them by route, never by path."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from local import outbox
from local.apigw import HttpRequest, HttpResponse, message_response, not_found

LOCAL_ROUTES = ("outbox", "outbox.json", "rotate")


def answer(request: HttpRequest, rotate: Callable[[HttpRequest], HttpResponse]) -> tuple[HttpResponse, str] | None:
    """The answer to a request under ``/_local/`` and its route key, or ``None`` for any other path;
    ``rotate`` answers ``POST /_local/rotate``."""
    if request.raw_path != "/_local" and not request.raw_path.startswith("/_local/"):
        return None
    if not loopback_host(request.header("host")):
        # DNS rebinding: a page on evil.example, resolved to 127.0.0.1, reaches this port with its
        # own Host, and the outbox holds live links.
        return message_response(403, LOOPBACK_ONLY), local_route_key(request)
    if request.raw_path == "/_local/rotate":
        return rotate(request), local_route_key(request)
    return (outbox.handle(request) or not_found()), local_route_key(request)


LOOPBACK_ONLY = "the local stack's own routes answer only a loopback Host (localhost, 127.0.0.1, [::1])"
_PORT = re.compile(r":[0-9]{1,5}")


def loopback_host(value: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name: ``localhost``, an IPv4
    loopback address or ``[::1]``, with an optional port. Anything else (another name that resolves
    here, several Host headers, a malformed one) is not."""
    host = (value or "").strip()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return False
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
    if rest and (not _PORT.fullmatch(rest) or int(rest[1:]) > 65535):
        return False
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def local_route_key(request: HttpRequest) -> str:
    """``GET /_local/outbox/{id}``: the route, never the id or an unknown path (the log shows no path)."""
    parts = request.raw_path.split("/")
    if len(parts) < 3 or parts[2] not in LOCAL_ROUTES:
        return f"{request.method} /_local (no route)"
    return f"{request.method} /_local/{parts[2]}" + ("/{id}" if len(parts) > 3 else "")
