"""The one place that maps errors to HTTP responses, for every function behind the HttpApi.

``install_error_handlers(app)`` registers, on a Powertools resolver, the handlers that turn a
:class:`SignInLinksError` (and anything unexpected) into the Clerk error envelope with
``Content-Type: application/json`` exactly, plus ``Retry-After`` on 503s. A function that
serves HTML (the accept page) passes ``render_html`` to answer browsers with a page instead.

Also the HTTP helpers the three HTTP functions share: the request's body and own URL, and the
``__session`` / ``__refresh`` cookies (set, and cleared with the same Name, Domain and Path).
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from signin_links.config import Settings
from signin_links.cookies import CSRF, CSRF_LIFETIME_SECONDS, LEGACY_REFRESH, SESSION, refresh_cookie_name
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.observability import logger
from signin_links.wire import JSON, error_envelope

HtmlRenderer = Callable[[SignInLinksError], Response[str]]


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None, *, cookies: list[Cookie] | None = None
) -> Response[str]:
    """A compact JSON answer (every JSON body of the API goes through here)."""
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or {},
        cookies=cookies,
    )


def own_base_url(app: APIGatewayHttpResolver) -> str:
    """The URL this API answers on (the current request's host): where links point and the session
    issuer, when none is configured."""
    return f"https://{app.current_event.request_context.domain_name}"


def own_origins(app: APIGatewayHttpResolver, settings: Settings) -> tuple[str, ...]:
    """The origins of this service's own pages (login CSRF, ``fetch_metadata.py``): the request's
    host, and the accept base URL's origin when one is set."""
    accept_origin = settings.accept_origin
    return (own_base_url(app), accept_origin) if accept_origin else (own_base_url(app),)


def request_body(app: APIGatewayHttpResolver) -> bytes:
    """The request body as bytes. API Gateway base64-encodes bodies of binary content types, so any
    bytes may arrive: a body that is not base64 is a 400 (Powertools' ``decoded_body`` would raise
    on it, and on bytes that are not UTF-8)."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8", "surrogatepass")
    try:
        return b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The request body is not valid base64.") from None


def trace_id(app: APIGatewayHttpResolver) -> str:
    try:
        return str(app.current_event.request_context.request_id or "")
    except (AttributeError, KeyError):
        return ""


def error_response(app: APIGatewayHttpResolver, error: SignInLinksError) -> Response[str]:
    headers = {"Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.status, error_envelope(error, trace_id(app)), headers)


# The methods API Gateway HTTP APIs route (besides each route's own): what a /v1 fallback route brings.
ROUTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def other_methods(*allowed: str) -> list[str]:
    """Every routed method but ``allowed``, for the route that answers them 405."""
    return [method for method in ROUTED_METHODS if method not in allowed]


def method_not_allowed(app: APIGatewayHttpResolver, *allowed: str) -> Response[str]:
    """405 ``method_not_allowed`` in the envelope, with ``Allow`` naming the route's methods."""
    response = error_response(app, SignInLinksError(ErrorCode.METHOD_NOT_ALLOWED))
    response.headers["Allow"] = ", ".join(allowed)
    return response


def no_store(response: dict[str, Any]) -> dict[str, Any]:
    """A resolved response with ``Cache-Control: no-store`` unless it set its own (every /v1 answer:
    the mint answer carries a live token, and no error is worth caching)."""
    headers = response.setdefault("headers", {})
    if not any(name.lower() == "cache-control" for name in headers):
        headers["Cache-Control"] = "no-store"
    return response


def wants_html(app: APIGatewayHttpResolver) -> bool:
    accept = (app.current_event.headers or {}).get("accept", "")
    return "text/html" in accept and JSON not in accept


def install_error_handlers(app: APIGatewayHttpResolver, render_html: HtmlRenderer | None = None) -> None:
    @app.exception_handler(SignInLinksError)  # type: ignore[untyped-decorator]
    def _domain_error(error: SignInLinksError) -> Response[str]:
        logger.info("request rejected", extra={"code": error.code.wire_code, "status": error.status})
        if render_html is not None and wants_html(app):
            return render_html(error)
        return error_response(app, error)

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(app, SignInLinksError(ErrorCode.ROUTE_NOT_FOUND))

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        # A bug, not bad input: 500 in the envelope, logged with its type only (a message or
        # traceback could carry a token).
        logger.error("unhandled error", extra={"error": type(error).__name__})
        envelope = {
            "errors": [
                {
                    "message": "Internal error",
                    "long_message": "An unexpected error occurred; it has been logged.",
                    "code": "internal_clerk_error",
                }
            ],
            "clerk_trace_id": trace_id(app),
        }
        return json_response(500, envelope, {"Cache-Control": "no-store"})


# --- The session cookies (accept_token sets and clears them; sessions' refresh answers with one) ----


def _cookie(name: str, value: str, settings: Settings, max_age: int) -> Cookie:
    """Both session cookies' attributes: Path=/, ``SessionCookieDomain``, Secure, HttpOnly, Lax."""
    return Cookie(
        name=name,
        value=value,
        path="/",
        domain=settings.session_cookie_domain,
        secure=True,
        http_only=True,
        max_age=max_age,
        same_site=SameSite.LAX_MODE,
    )


def session_cookie(token: str, settings: Settings, max_age: int) -> Cookie:
    """``__session``: the short-lived session JWT. HttpOnly: ``session.js`` reads its token from the
    refresh answer, never from ``document.cookie``. Max-Age is the session's remaining life, not the
    token's: the cookie names the session while its token is refreshed."""
    return _cookie(SESSION, token, settings, max_age)


def refresh_cookie(value: str, settings: Settings, max_age: int) -> Cookie:
    """The refresh token (``refresh_tokens.py``): ``__Host-refresh`` (no Domain: only this host sets
    or receives it), or ``__Secure-refresh`` with ``SessionCookieDomain`` as its Domain when one is
    set (a server-rendered app under it refreshes through /v1/sessions). Path=/, Secure, HttpOnly."""
    return _cookie(refresh_cookie_name(settings.session_cookie_domain), value, settings, max_age)


def csrf_cookie(nonce: str) -> Cookie:
    """``__Host-csrf``: the nonce the accept function's forms are bound to (``csrf.py``). ``__Host-``:
    Secure, Path=/ and no Domain, so no other host can set it. Lax, not Strict: a link opened from a
    webmail (a cross-site GET) must see the nonce the browser holds, or its page would replace it and
    break the form of a page already open in another tab; no other site's POST carries it."""
    return Cookie(
        name=CSRF,
        value=nonce,
        path="/",
        secure=True,
        http_only=True,
        max_age=CSRF_LIFETIME_SECONDS,
        same_site=SameSite.LAX_MODE,
    )


def cleared_cookies(settings: Settings) -> list[Cookie]:
    """Both cookies removed (same Name, Domain and Path; Max-Age=0), and the refresh cookie's name
    of earlier versions (``__refresh``, never read any more), so that browsers drop it."""
    return [session_cookie("", settings, 0), refresh_cookie("", settings, 0), _cookie(LEGACY_REFRESH, "", settings, 0)]


# --- Clerk's Frontend API: the browser's client (functions/clerk_frontend) -------------------------

# A credential like __refresh, so host-only: __Host- makes the browser refuse it without Secure and
# Path=/, or with a Domain, so no sibling host can plant or widen it (docs/clerk-frontend.md).
CLIENT_COOKIE_NAME = "__Host-client"


def client_cookie(value: str, max_age: int) -> Cookie:
    """``__Host-client``: ``<session id>.<secret>``, HttpOnly, Secure, Path=/, no Domain, Lax. Through
    Clerk's proxy it lands on the app's own host; on the service's subdomain, on that host."""
    return Cookie(
        name=CLIENT_COOKIE_NAME,
        value=value,
        path="/",
        secure=True,
        http_only=True,
        max_age=max_age,
        same_site=SameSite.LAX_MODE,
    )
