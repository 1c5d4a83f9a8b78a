"""sessions: Clerk's ``/v1/sessions`` Backend API (list, get, revoke, tokens, refresh).

Thin by design: each route authenticates (Bearer secret key), reads its inputs, makes one call into
the domain (``sessions.py``) and shapes Clerk's answer. A function of its own because it signs
RS256 session tokens: the mint function never loads RSA code (its cold start stays short), and the
accept function never holds the API keys.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, snapstart
from signin_links.auth import authenticate, live_keys
from signin_links.config import get_settings
from signin_links.edge import EdgeGuard
from signin_links.errors import reject_unknown
from signin_links.http import (
    install_error_handlers,
    json_response,
    method_not_allowed,
    no_store,
    other_methods,
    own_base_url,
    refresh_cookie,
    request_body,
    session_cookie,
)
from signin_links.keyring import session_keyring_reader
from signin_links.observability import logger, metrics
from signin_links.sessions import Sessions
from signin_links.store import TokenStore
from signin_links.wire import (
    REVOKE_ALL_FIELDS,
    TOKEN_FIELDS,
    body_bytes,
    parse_revoke_all,
    parse_session_query,
    parse_session_refresh,
    read_json_object,
    session_json,
)

# What this function needs set, checked at init (ConfigError names the variable).
NEEDS = ("API_KEYS_SECRET_ID", "SESSION_KEYRING_SECRET_ID")

app = APIGatewayHttpResolver()
install_error_handlers(app)
EDGE = EdgeGuard(app)  # with EdgeProtection: only what came through CloudFront (signin_links.edge)


@cache
def sessions() -> Sessions:
    settings = get_settings().require(*NEEDS)
    EDGE.configure(settings)

    store = TokenStore(aws.client("dynamodb"), settings.table_name)
    return Sessions(settings, store, session_keyring_reader(settings))


def authenticated() -> Sessions:
    service = sessions()
    authenticate(app.current_event.headers.get("authorization"), service.settings)
    return service


def answer(body: Any) -> Response[str]:
    """200 with Clerk's JSON; never cached (tokens, session state)."""
    return json_response(200, body, {"Cache-Control": "no-store"})


def json_body(service: Sessions, fields: frozenset[str]) -> dict[str, Any]:
    """The JSON object body (empty allowed); an unknown field is 422 ``form_param_unknown``."""
    body = read_json_object(request_body(app), service.settings.max_body_bytes)
    reject_unknown(body, fields)
    return body


@app.get("/v1/sessions")
def list_sessions() -> Response[str]:
    service = authenticated()
    query = parse_session_query(dict(app.current_event.query_string_parameters or {}))
    page, total = service.list(query)
    now_ms = service.now_ms()
    data = [session_json(record, now_ms) for record in page]
    return answer({"data": data, "total_count": total} if query.paginated else data)


@app.post("/v1/sessions/revoke")
def revoke_all_sessions() -> Response[str]:
    """Revoke every session of a user (``{"user_id": ...}``): not Clerk's API, this service's own, for
    the leaked-key playbook (docs/operations.md). 200 with how many were revoked; calling it again
    revokes what is left."""
    service = authenticated()
    user_id = parse_revoke_all(json_body(service, REVOKE_ALL_FIELDS))
    revoked = service.revoke_all(user_id)
    return answer({"object": "session_revocation", "user_id": user_id, "revoked_sessions": revoked})


@app.get("/v1/sessions/<session_id>")
def get_session(session_id: str) -> Response[str]:
    service = authenticated()
    return answer(session_json(service.get(session_id), service.now_ms()))


@app.post("/v1/sessions/<session_id>/revoke")
def revoke_session(session_id: str) -> Response[str]:
    service = authenticated()
    # No body is expected and none is read: the JS SDK sends an empty one with a JSON content type.
    body_bytes(request_body(app), service.settings.max_body_bytes)
    return answer(session_json(service.revoke(session_id), service.now_ms()))


@app.post("/v1/sessions/<session_id>/tokens")
def create_session_token(session_id: str) -> Response[str]:
    service = authenticated()
    body = json_body(service, TOKEN_FIELDS)
    token = service.create_token(session_id, body.get("expires_in_seconds"), fallback_issuer=own_base_url(app))
    logger.info("session token issued", extra={"session_id": session_id})
    return answer({"object": "token", "jwt": token})


@app.post("/v1/sessions/<session_id>/refresh")
def refresh_session(session_id: str) -> Response[str]:
    """Clerk's backend refresh: the refresh cookie's value and the (expired) ``__session`` token of
    one session; 401 when the session is not active or they do not match it. ``format=cookie``
    rotates the refresh token and answers both cookies for the app to set; ``format=token`` (the
    default) does not rotate: the app has no way to hand the browser a new refresh cookie, so the
    one it holds stays valid (docs/api.md, "Refreshing from your backend")."""
    service = authenticated()
    request = parse_session_refresh(read_json_object(request_body(app), service.settings.max_body_bytes))
    rotate = request.response_format == "cookie"
    refreshed = service.refresh(
        (request.refresh_token,),
        rotate=rotate,
        fallback_issuer=own_base_url(app),
        session_id=session_id,
        expired_token=request.expired_token,
    )
    if rotate:  # the cookies exactly as the accept function sets them
        cookies = [session_cookie(refreshed.token, service.settings, refreshed.max_age)]
        if refreshed.refresh_token:
            cookies.append(refresh_cookie(refreshed.refresh_token, service.settings, refreshed.max_age))
        return answer({"object": "cookies", "cookies": [str(cookie) for cookie in cookies]})
    return answer({"object": "token", "jwt": refreshed.token})


# Every other method on the routes above, and unknown paths under /v1/sessions (the template's ANY
# /v1/sessions and ANY /v1/sessions/{proxy+} routes bring them here): 405 with Allow, or 404, in
# Clerk's envelope with Cache-Control: no-store, like every /v1 answer.
@app.route("/v1/sessions", method=other_methods("GET"))
@app.route("/v1/sessions/<session_id>", method=other_methods("GET"))
def get_only(session_id: str = "") -> Response[str]:
    return method_not_allowed(app, "GET")


@app.route("/v1/sessions/revoke", method=other_methods("POST"))
@app.route("/v1/sessions/<session_id>/revoke", method=other_methods("POST"))
@app.route("/v1/sessions/<session_id>/tokens", method=other_methods("POST"))
@app.route("/v1/sessions/<session_id>/refresh", method=other_methods("POST"))
def post_only(session_id: str = "") -> Response[str]:
    return method_not_allowed(app, "POST")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sessions()  # configured (cached): the edge guard follows these settings
    return no_store(app.resolve(event, context))


# --- Init: the first request's work, done while Lambda initialises the function -----------------


def initialise() -> None:
    """Create the client, read the API keys and the session keyring and parse the signing key
    (snapstart.warm_up)."""
    service = sessions()
    with snapstart.read_later():
        live_keys(service.settings)
        _ = service.session_keyring().current(service.clock()).private_key  # the PEM, parsed once
        if EDGE.read is not None:
            EDGE.read()  # the header CloudFront adds


snapstart.warm_up(initialise, sessions)
