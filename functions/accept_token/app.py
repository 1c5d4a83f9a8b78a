"""accept_token: the page behind every sign-in link, the one-time redemption, and the JWKS.

Thin by design: each route reads its inputs, makes one call into the domain (``redeem.py``) and
shapes the answer (``pages.py``). GET and HEAD never change state (mail scanners open links);
only the POST the page submits consumes a token.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.cookies import Cookie
from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, csrf, i18n, snapstart
from signin_links.config import Settings, get_settings
from signin_links.cookies import SESSION
from signin_links.edge import EdgeGuard
from signin_links.errors import SignInLinksError
from signin_links.fetch_metadata import (
    CookiePost,
    arrived_from_another_site,
    check_cookie_post,
    cors_headers,
    preflight_headers,
    require_csrf,
)
from signin_links.http import (
    cleared_cookies,
    csrf_cookie,
    error_response,
    install_error_handlers,
    json_response,
    own_base_url,
    own_origins,
    refresh_cookie,
    request_body,
    session_cookie,
    wants_html,
)
from signin_links.keyring import session_keyring_reader
from signin_links.models import RENEWAL_ALREADY
from signin_links.observability import logger, metrics
from signin_links.pages import Pages
from signin_links.redeem import (
    Accepted,
    AnotherUserSignedIn,
    RedemptionMetrics,
    Redemptions,
    Rejected,
)
from signin_links.renewal import Renewals
from signin_links.sessions import RefreshRefused, Sessions
from signin_links.store import RenewalRequests, TokenStore
from signin_links.ticket_verification import ticket_verifier
from signin_links.tickets import Ticket
from signin_links.wire import (
    JSON,
    all_refresh_cookie_values,
    allowed_redirect,
    body_bytes,
    clean_token,
    cookie_values,
    parse_accept_request,
    parse_sign_out_request,
    refresh_cookie_values,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

# What this function needs set, checked at init (ConfigError names the variable).
NEEDS = ("TICKET_VERIFICATION_KEYRING_SECRET_ID", "SESSION_KEYRING_SECRET_ID")

app = APIGatewayHttpResolver()


@cache
def pages() -> Pages:
    settings = get_settings()
    return Pages(
        TEMPLATES,
        auto_submit=settings.accept_auto_submit,
        redirect_origins=settings.allowed_redirect_origins,
        brand=settings.brand,
        override=Path(settings.page_template_dir) if settings.page_template_dir else None,
    )


def language() -> i18n.Language:
    """The reader's language: the request's Accept-Language, else DefaultLanguage."""
    header = (app.current_event.headers or {}).get("accept-language")
    return i18n.language(i18n.negotiate(header, get_settings().default_language))


install_error_handlers(app, render_html=lambda error: pages().error(error, language()))
EDGE = EdgeGuard(app)  # with EdgeProtection: only what came through CloudFront (signin_links.edge)


@cache
def redemptions() -> Redemptions:
    settings = get_settings().require(*NEEDS)
    EDGE.configure(settings)

    # The audit events come from the table's stream (AuditPipe): the write is the only AWS call.
    store = TokenStore(aws.client("dynamodb"), settings.table_name)
    return Redemptions(
        settings, store, ticket_verifier(settings), session_keyring_reader(settings), metrics=RedemptionMetrics()
    )


@cache
def renewals() -> Renewals:
    service = redemptions()
    requests = RenewalRequests(aws.client("dynamodb"), service.settings.table_name)

    def verify(token: str) -> Ticket:  # the dead link's signature and claims, whatever its expiry
        return service.tickets.verify(token, now=0, leeway=0)  # public keys (an HS256 one in a window)

    return Renewals(service.settings, requests, verify)


def rejected_page(error: SignInLinksError, renew: str | None) -> Response[str]:
    """The page of a dead link: with the "Email me a new link" form (and its CSRF token) when offered."""
    if renew is None:
        return pages().error(error, language())
    form_token, cookies = csrf_form()
    return pages().error(error, language(), renew_token=renew, csrf_token=form_token, cookies=cookies)


def renewal_offer(token: str, error: SignInLinksError) -> str | None:
    """The token to put in the page's "Email me a new link" form, if the page offers one."""
    return token if wants_html(app) and renewals().offered(token, error.code) else None


@cache
def sessions() -> Sessions:
    service = redemptions()
    return Sessions(service.settings, service.store, service.session_keyring)


def sign_in_cookies(outcome: Accepted, settings: Settings) -> list[Cookie]:
    """A new session sets both cookies; a retry refreshes ``__session`` (the browser holds its refresh cookie)."""
    cookies = [session_cookie(outcome.session_token, settings, outcome.session_max_age)]
    if outcome.refresh_token:
        cookies.append(refresh_cookie(outcome.refresh_token, settings, outcome.session_max_age))
    return cookies


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
    service = redemptions()
    event = app.current_event
    token = clean_token(event.get_query_string_value("token") or "")
    user_id: str | None = ""  # unknown until the script reads the #token= fragment
    if token:
        try:
            user_id = service.check(token).user_id  # signature, expiry, redirect: never the token's state
        except Rejected as error:
            return rejected_page(error, renewal_offer(token, error))
    confirm = service.confirmation_needed(
        from_another_site=arrived_from_another_site(event.headers),
        session_cookies=cookie_values(event.cookies, SESSION),
    )
    form_token, cookies = csrf_form()
    confirm_as = (user_id or "") if confirm else None  # a token without uid: the page names no one
    return pages().accept(token or None, language(), csrf_token=form_token, cookies=cookies, confirm_as=confirm_as)


def csrf_form() -> tuple[str, list[Cookie]]:
    """A CSRF token for a form of this page, and the ``__Host-csrf`` cookie it is bound to (``csrf.py``)."""
    service = redemptions()
    nonces = cookie_values(app.current_event.cookies, csrf.COOKIE_NAME)
    grant = csrf.issue(service.session_keyring(), service.clock(), nonces)
    return grant.token, [csrf_cookie(grant.nonce)]


def csrf_valid(token: str | None) -> bool:
    """Whether ``token`` is one of this service's forms' CSRF tokens, for this browser's cookie."""
    service = redemptions()
    nonces = cookie_values(app.current_event.cookies, csrf.COOKIE_NAME)
    return csrf.verify(token, nonces, service.session_keyring(), service.clock())


@app.head("/accept-token")
def accept_page_head() -> Response[str]:
    return pages().head()


@app.post("/accept-token")
def accept_token() -> Response[str]:
    service = redemptions()
    event = app.current_event
    post = cookie_post()  # login CSRF: before the body is even read
    cors = post.cors_origin
    request = parse_accept_request(
        request_body(app),
        event.headers.get("content-type"),
        service.settings.max_body_bytes,
        session_cookies=cookie_values(event.cookies, SESSION),
        refresh_cookies=all_refresh_cookie_values(event.cookies),
    )
    require_csrf(post, post.needs_csrf_token and csrf_valid(request.csrf_token))
    try:
        outcome = service.accept(request, fallback_issuer=own_base_url(app))
    except Rejected as error:  # a dead link's page may offer a new one
        renew = renewal_offer(request.token, error)
        if renew is None:
            raise
        logger.info("request rejected", extra={"code": error.code.wire_code, "status": error.status})
        return with_headers(rejected_page(error, renew), cors_headers(cors))
    except AnotherUserSignedIn as asked:
        logger.info("sign-in needs confirmation: another user is signed in here")
        if wants_html(app):
            form_token, cookies = csrf_form()
            return pages().confirm_switch(
                asked.signed_in_user_id,
                asked.link_user_id,
                asked.token,
                language(),
                csrf_token=form_token,
                cookies=cookies,
            )
        return with_headers(error_response(app, asked), cors_headers(cors))
    cookies = sign_in_cookies(outcome, service.settings)
    if not wants_html(app):
        return json_response(
            200, sign_in_json(outcome), {**pages().security_headers(), **cors_headers(cors)}, cookies=cookies
        )
    if outcome.redirect_url:
        return with_headers(pages().redirect(outcome.redirect_url, cookies, language()), cors_headers(cors))
    return with_headers(pages().signed_in(outcome.user_id, cookies, language()), cors_headers(cors))


@app.post("/accept-token/renew")
def renew_link() -> Response[str]:
    """ "Email me a new link" (renewal.py): one conditional write, the same answer whether or not the
    link could be renewed; a GET never asks (there is no GET route)."""
    service = renewals()
    event = app.current_event
    post = cookie_post()  # the accept's login-CSRF rules
    cors = post.cors_origin
    request = parse_accept_request(
        request_body(app), event.headers.get("content-type"), service.settings.max_body_bytes, session_cookies=()
    )
    require_csrf(post, post.needs_csrf_token and csrf_valid(request.csrf_token))
    outcome = service.request(request.token)
    if not wants_html(app):
        status = "already_requested" if outcome == RENEWAL_ALREADY else "requested"
        body = {"object": "sign_in_token_renewal", "status": status}
        return with_headers(json_response(202, body, {"Cache-Control": "no-store"}), cors_headers(cors))
    return with_headers(pages().renewal(outcome, service.delivery, language()), cors_headers(cors))


# --- Sessions: refresh, sign-out, session.js, CORS (docs/accepting-links.md, "Sessions") ---------


def cookie_post() -> CookiePost:
    """Login CSRF (``fetch_metadata.py``): refuse a cross-site POST; the allowed CORS origin, if any,
    and whether a browser without fetch metadata must show a CSRF token."""
    settings = redemptions().settings
    return check_cookie_post(app.current_event.headers, settings.allowed_redirect_origins, own_origins(app, settings))


def with_headers(response: Response[str], headers: dict[str, str]) -> Response[str]:
    response.headers.update(headers)
    return response


@app.route("/accept-token", method="OPTIONS")
@app.route("/accept-token/renew", method="OPTIONS")
@app.route("/session/refresh", method="OPTIONS")
@app.route("/sign-out", method="OPTIONS")
def preflight() -> Response[str]:
    """CORS preflight: allowed origins may POST with credentials; others get no CORS headers."""
    headers = preflight_headers(app.current_event.headers, redemptions().settings.allowed_redirect_origins)
    if headers is None:
        return Response(status_code=403, content_type=JSON, body="", headers={"Vary": "Origin"})
    return Response(status_code=204, content_type=JSON, body="", headers=headers)


@app.post("/session/refresh")
def refresh_session() -> Response[str]:
    """A fresh ``__session`` and the next refresh token while the session named by the refresh cookie
    is active (ONE conditional write); else 401 and the cookies cleared (two different refresh
    cookies: 401 and nothing changed, the cookies included)."""
    service = sessions()
    post = cookie_post()
    require_csrf(post, False)  # no page of this service renders a refresh form: foreign origins are refused
    cors = post.cors_origin
    body_bytes(request_body(app), service.settings.max_body_bytes)  # no body is read; a huge one is 413
    settings = service.settings
    values = refresh_cookie_values(app.current_event.cookies, settings.session_cookie_domain)
    try:
        refreshed = service.refresh(values, rotate=True, fallback_issuer=own_base_url(app))
    except RefreshRefused as error:
        answer = with_headers(error_response(app, error), cors_headers(cors))
        if error.clear_cookies:
            answer.cookies = cleared_cookies(settings)
        return answer
    cookies = [session_cookie(refreshed.token, settings, refreshed.max_age)]
    if refreshed.refresh_token:
        cookies.append(refresh_cookie(refreshed.refresh_token, settings, refreshed.max_age))
    return json_response(
        200,
        {"object": "token", "jwt": refreshed.token},
        {"Cache-Control": "no-store", **cors_headers(cors)},
        cookies=cookies,
    )


@app.get("/sign-out")
def sign_out_page() -> Response[str]:
    """A page with a button: a GET never signs out (mail scanners and prefetchers follow links)."""
    redirect = allowed_redirect(app.current_event.get_query_string_value("redirect_url"), redemptions().settings)
    form_token, cookies = csrf_form()
    # A redirect not allowed is dropped: the page still signs out.
    return pages().sign_out(redirect or "", language(), csrf_token=form_token, cookies=cookies)


@app.post("/sign-out")
def sign_out() -> Response[str]:
    """End every session the browser's refresh cookies name (``ended``), clear the cookies, then 303
    to an allowed ``redirect_url`` or a "Signed out." page (JSON callers: 200 and a small object)."""
    service = sessions()
    post = cookie_post()
    cors = post.cors_origin
    request = parse_sign_out_request(  # a redirect not allowed is refused (422) before anything changes
        request_body(app), app.current_event.headers.get("content-type"), service.settings
    )
    require_csrf(post, post.needs_csrf_token and csrf_valid(request.csrf_token))
    redirect = request.redirect_url
    ended = service.sign_out(all_refresh_cookie_values(app.current_event.cookies))
    cookies = cleared_cookies(service.settings)
    if not wants_html(app):
        body = {
            "object": "sign_out",
            "status": "complete",
            "session_id": ended[0].id if ended else None,
            "session_ids": [record.id for record in ended],
        }
        return json_response(200, body, {"Cache-Control": "no-store", **cors_headers(cors)}, cookies=cookies)
    return with_headers(pages().signed_out(cookies, redirect, language()), cors_headers(cors))


@cache
def session_script() -> str:
    return (TEMPLATES / "session.js").read_text(encoding="utf-8")


@app.get("/session.js")
def session_js() -> Response[str]:
    """The script an application's pages include from this domain (docs/accepting-links.md)."""
    return Response(
        status_code=200,
        content_type="text/javascript; charset=utf-8",
        body=session_script(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@app.get("/.well-known/jwks.json")
def jwks() -> Response[str]:
    service = redemptions()
    return json_response(200, service.jwks(), {"Cache-Control": f"public, max-age={service.jwks_max_age()}"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    redemptions()  # configured (cached): the edge guard follows these settings
    return pages().secure(app.resolve(event, context))


# --- Init: the first request's work, done while Lambda initialises the function -----------------


def initialise() -> None:
    """Load the pages and the default language's catalogue, create the client, read the keyrings
    and parse their keys now, in Lambda's init phase (and, with SnapStart, before the snapshot), so
    that the first sign-in does not. A failure is logged, not raised: the first request reads again
    (and answers 503 if it still cannot), where an init that raised would fail that request and run
    the init again (snapstart.warm_up)."""
    pages()
    i18n.language(get_settings().default_language)
    service = redemptions()
    with snapstart.read_later():
        _ = [key.verifier for key in service.tickets.keyring().keys]  # the public keys, parsed once
        if service.tickets.legacy_keyring is not None:  # an upgrade's migration window is open
            service.tickets.legacy_keyring()
        _ = service.session_keyring().current(service.clock()).private_key  # the PEM, parsed once
        if EDGE.read is not None:
            EDGE.read()  # the header CloudFront adds


snapstart.warm_up(initialise, redemptions, sessions)
