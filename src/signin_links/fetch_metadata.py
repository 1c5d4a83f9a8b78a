"""Login CSRF and CORS for the routes that use the session cookies.

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

Browsers without Fetch Metadata (Safari before 16.4, Firefox before 90) send no
``Sec-Fetch-Site`` but do send ``Origin`` on a POST. Such a POST passes when its ``Origin`` is the
service's own or an allowed one; any other ``Origin`` (``null`` included: an attacker's sandboxed
frame sends it, and so do the service's own pages, whose ``Referrer-Policy`` is ``no-referrer``)
must carry a valid per-render CSRF token (``csrf.py``) that only the service's own form holds, or
it is refused. A request with neither ``Origin`` nor fetch metadata (curl, server-side clients, no
browser) passes: no browser sends a cross-site POST without either.

Pure functions over a lower-cased header mapping (API Gateway lower-cases header names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class CookiePost:
    """What the headers of a cookie-carrying POST decided: the allowed CORS origin to answer, if
    any, and whether the request must still show a valid CSRF token (see :func:`require_csrf`)."""

    cors_origin: str | None = None
    needs_csrf_token: bool = False


def check_cookie_post(
    headers: Mapping[str, str] | None, allowed_origins: tuple[str, ...], own_origins: tuple[str, ...] = ()
) -> CookiePost:
    """Refuse a cross-site or same-site POST that is not CORS from an allowed origin (403); for a
    browser without fetch metadata whose ``Origin`` is neither in ``own_origins`` nor allowed, ask for
    a CSRF token. Called before the body is read."""
    site = _header(headers, "sec-fetch-site")
    origin = allowed_origin(headers, allowed_origins)
    if site is None:  # API clients, and browsers without Fetch Metadata
        sent = _header(headers, "origin")
        if sent is None or origin is not None or sent in own_origins:
            return CookiePost(origin)
        return CookiePost(None, needs_csrf_token=True)
    site = site.lower()
    if site in ALLOWED_SITES:
        return CookiePost(origin)
    mode = (_header(headers, "sec-fetch-mode") or "").lower()
    if site in OTHER_SITES and mode == "cors" and origin is not None:
        return CookiePost(origin)
    raise SignInLinksError(ErrorCode.ORIGIN_INVALID)


CSRF_REFUSED = (
    "This form was not sent by this site's own page, or the page was open too long. "
    "Open the link again from your email."
)


def require_csrf(post: CookiePost, token_valid: bool) -> None:
    """403 ``origin_invalid`` when the POST needed a CSRF token and did not carry a valid one."""
    if post.needs_csrf_token and not token_valid:
        raise SignInLinksError(ErrorCode.ORIGIN_INVALID, CSRF_REFUSED)


def arrived_from_another_site(headers: Mapping[str, str] | None) -> bool:
    """Whether a page request (the link's GET) came from another site, for ``AcceptConfirmation=
    cross-site``: ``Sec-Fetch-Site: cross-site`` (a webmail click, or an attacker's page navigating
    the visitor), or no ``Sec-Fetch-Site`` at all (a browser that cannot say: assume the worst).
    ``same-origin``, ``same-site`` and ``none`` (typed, bookmarked, opened by a desktop mail app)
    are not."""
    site = _header(headers, "sec-fetch-site")
    return site is None or site.lower() not in ("same-origin", "same-site", "none")


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
