"""A way back from a dead link: "Email me a new link" on the page of an expired or already-used
link posts to ``/accept-token/renew``.

The accept function cannot sign a sign-in token (only the mint holds the signing key), so it asks:
it records the request in ONE conditional write (``store.RenewalRequests.request``), and that
write's stream record becomes ``SignInLinkRenewalRequested`` on the stack's bus (``audit.py``,
``AuditPipe``): the event exists exactly when the request was recorded, and the accept holds no
``PutEvents`` grant. What happens next depends on ``LinkRenewal`` (setting ``link_renewal``):

- ``email`` (``auto`` with ``EmailSender``): only for a link the stack emailed (its email marker
  says "sent"). A rule routes the event to the mint, which mints a fresh link for the same user and
  redirect and announces it with ``renewal_of``; the email function sends it to the address on
  record for the original token, never to an address from the request.
- ``application``: for any dead link; the event is the application's to act on.
- ``off``: no renewal is offered, and a request records nothing.

At most once per original token (a second press says a link was sent), never for a revoked token
or one still usable. A forged, malformed, never-emailed or not renewable token gets the same
neutral answer as a recorded one and records nothing. A GET never requests anything: the page only
offers the form (and reads, in ``email`` mode, whether the link was emailed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from signin_links import ids
from signin_links.audit import RENEWAL_DETAIL_TYPE  # the event the audit pipe publishes for a recorded request
from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.events import SOURCE
from signin_links.models import RENEWAL_ALREADY, RENEWAL_RECORDED, RENEWAL_REFUSED
from signin_links.observability import logger, metrics
from signin_links.store import RenewalRequest, RenewalRequests
from signin_links.tickets import Ticket

EMAIL = "email"
APPLICATION = "application"
OFF = "off"
RENEWABLE = frozenset({ErrorCode.TICKET_EXPIRED, ErrorCode.SIGN_IN_TOKEN_ALREADY_USED})

Verify = Callable[[str], Ticket]  # the token's signature and claims, whatever its expiry


class Renewals:
    """The renewal use case (see the module's docstring)."""

    def __init__(
        self, settings: Settings, requests: RenewalRequests, verify: Verify, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.requests = requests
        self.verify = verify
        self.clock = clock

    @property
    def delivery(self) -> str:
        """How a renewal is delivered (``email``, ``application`` or ``off``: setting ``link_renewal``).
        Raises nothing."""
        return self.settings.link_renewal

    def offered(self, token: str, code: ErrorCode) -> bool:
        """Whether the page of a link that failed with ``code`` offers a renewal.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the verification keyring cannot be
                read. An email marker that cannot be read raises nothing: it offers nothing (the page
                still explains the dead link).
        """
        if self.delivery == OFF or code not in RENEWABLE:
            return False
        ticket = self._ticket(token)
        if ticket is None:
            return False
        if self.delivery == APPLICATION:
            return True
        try:
            return self.requests.email_sent(ticket.sid)
        except SignInLinksError:
            logger.warning("renewal not offered: the email marker could not be read")
            return False

    def request(self, token: str) -> str:
        """Record a renewal of ``token``: ``models.RENEWAL_RECORDED``, ``RENEWAL_ALREADY`` or
        ``RENEWAL_REFUSED`` (also for a token that is not ours: never an error).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the verification keyring or the
                table cannot be read or written (nothing recorded; the person presses again).
        """
        ticket = self._ticket(token) if self.delivery != OFF else None
        if ticket is None or not ticket.user_id:
            metrics.add_metric(name="LinkRenewalsRefused", unit="Count", value=1)
            return RENEWAL_REFUSED
        now = self.clock()
        renewal = RenewalRequest(
            token_id=ticket.sid,
            user_id=ticket.user_id,
            redirect_url=ticket.redirect_url,
            org_id=ticket.org_id,
            delivery=self.delivery,
            requested_at=int(now * 1000),
        )
        outcome = self.requests.request(renewal, int(now), self.settings.ttl_for(max(int(now), ticket.expires_at)))
        metric = {RENEWAL_RECORDED: "LinkRenewalsRequested", RENEWAL_ALREADY: "LinkRenewalsRepeated"}
        metrics.add_metric(name=metric.get(outcome, "LinkRenewalsRefused"), unit="Count", value=1)
        logger.info("link renewal", extra={"sign_in_token_id": ticket.sid, "outcome": outcome})
        return outcome

    def _ticket(self, token: str) -> Ticket | None:
        """The token's claims if its signature is ours (expired or not); None if it is not a token of
        this stack. A keyring that cannot be read raises (``service_unavailable``)."""
        try:
            return self.verify(token)
        except SignInLinksError as error:
            if error.code is ErrorCode.TICKET_INVALID:
                return None
            raise


# --- The mint's half: the event it consumes ----------------------------------------------------------


class NotARenewal(ValueError):
    """An event the mint's renewal rule should not have sent it; ``str()`` is safe to log."""


@dataclass(frozen=True)
class RenewalEvent:
    """A ``SignInLinkRenewalRequested`` the stack renews itself (``delivery`` "email"), checked."""

    renewal_of: str  # the dead link's sign_in_token_id
    user_id: str
    redirect_url: str | None
    org_id: str | None


def parse_renewal_event(event: object) -> RenewalEvent:
    """The renewal an EventBridge event asks the mint for, or :class:`NotARenewal`. Only the stack
    publishes source ``signin-links`` on its bus (the bus policy), from a recorded request."""
    if not isinstance(event, Mapping):
        raise NotARenewal("the event is not a JSON object")
    if event.get("source") != SOURCE or event.get("detail-type") != RENEWAL_DETAIL_TYPE:
        raise NotARenewal(f"not a {RENEWAL_DETAIL_TYPE} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or detail.get("delivery") != EMAIL:
        raise NotARenewal("not a renewal the stack delivers")
    token_id, user_id = detail.get("sign_in_token_id"), detail.get("user_id")
    redirect_url, org_id = detail.get("redirect_url"), detail.get("org_id")
    if not isinstance(token_id, str) or not ids.is_id(token_id, ids.SIGN_IN_TOKEN):
        raise NotARenewal("sign_in_token_id is missing or malformed")
    if not isinstance(user_id, str) or not user_id:
        raise NotARenewal("user_id is missing")
    if redirect_url is not None and not isinstance(redirect_url, str):
        raise NotARenewal("redirect_url is not a string")
    if org_id is not None and not isinstance(org_id, str):
        raise NotARenewal("org_id is not a string")
    return RenewalEvent(token_id, user_id, redirect_url or None, org_id or None)


def renewal_token_id(renewal_of: str) -> str:
    """The fresh link's id: derived from the dead one's, so that a redelivered event mints nothing
    twice (a sign-in token id like any other)."""
    return ids.derived_id(ids.SIGN_IN_TOKEN, "renewal", renewal_of)
