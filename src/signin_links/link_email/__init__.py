"""Delivery by email: one email per ``SignInLinkMinted`` event through Amazon SES v2, at most once per
token (docs/batches.md).

``minted`` checks the event and the address, ``rendering`` turns a link into its email (the
templates, the reader's language, the brand), ``ses`` is SES's side (the ``SendEmail`` request, what
its errors mean), ``sending`` is the use case (:class:`LinkEmails`: prepare, claim, send, settle;
its docstring holds the rules). A handler needs only the names below.
"""

from signin_links.link_email.minted import (
    INVALID_ADDRESS,
    LINK_EXPIRED,
    NO_ADDRESS,
    OUTCOME_UNKNOWN,
    REJECTED,
    IgnoredEvent,
    MalformedEvent,
    MintedLink,
    PermanentFailure,
    parse_minted,
    recipient,
)
from signin_links.link_email.rendering import EmailTemplates, RenderedEmail
from signin_links.link_email.sending import FAILED_DETAIL_TYPE, Delivery, LinkEmails, Outbound
from signin_links.link_email.ses import REJECTING_CODES, THROTTLING_CODES, Deferred

__all__ = [
    "FAILED_DETAIL_TYPE",
    "INVALID_ADDRESS",
    "LINK_EXPIRED",
    "NO_ADDRESS",
    "OUTCOME_UNKNOWN",
    "REJECTED",
    "REJECTING_CODES",
    "THROTTLING_CODES",
    "Deferred",
    "Delivery",
    "EmailTemplates",
    "IgnoredEvent",
    "LinkEmails",
    "MalformedEvent",
    "MintedLink",
    "Outbound",
    "PermanentFailure",
    "RenderedEmail",
    "parse_minted",
    "recipient",
]
