"""accept_token: the page behind every sign-in link, the one-time redemption, and the JWKS.

Thin by design: each route reads its inputs, makes one call into the domain (``redeem.py``) and
shapes the answer (``pages.py``). GET and HEAD never change state (mail scanners open links);
only the POST the page submits consumes a token.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, snapstart
from signin_links.config import Settings, get_settings
from signin_links.errors import SignInLinksError
from signin_links.http import JSON, install_error_handlers, request_body, wants_html
from signin_links.keyring import HMAC, RSA, Keyring, forget_secrets, load_keyring
from signin_links.observability import logger, metrics
from signin_links.pages import Pages
from signin_links.redeem import (
    Accepted,
    AuditTrail,
    Redemptions,
    Rejected,
    cookie_values,
    parse_accept_request,
)
from signin_links.sessions import COOKIE_NAME
from signin_links.store import TokenStore

TEMPLATES = Path(__file__).resolve().parent / "templates"

app = APIGatewayHttpResolver()


@cache
def pages() -> Pages:
    settings = get_settings()
    return Pages(TEMPLATES, auto_submit=settings.accept_auto_submit, redirect_origins=settings.allowed_redirect_origins)


install_error_handlers(app, render_html=lambda error: pages().error(error))


@cache
def redemptions() -> Redemptions:
    settings = get_settings()

    def ticket_keyring() -> Keyring:
        return load_keyring(settings.ticket_keyring_secret_id, settings.secrets_max_age_seconds, HMAC)

    def session_keyring() -> Keyring:
        return load_keyring(settings.session_keyring_secret_id, settings.secrets_max_age_seconds, RSA)

    # The audit events come from the table's stream (AuditPipe): the write is the only AWS call.
    store = TokenStore(aws.client("dynamodb"), settings.table_name)
    return Redemptions(settings, store, ticket_keyring, session_keyring, audit=AuditTrail())


def own_base_url() -> str:
    """The URL this API answers on (the session issuer when none is configured)."""
    return f"https://{app.current_event.request_context.domain_name}"


def session_cookie(token: str, settings: Settings) -> Cookie:
    return Cookie(
        name=COOKIE_NAME,
        value=token,
        path="/",
        domain=settings.session_cookie_domain,
        secure=True,
        http_only=True,
        max_age=settings.session_lifetime_seconds,
        same_site=SameSite.LAX_MODE,
    )


def sign_in_json(outcome: Accepted) -> dict[str, Any]:
    return {
        "object": "sign_in",
        "status": "complete",
        "created_session_id": outcome.session_id,
        "user_id": outcome.user_id,
        "session_token": outcome.session_token,
        "redirect_url": outcome.redirect_url,
    }


@app.get("/accept-token")
def accept_page() -> Response[str]:
    token = app.current_event.get_query_string_value("token")
    if not token:  # the script looks in the fragment (#token=...)
        return pages().accept(None)
    try:
        redemptions().check(token)  # signature, expiry, redirect: never the token's state
    except Rejected as error:
        return pages().error(error)
    return pages().accept(token)


@app.head("/accept-token")
def accept_page_head() -> Response[str]:
    return pages().head()


@app.post("/accept-token")
def accept_token() -> Response[str]:
    service = redemptions()
    event = app.current_event
    request = parse_accept_request(
        request_body(app),
        event.headers.get("content-type"),
        service.settings.max_body_bytes,
        session_cookies=cookie_values(event.cookies, COOKIE_NAME),
    )
    outcome = service.accept(request, fallback_issuer=own_base_url())
    # A retry already holds its cookie; only a new session sets one.
    cookies = [] if outcome.retried else [session_cookie(outcome.session_token, service.settings)]
    if not wants_html(app):
        return Response(
            status_code=200,
            content_type=JSON,
            body=json.dumps(sign_in_json(outcome), separators=(",", ":")),
            headers=pages().security_headers(),
            cookies=cookies,
        )
    if outcome.redirect_url:
        return pages().redirect(outcome.redirect_url, cookies)
    return pages().signed_in(outcome.user_id, cookies)


@app.get("/.well-known/jwks.json")
def jwks() -> Response[str]:
    service = redemptions()
    return Response(
        status_code=200,
        content_type=JSON,
        body=json.dumps(service.jwks(), separators=(",", ":")),
        headers={"Cache-Control": f"public, max-age={service.jwks_max_age()}"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pages().secure(app.resolve(event, context))


# --- Init: the first request's work, done while Lambda initialises the function -----------------


def initialise() -> None:
    """Load the pages, create the client, read both keyrings and parse the signing key now, in
    Lambda's init phase (and, with SnapStart, before the snapshot), so that the first sign-in does
    not. A failure is logged, not raised: the first request reads again (and answers 503 if it
    still cannot), where an init that raised would fail that request and run the init again."""
    pages()
    service = redemptions()
    try:
        service.ticket_keyring()
        _ = service.session_keyring().current(service.clock()).private_key  # the PEM, parsed once
    except (SignInLinksError, ValueError) as error:
        logger.warning("init: keyrings not read; the first request reads them", extra={"error": type(error).__name__})


@snapstart.after_restore
def restored() -> None:
    """After a SnapStart restore, rebuild what the snapshot holds: clients, keyrings, parsed keys."""
    redemptions.cache_clear()
    forget_secrets()
    aws.reset_clients()
    initialise()


initialise()
