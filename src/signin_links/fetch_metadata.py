"""Login CSRF and CORS for the routes that use the session cookies (issue 9 item 7, issue 10).

A POST to ``/accept-token``, ``/session/refresh`` or ``/sign-out`` is refused (403 ``origin_invalid``,
nothing changed) when the browser says it comes from another site or another origin of this site
(``Sec-Fetch-Site: cross-site`` or ``same-site``), unless it is a CORS request (``Sec-Fetch-Mode:
cors``) whose ``Origin`` is one of ``AllowedRedirectOrigins``: an application's own page redeeming a
link, refreshing or signing out with ``fetch`` (``session.js``). ``same-origin`` (the accept page's
own form), ``none`` (typed or bookmarked) and a missing header (API clients, older browsers) pass:
the page sends ``Referrer-Policy: no-referrer``, so its own POST carries ``Origin: null`` and the
check must not rest on ``Origin``.

Allowed origins get CORS answers: ``Access-Control-Allow-Origin`` = that exact origin,
``Access-Control-Allow-Credentials: true`` and ``Vary: Origin``; preflights (``OPTIONS``) are
answered by the function itself (no ``CorsConfiguration`` on the HttpApi: one mechanism, the same
on the local stack and in AWS, and the allow-list is the one the code already checks).

Pure functions over a lower-cased header mapping (API Gateway lower-cases header names).
"""

from __future__ import annotations

from collections.abc import Mapping

from signin_links.errors import ErrorCode, SignInLinksError

ALLOWED_SITES = frozenset({"same-origin", "none"})
OTHER_SITES = frozenset({"same-site", "cross-site"})
PREFLIGHT_MAX_AGE = 600
ALLOWED_REQUEST_HEADERS = "content-type"


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    value = (headers or {}).get(name)
    return value.strip() if isinstance(value, str) else None


def allowed_origin(headers: Mapping[str, str] | None, allowed_origins: tuple[str, ...]) -> str | None:
    """The request's ``Origin`` when it is exactly one of ``allowed_origins``, else None."""
    origin = _header(headers, "origin")
    if not origin or len(origin) > 2048 or not origin.isascii():
        return None
    return origin if origin in allowed_origins else None


def check_cookie_post(headers: Mapping[str, str] | None, allowed_origins: tuple[str, ...]) -> str | None:
    """Refuse a cross-site or same-site POST that is not CORS from an allowed origin (403).

    Returns the origin to answer with CORS headers (an allowed origin that sent ``Origin``), or None.
    """
    site = _header(headers, "sec-fetch-site")
    origin = allowed_origin(headers, allowed_origins)
    if site is None:
        return origin  # API clients and browsers without Fetch Metadata
    site = site.lower()
    if site in ALLOWED_SITES:
        return origin
    mode = (_header(headers, "sec-fetch-mode") or "").lower()
    if site in OTHER_SITES and mode == "cors" and origin is not None:
        return origin
    raise SignInLinksError(ErrorCode.ORIGIN_INVALID)


def cors_headers(origin: str | None) -> dict[str, str]:
    """Headers of a credentialed CORS answer to ``origin`` (an allowed one), or just ``Vary``."""
    if origin is None:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def preflight_headers(headers: Mapping[str, str] | None, allowed_origins: tuple[str, ...]) -> dict[str, str] | None:
    """The answer's headers to a preflight (``OPTIONS``) for a POST from an allowed origin, or None."""
    origin = allowed_origin(headers, allowed_origins)
    method = (_header(headers, "access-control-request-method") or "").upper()
    if origin is None or method != "POST":
        return None
    return {
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
