"""send_link_email: one email per ``SignInLinkMinted`` event, through Amazon SES (optional; on when
the template parameter ``EmailSender`` is set).

Thin by design. The events come in batches from the email queue (an SQS event): the batch goes to
``signin_links.email_queue``, whose partial batch response is the result. An EventBridge event
invoked directly (``make invoke``, or one queued for this function before the queue existed) goes to
``LinkEmails.deliver``. Templates come from ``EMAIL_TEMPLATE_DIR`` or this function's ``templates/``.
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws
from signin_links.config import get_settings
from signin_links.email_queue import EmailQueue, is_queue_event, queue_messages
from signin_links.errors import SignInLinksError
from signin_links.events import EventPublisher
from signin_links.keyring import ticket_verification_keyring_reader
from signin_links.link_email import EmailTemplates, LinkEmails
from signin_links.observability import logger, metrics
from signin_links.send_pace import SendPace, read_quota
from signin_links.store import EmailMarkers

TEMPLATES = Path(__file__).resolve().parent / "templates"

# What this function needs set, checked at init (ConfigError names the variable); LinkEmails checks
# EMAIL_SENDER and the accept base URL (or the parameter publishing it) itself.
NEEDS = ("TICKET_VERIFICATION_KEYRING_SECRET_ID", "EVENT_BUS_NAME", "EMAIL_QUEUE_URL")


@cache
def mailer() -> LinkEmails:
    settings = get_settings().require(*NEEDS)

    return LinkEmails(
        settings,
        markers=EmailMarkers(aws.client("dynamodb"), settings.table_name),
        ses=aws.client_without_retries("sesv2"),
        publisher=EventPublisher(aws.client("events"), settings.event_bus_name),
        templates=EmailTemplates.load(
            Path(settings.email_template_dir or TEMPLATES),
            brand=settings.brand,
            default_language=settings.default_language,
        ),
        ticket_keyring=ticket_verification_keyring_reader(settings),  # public keys: it cannot mint
        published_base_url=(
            aws.published_base_url_reader(parameter) if (parameter := settings.accept_base_url_parameter) else None
        ),
    )


@cache
def queue() -> EmailQueue:
    settings = get_settings()
    ses = aws.client("sesv2")  # GetAccount only (SendEmail goes through the mailer's client, never retried)
    pace = SendPace(
        lambda: read_quota(ses), concurrency=settings.email_maximum_concurrency, cap=settings.email_send_rate
    )
    return EmailQueue(mailer(), pace, sqs=aws.client("sqs"), queue_url=settings.email_queue_url)


# Correlation id: the batch_id of an event invoked directly, as in mint_link's batch logs (a queue
# batch carries many: each line names its sign_in_token_id).
@logger.inject_lambda_context(correlation_id_path="detail.batch_id || id", clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_queue_event(event):
        return queue().handle(queue_messages(event), context.get_remaining_time_in_millis)
    return mailer().deliver(event, context.aws_request_id).to_json()


# Init: the settings checked, the clients created and the templates read while Lambda initialises the
# function (a missing or malformed setting fails the cold start, named, not the first email); the
# account's SES quota read too (GetAccount, about once a second per account: at most
# EmailMaximumConcurrency environments start at once, and one SES does not answer now reads it at
# its first batch, or returns that batch for later). Nothing here reads SSM.
mailer()
with contextlib.suppress(SignInLinksError):
    logger.info("SES pace", extra={"share_per_s": queue().pace.share(), "concurrency": queue().pace.concurrency})
