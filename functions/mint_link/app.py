"""mint_link: the /v1 sign-in token API, and the EventBridge batch entry.

Thin by design: each route reads its inputs, makes one call into the domain, shapes the answer.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, snapstart
from signin_links.audit import RENEWAL_DETAIL_TYPE
from signin_links.auth import authenticate, live_keys
from signin_links.config import get_settings
from signin_links.edge import EdgeGuard
from signin_links.errors import unavailable
from signin_links.http import (
    install_error_handlers,
    json_response,
    method_not_allowed,
    no_store,
    other_methods,
    own_base_url,
    request_body,
)
from signin_links.keyring import ticket_signing_keyring_reader
from signin_links.mint_request import MintRequest
from signin_links.observability import logger, metrics
from signin_links.renewal import (
    NotARenewal,
    parse_renewal_event,
    renewal_token_id,
)
from signin_links.sign_in_tokens import SignInTokens
from signin_links.store import BatchLedger, TokenStore
from signin_links.wire import body_bytes, parse_mint_request, read_json_object, sign_in_token_json

if TYPE_CHECKING:
    from signin_links.batch import TokenBatches

CORRELATION_ID_PATH = f"{correlation_paths.API_GATEWAY_HTTP} || detail.batch_id || batch_id || id"

# What this function needs set, checked at init (ConfigError names the variable): a batch has no
# request host to build links on, so the accept base URL or the parameter publishing it.
NEEDS = (
    "API_KEYS_SECRET_ID",
    "TICKET_SIGNING_KEYRING_SECRET_ID",
    "EVENT_BUS_NAME",
    ("ACCEPT_BASE_URL", "ACCEPT_BASE_URL_PARAMETER"),
)

app = APIGatewayHttpResolver()
install_error_handlers(app)
EDGE = EdgeGuard(app)  # with EdgeProtection: only what came through CloudFront (signin_links.edge)


@cache
def sign_in_tokens() -> SignInTokens:
    settings = get_settings().require(*NEEDS)
    EDGE.configure(settings)

    return SignInTokens(
        settings,
        TokenStore(aws.client("dynamodb"), settings.table_name),
        ticket_signing_keyring_reader(settings),
        published_base_url=aws.published_base_url_reader(settings.accept_base_url_parameter),
    )


@cache
def batch_minter() -> TokenBatches:
    # The batch path's modules load when a batch arrives: an HTTP cold start never pays for them.
    from signin_links.batch import TokenBatches
    from signin_links.events import EventPublisher
    from signin_links.manifest import ManifestReader, MapRunResults, ResultsWriter

    tokens = sign_in_tokens()
    settings = tokens.settings
    ledger = BatchLedger(aws.client("dynamodb"), settings.table_name)
    results_bucket = settings.results_bucket
    return TokenBatches(
        settings,
        tokens,
        ledger,
        EventPublisher(aws.client("events"), settings.event_bus_name),
        manifests=ManifestReader(aws.client("s3")),
        results=ResultsWriter(aws.client("s3"), results_bucket) if results_bucket else None,
        map_runs=MapRunResults(aws.client("s3"), results_bucket) if results_bucket else None,
        idempotency=ledger.idempotency_layer(),
    )


def is_batch_invocation(event: dict[str, Any]) -> bool:
    """EventBridge (``detail-type``) or the MintBatch state machine (``batch_id`` at the top)."""
    return "detail-type" in event or "batch_id" in event


def is_renewal(event: dict[str, Any]) -> bool:
    return event.get("detail-type") == RENEWAL_DETAIL_TYPE


def renew_link(event: dict[str, Any]) -> dict[str, Any]:
    """A fresh link for a dead one the stack emailed (renewal.py), announced as SignInLinkMinted
    with ``renewal_of``: the email function mails it to the address on record. A redelivery
    re-announces the same link (the email markers send it once). A failure raises: Lambda retries
    the event, then hands it to the batch dead-letter queue."""
    try:
        renewal = parse_renewal_event(event)
    except NotARenewal as exc:
        logger.warning("renewal event ignored", extra={"reason": str(exc)})
        return {"outcome": "ignored", "reason": str(exc)}
    service = sign_in_tokens()
    request = MintRequest(user_id=renewal.user_id, org_id=renewal.org_id, redirect_url=renewal.redirect_url)
    minted = service.renew(renewal.renewal_of, renewal_token_id(renewal.renewal_of), request)
    # The batch path's modules, loaded when an event arrives (an HTTP cold start never pays for them).
    from signin_links.events import MINTED_DETAIL_TYPE, EventPublisher, minted_link_detail

    detail = minted_link_detail(minted, batch_id=None, metadata={}, renewal_of=renewal.renewal_of)
    publisher = EventPublisher(aws.client("events"), service.settings.event_bus_name)
    if not publisher.publish_one(MINTED_DETAIL_TYPE, detail):
        raise unavailable("EventBridge")
    logger.info("link renewed", extra={"sign_in_token_id": minted.record.id, "renewal_of": renewal.renewal_of})
    metrics.add_metric(name="SignInLinksRenewed", unit="Count", value=1)
    return {"outcome": "minted", "sign_in_token_id": minted.record.id, "renewal_of": renewal.renewal_of}


def mint_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The batch entry: a malformed request raises ``BatchRejected`` (the invocation fails and the
    event lands in the on-failure destination); the summary is returned, never a URL."""
    from signin_links.batch import parse_invocation

    minter = batch_minter()
    return minter.run(parse_invocation(event, minter.settings), context)


@app.post("/v1/sign_in_tokens")
def create_sign_in_token() -> Response[str]:
    service = sign_in_tokens()
    authenticate(app.current_event.headers.get("authorization"), service.settings)
    body = read_json_object(request_body(app), service.settings.max_body_bytes)
    minted = service.create(parse_mint_request(body), fallback_base_url=own_base_url(app))
    logger.info("sign-in token minted", extra={"sign_in_token_id": minted.record.id})
    metrics.add_metric(name="SignInTokensMinted", unit="Count", value=1)
    return json_response(200, sign_in_token_json(minted.record, token=minted.token, url=minted.url))


@app.post("/v1/sign_in_tokens/<sign_in_token_id>/revoke")
def revoke_sign_in_token(sign_in_token_id: str) -> Response[str]:
    service = sign_in_tokens()
    authenticate(app.current_event.headers.get("authorization"), service.settings)
    # No body is expected and none is read: the JS SDK sends an empty one with a JSON content type.
    body_bytes(request_body(app), service.settings.max_body_bytes)
    record = service.revoke(sign_in_token_id)
    logger.info("sign-in token revoked", extra={"sign_in_token_id": record.id})
    metrics.add_metric(name="SignInTokensRevoked", unit="Count", value=1)
    return json_response(200, sign_in_token_json(record))


# Every other method on the two routes (the template's ANY /v1/{proxy+} route brings them here, so
# that they too answer in the envelope with Cache-Control: no-store): 405 with Allow.
@app.route("/v1/sign_in_tokens", method=other_methods("POST"))
@app.route("/v1/sign_in_tokens/<sign_in_token_id>/revoke", method=other_methods("POST"))
def post_only(sign_in_token_id: str = "") -> Response[str]:
    return method_not_allowed(app, "POST")


# Correlation id: the API request id over HTTP; the batch_id for a batch (EventBridge detail, or the
# state machine's chunk), the same across redeliveries, chunks and the SignInLinkMinted events.
@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_renewal(event):
        return renew_link(event)
    if is_batch_invocation(event):
        return mint_batch(event, context)
    sign_in_tokens()  # configured (cached): the edge guard follows these settings
    return no_store(app.resolve(event, context))


# --- Init: the first request's work, done while Lambda initialises the function -----------------


def initialise() -> None:
    """Create the clients and read the API keys and the ticket signing keyring (its current key
    parsed) now, in Lambda's init phase (and, with SnapStart, before the snapshot), so that the first
    request does not. Not the published accept base URL: see aws.PUBLISHED_URL_MAX_AGE_SECONDS. A Secrets
    Manager failure is logged, not raised: the first request reads again, where an init that raised
    would fail that request and run the whole init again at the next (snapstart.warm_up)."""
    tokens = sign_in_tokens()
    with snapstart.read_later():  # a KeyringFormatError (the current key cannot sign) is logged again at the request
        live_keys(tokens.settings)
        _ = tokens.ticket_keyring().current(tokens.clock()).signer  # the Ed25519 key, parsed once
        if EDGE.read is not None:
            EDGE.read()  # the header CloudFront adds


snapstart.warm_up(initialise, sign_in_tokens, batch_minter)
