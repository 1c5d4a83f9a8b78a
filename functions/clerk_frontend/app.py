"""clerk_frontend: Clerk's Frontend API for sign-in by ticket, so clerk-js and @clerk/nextjs run unchanged.

Thin by design: each route checks where the request comes from (login CSRF, ``fetch_metadata.py``),
reads the ``__Host-client`` cookie and the form clerk-js sends (``frontend_wire.py``), makes one call
into the domain (``frontend.py``) and shapes Clerk's answer. A function of its own so the accept
function stays lean: it holds what the accept holds (the ticket keyring to verify, the session
keyring to sign) and nothing more (docs/clerk-frontend.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.cookies import Cookie
from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, snapstart
from signin_links.config import get_settings
from signin_links.edge import EdgeGuard
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.fetch_metadata import (
    allowed_origin,
    check_cookie_post,
    cors_headers,
    preflight_headers,
    require_csrf,
)
from signin_links.frontend import FrontendApi
from signin_links.frontend_wire import (
    SIGN_IN_FIELDS,
    client_json,
    effective_method,
    environment_json,
    form_fields,
    parse_sign_in,
    session_json,
    session_path_id,
    sign_in_json,
    token_json,
    wrapped,
)
from signin_links.handshake import handshake_location
from signin_links.http import (
    CLIENT_COOKIE_NAME,
    client_cookie,
    install_error_handlers,
    json_response,
    method_not_allowed,
    no_store,
    other_methods,
    own_base_url,
    own_origins,
    request_body,
)
from signin_links.keyring import session_keyring_reader
from signin_links.observability import logger, metrics
from signin_links.redeem import RedemptionMetrics, Redemptions
from signin_links.session_tokens import session_issuer
from signin_links.store import TokenStore
from signin_links.ticket_verification import ticket_verifier
from signin_links.wire import allowed_redirect, cookie_values

# What this function needs set, checked at init (ConfigError names the variable).
NEEDS = ("TICKET_VERIFICATION_KEYRING_SECRET_ID", "SESSION_KEYRING_SECRET_ID")

app = APIGatewayHttpResolver()
install_error_handlers(app)
EDGE = EdgeGuard(app)  # with EdgeProtection: only what came through CloudFront (signin_links.edge)


@cache
def frontend() -> FrontendApi:
    settings = get_settings().require(*NEEDS)
    EDGE.configure(settings)
    store = TokenStore(aws.client("dynamodb"), settings.table_name)
    session_keyring = session_keyring_reader(settings)
    # Public keys only: this function checks tickets, it cannot make one.
    redemptions = Redemptions(settings, store, ticket_verifier(settings), session_keyring, metrics=RedemptionMetrics())
    return FrontendApi(settings, store, redemptions, session_keyring)


def from_allowed_site() -> dict[str, str]:
    """Login CSRF, as on ``POST /accept-token``: a cross-site (or same-site) request that is not CORS
    from an allowed origin is refused (403 ``origin_invalid``) before anything is read; CORS headers
    for an allowed origin (clerk-js on the app, the service on its subdomain)."""
    post = check_cookie_post(
        app.current_event.headers, frontend().settings.allowed_redirect_origins, own_origins(app, frontend().settings)
    )
    require_csrf(post, False)  # a browser without fetch metadata from a foreign origin: no form of ours posts here
    return cors_headers(post.cors_origin)


def client_value() -> str | None:
    """The ``__Host-client`` value; two of them (a planted one beside the real one) name no client."""
    values = cookie_values(app.current_event.cookies, CLIENT_COOKIE_NAME, limit=2)
    return values[0] if len(values) == 1 else None


def answer(body: Any, cors: dict[str, str], cookies: list[Cookie] | None = None) -> Response[str]:
    response = json_response(200, body, {"Cache-Control": "no-store", **cors})
    response.cookies = cookies or []
    return response


def cleared() -> list[Cookie]:
    return [client_cookie("", 0)]


def method() -> str:
    event = app.current_event
    return effective_method(event.request_context.http.method, event.query_string_parameters)


@app.get("/v1/environment")
def environment() -> Response[str]:
    """The instance's settings: production, ticket sign-in only, single session. No AWS call."""
    settings = frontend().settings
    origin = allowed_origin(app.current_event.headers, settings.allowed_redirect_origins)  # no cookie: no CSRF check
    return answer(environment_json(settings.brand.app_name or "signin-links"), cors_headers(origin))


@app.get("/v1/client")
@app.post("/v1/client")
def client() -> Response[str]:
    """``GET``: the browser's client (``{"response": null}`` when it has none); ``DELETE`` (tunnelled
    as ``POST ?_method=DELETE``): sign-out of the whole client."""
    cors = from_allowed_site()
    service = frontend()
    wanted = method()
    if wanted == "DELETE":
        service.sign_out(client_value())
        return answer(wrapped(None, None), cors, cleared())
    if wanted != "GET":
        return method_not_allowed(app, "GET", "DELETE")
    held = client_value()
    found = service.client(held, fallback_issuer=own_base_url(app))
    if found is None:  # a stale or forged cookie is removed; no cookie, nothing to remove
        return answer(wrapped(None, None), cors, cleared() if held is not None else None)
    body = client_json(found.record, found.jwt, service.now_ms())
    return answer(wrapped(body, None), cors)


@app.post("/v1/client/sign_ins")
def sign_in() -> Response[str]:
    """``signIn.create({strategy: 'ticket', ticket})``: the ticket consumed in the accept's one write."""
    cors = from_allowed_site()
    service = frontend()
    if method() != "POST":
        return method_not_allowed(app, "POST")
    event = app.current_event
    fields = form_fields(
        request_body(app), event.headers.get("content-type"), service.settings.max_body_bytes, read=SIGN_IN_FIELDS
    )
    signed_in = service.sign_in(parse_sign_in(fields), client_value(), fallback_issuer=own_base_url(app))
    now_ms = service.now_ms()
    body = wrapped(sign_in_json(signed_in.record), client_json(signed_in.record, signed_in.jwt, now_ms))
    return answer(body, cors, [client_cookie(signed_in.client_value, signed_in.max_age)])


@app.post("/v1/client/sessions/<session_id>/touch")
def touch(session_id: str) -> Response[str]:
    cors = from_allowed_site()
    service = frontend()
    if method() != "POST":
        return method_not_allowed(app, "POST")
    found = service.touch(session_path_id(session_id), client_value(), fallback_issuer=own_base_url(app))
    now_ms = service.now_ms()
    return answer(
        wrapped(session_json(found.record, found.jwt, now_ms), client_json(found.record, found.jwt, now_ms)), cors
    )


@app.post("/v1/client/sessions/<session_id>/tokens")
def tokens(session_id: str) -> Response[str]:
    """``getToken()``: ``{"object": "token", "jwt": ...}``, not wrapped (as Clerk answers)."""
    cors = from_allowed_site()
    service = frontend()
    if method() != "POST":
        return method_not_allowed(app, "POST")
    found = service.token(session_path_id(session_id), client_value(), fallback_issuer=own_base_url(app))
    return answer(token_json(found.jwt), cors)


@app.post("/v1/client/sessions")
def sign_out_all() -> Response[str]:
    """``signOut()``: ``DELETE /v1/client/sessions`` (tunnelled): the client's session ends."""
    cors = from_allowed_site()
    service = frontend()
    if method() != "DELETE":
        return method_not_allowed(app, "DELETE")
    service.sign_out(client_value())
    return answer(wrapped(client_json(None, "", service.now_ms()), None), cors, cleared())


@app.post("/v1/client/sessions/<session_id>/remove")
@app.post("/v1/client/sessions/<session_id>/end")
def sign_out_one(session_id: str) -> Response[str]:
    """``session.remove()`` / ``session.end()``: that session (the client's own) ends."""
    cors = from_allowed_site()
    service = frontend()
    if method() != "POST":
        return method_not_allowed(app, "POST")
    ended = service.sign_out(client_value(), session_path_id(session_id))
    now_ms = service.now_ms()
    session = session_json(ended, "", now_ms) if ended is not None else None
    return answer(wrapped(session, client_json(None, "", now_ms)), cors, cleared())


def redirect_target(service: FrontendApi) -> str:
    """The query's ``redirect_url`` where a top-level answer may send the browser: on
    ``AllowedRedirectOrigins`` only (no open redirect), else 422 naming the parameter."""
    query = app.current_event.query_string_parameters or {}
    target = allowed_redirect(query.get("redirect_url"), service.settings)
    if target is None:
        raise SignInLinksError(
            ErrorCode.FORM_PARAM_VALUE_INVALID,
            "redirect_url must be on the allowed redirect origins.",
            param="redirect_url",
        )
    return target


@app.get("/v1/client/handshake")
def handshake() -> Response[str]:
    """``clerkMiddleware``'s handshake: a top-level GET that returns to ``redirect_url`` (on
    ``AllowedRedirectOrigins`` only: the answer carries a session JWT) with ``__clerk_handshake``, a
    JWT signed by the session keyring whose ``handshake`` claim lists the cookies to set."""
    service = frontend()
    target = redirect_target(service)
    held = client_value()
    found = service.client(held, fallback_issuer=own_base_url(app))
    location = handshake_location(
        target,
        found.jwt if found else None,
        service.session_keyring(),
        now=service.clock(),
        max_age=service.settings.session_lifetime_seconds,
        issuer=session_issuer(service.settings, own_base_url(app)),
    )
    response = Response(
        status_code=307, content_type="text/plain", body="", headers={"Location": location, "Cache-Control": "no-store"}
    )
    if found is None and held is not None:
        response.cookies = cleared()
    return response


@app.get("/v1/client/touch")
def client_touch() -> Response[str]:
    """clerk-js 6's top-level stop on the way to a URL (``setActive``'s ``redirectUrl``, ``decorateUrl``)
    while the client's cookie expires within 8 days (Clerk's Safari ITP workaround): the
    ``__Host-client`` cookie set again, from a top-level response, for the session's remaining life,
    then back to ``redirect_url`` (on ``AllowedRedirectOrigins`` only: no open redirect). A stale or
    forged cookie is cleared; nothing is written (one ``GetItem`` when a cookie is held)."""
    service = frontend()
    target = redirect_target(service)
    response = Response(
        status_code=307, content_type="text/plain", body="", headers={"Location": target, "Cache-Control": "no-store"}
    )
    held = client_value()
    if held is not None:
        record = service.live_session(held)
        remaining = (record.expire_at - service.now_ms()) // 1000 if record is not None else 0
        response.cookies = [client_cookie(held, remaining)] if remaining > 0 else cleared()
    return response


@app.get("/v1/jwks")
def jwks() -> Response[str]:
    """Clerk's ``GET /v1/jwks`` (Backend API, and the Frontend API's own): the session keyring's public
    keys, which ``verifyToken`` and ``clerkMiddleware`` fetch. Public keys: no secret key needed."""
    service = frontend()
    return json_response(
        200,
        service.redemptions.jwks(),
        {"Cache-Control": f"public, max-age={service.redemptions.jwks_max_age()}"},
    )


# Every path above and the methods it answers (POST carries clerk-js's tunnelled DELETE). Any other
# method is 405 with Allow, in the envelope; OPTIONS is a CORS preflight (the JWKS needs none).
FRONTEND_PATHS: dict[str, tuple[str, ...]] = {
    "/v1/environment": ("GET",),
    "/v1/client": ("GET", "POST"),
    "/v1/client/sign_ins": ("POST",),
    "/v1/client/sessions": ("POST",),
    "/v1/client/sessions/<session_id>/touch": ("POST",),
    "/v1/client/sessions/<session_id>/tokens": ("POST",),
    "/v1/client/sessions/<session_id>/remove": ("POST",),
    "/v1/client/sessions/<session_id>/end": ("POST",),
    "/v1/client/handshake": ("GET",),
    "/v1/client/touch": ("GET",),
}


def preflight(**_: str) -> Response[str]:
    """CORS preflight: allowed origins only (clerk-js's requests are simple; other callers may ask)."""
    headers = preflight_headers(app.current_event.headers, frontend().settings.allowed_redirect_origins)
    if headers is None:
        return Response(status_code=403, content_type="application/json", body="", headers={"Vary": "Origin"})
    return Response(status_code=204, content_type="application/json", body="", headers=headers)


def only(*allowed: str) -> Callable[..., Response[str]]:
    def other_method(**_: str) -> Response[str]:
        return method_not_allowed(app, *allowed)

    return other_method


for _path, _allowed in FRONTEND_PATHS.items():
    app.route(_path, method="OPTIONS")(preflight)
    app.route(_path, method=[m for m in other_methods(*_allowed) if m != "OPTIONS"])(only(*_allowed))
app.route("/v1/jwks", method=other_methods("GET"))(only("GET"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    frontend()  # configured (cached): the edge guard follows these settings
    return no_store(app.resolve(event, context))


# --- Init: the first request's work, done while Lambda initialises the function -----------------


def initialise() -> None:
    """Create the client, read the keyrings and parse their keys now (see accept_token)."""
    service = frontend()
    with snapstart.read_later():
        _ = [key.verifier for key in service.redemptions.tickets.keyring().keys]  # the public keys, parsed once
        _ = service.session_keyring().current(service.clock()).private_key
        if EDGE.read is not None:
            EDGE.read()  # the header CloudFront adds


snapstart.warm_up(initialise, frontend)
