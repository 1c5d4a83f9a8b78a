"""Delivery by email, the use case: each ``SignInLinkMinted`` event becomes one email through Amazon SES v2
``SendEmail``, and no token ever gets two.

The events reach the function through the email queue (``signin_links.email_queue`` runs these steps
for a batch, paced to the account's SES rate); an event invoked directly takes :meth:`LinkEmails.deliver`.
The steps for one event:

1. **prepare** (:meth:`LinkEmails.prepare`). *Is it ours?* A ``SignInLinkMinted`` detail of source
   ``signin-links`` that is not well formed is a :class:`MalformedEvent` (the queue hands the message
   to its dead-letter queue). A well-formed one whose ``url`` is not
   ``<ACCEPT_BASE_URL>/accept-token?token=<token>``, or whose token does not verify against the
   ticket verification keyring (public keys only: this function cannot mint a link) and name the
   event's ``sign_in_token_id``, is *ignored*: logged, counted
   (``LinkEmailEventsIgnored``), nothing sent, nothing recorded. So whoever can put events on the
   bus can neither have the stack mail a link it did not mint nor block a real link's email.
   *Permanent failures before sending* (no ``metadata.email``, an address SES cannot take, a link
   already expired) are recorded, a "failed" marker keyed by the token id, and published as
   ``SignInLinkEmailFailed`` (the marker notes it was; a retry publishes what an earlier attempt
   could not). Otherwise the templates are rendered (:class:`EmailTemplates`).
2. **claim** (:meth:`LinkEmails.claim`): a conditional put of the "sending" marker (several in one
   transaction, ``EmailMarkers.claim_emails``). If a marker is there, the email is someone else's:
   "sent", "failed" or "unknown" means a duplicate delivery, nothing to do; a fresh "sending" claim
   means another delivery is sending it (look again later); a claim older than
   ``EMAIL_CLAIM_TIMEOUT_SECONDS`` outlived its claimer, and nobody can tell whether SES took the
   message: the marker becomes "unknown" and ``SignInLinkEmailFailed`` says ``outcome_unknown``.
3. **send** (:meth:`LinkEmails.send`): one ``SendEmail`` call (the client never retries by itself).
   SES *rejecting* the message (``MessageRejected``, ``BadRequestException``) is a permanent failure
   (recorded, published). SES *refusing* it for now (throttled, account paused, SES unavailable, no
   connection) means nothing was sent: :class:`Deferred`, and the claim is given back
   (:meth:`LinkEmails.release`) for a later attempt; nothing here ever sleeps on it. A request that
   may have reached SES without an answer (a read timeout, a dropped connection) is never sent
   again: "unknown", published.
4. **settle** (:meth:`LinkEmails.settle`): "sent" with SES's message id.

At most once, not exactly once: the only way to a second email would be a second ``SendEmail``
after SES accepted the first, and a claim is given back only when SES answered that it did not
accept the message. The price is the "unknown" outcome: a delivery that dies between its claim and
SES's answer leaves an email that may or may not have gone, which is published, not resent.

Nothing here logs an address, a URL or a token; events carry the token id, never the link.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formataddr
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from signin_links import i18n
from signin_links.config import ConfigError, Settings
from signin_links.display import display_name
from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.events import EventPublisher
from signin_links.keyring import Keyring
from signin_links.link_email.minted import (
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
from signin_links.link_email.rendering import EmailTemplates, RenderedEmail, clean
from signin_links.link_email.ses import REJECTING_CODES, THROTTLING_CODES, Deferred, send_email_request
from signin_links.models import EMAIL_FAILED, EMAIL_SENDING, EMAIL_SENT, EMAIL_UNKNOWN, EmailMarker
from signin_links.observability import count, logger
from signin_links.store import EmailMarkers
from signin_links.ticket_verification import verify_ticket

FAILED_DETAIL_TYPE = "SignInLinkEmailFailed"


@dataclass(frozen=True)
class Delivery:
    """What happened to one event (the function's result; never an address or a link)."""

    outcome: str  # sent | failed | unknown | duplicate | in_progress | ignored
    sign_in_token_id: str | None = None
    message_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class Outbound:
    """An email ready to send: the link checked, the address taken, the templates rendered, and who
    claims it (the queue message's id, or the Lambda request id of an event invoked directly)."""

    link: MintedLink
    address: str = field(repr=False)
    email: RenderedEmail = field(repr=False)
    claimer: str
    claimed_at: int = 0  # Unix ms, once claimed


class LinkEmails:
    """The delivery-by-email use case (see the module's docstring): :meth:`prepare`, :meth:`claim`,
    :meth:`send` and :meth:`settle` are its steps (the email queue runs them for a batch,
    ``signin_links.email_queue``); :meth:`deliver` runs them all for one event."""

    def __init__(
        self,
        settings: Settings,
        *,
        markers: EmailMarkers,
        ses: Any,
        publisher: EventPublisher,
        templates: EmailTemplates,
        ticket_keyring: Callable[[], Keyring],
        published_base_url: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.email_sender:
            raise ConfigError("EMAIL_SENDER (template parameter EmailSender) must be set to send link emails")
        try:
            sender = recipient({"email": settings.email_sender})
        except PermanentFailure:
            raise ConfigError(f"EMAIL_SENDER: {settings.email_sender!r} is not an email address") from None
        if not settings.accept_base_url and published_base_url is None:
            raise ConfigError(
                "no accept base URL to check links against: set ACCEPT_BASE_URL (template parameter AcceptBaseUrl) "
                "or ACCEPT_BASE_URL_PARAMETER (the stack's AcceptBaseUrlParameter)"
            )
        self.settings = settings
        self.markers = markers
        self.ses = ses
        self.publisher = publisher
        self.templates = templates
        self.ticket_keyring = ticket_keyring  # the verification keyring: public keys only
        self.published_base_url = published_base_url
        self.clock = clock
        name = clean(settings.email_sender_name or settings.brand.app_name).replace("\n", " ").strip()
        self.from_address = formataddr((name, sender)) if name else sender

    def deliver(self, event: object, request_id: str) -> Delivery:
        """Send the email of one ``SignInLinkMinted`` event invoked directly (not through the queue),
        at most once per token. A malformed or foreign event is "ignored", never an error.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when nothing was sent and a retry may
                succeed: SES refused it for now, another invocation holds a fresh claim on it, or the
                keyring, the base URL, DynamoDB or EventBridge cannot be reached.
            ConfigError: the stack publishes no accept base URL (as :meth:`base_url`).
        """
        try:
            prepared = self.prepare(event, request_id)
        except MalformedEvent as exc:
            return self._ignore(exc)
        if isinstance(prepared, Delivery):
            return self._finished(prepared)
        (claimed,) = self.claim([prepared])
        if isinstance(claimed, Delivery):
            return self._finished(claimed)
        try:
            delivery = self.send(claimed)
        except Deferred:
            self.release([claimed])
            raise unavailable("Amazon SES") from None
        if delivery.outcome == "sent":
            self.settle([(claimed, delivery.message_id or "")])
        return delivery

    @staticmethod
    def _finished(delivery: Delivery) -> Delivery:
        if delivery.outcome == "in_progress":  # look again later: the claimer may have died
            raise unavailable("the email's claim")
        return delivery

    def base_url(self) -> str:
        """Where this stack's links point: the configured URL, else the one the stack publishes (as
        mint_link reads it).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the published URL cannot be read
                (Lambda retries).
            ConfigError: the published URL is empty (a deployment error).
        """
        url = self.settings.accept_base_url
        if not url and self.published_base_url is not None:
            url = self.published_base_url().rstrip("/")
        if not url:
            raise ConfigError("the stack publishes no accept base URL (ACCEPT_BASE_URL_PARAMETER is empty)")
        return url

    # -- the steps --------------------------------------------------------------------------------

    def prepare(self, event: object, claimer: str) -> Outbound | Delivery:
        """Check the event and get its email ready; a :class:`Delivery` when there is nothing to
        send: "ignored" (not a link of this stack), "failed" (recorded and published: no address,
        an address SES cannot take, an expired link), or what stands when a marker is there.

        Raises:
            MalformedEvent: the event is not a well-formed ``SignInLinkMinted`` (the queue sends its
                message to the dead-letter queue).
            SignInLinksError: ``service_unavailable`` (503) when the keyring, the base URL, DynamoDB
                or EventBridge cannot be reached (nothing was sent).
            ConfigError: as :meth:`base_url`.
        """
        try:
            link = self._verified(parse_minted(event, self.base_url()))
        except MalformedEvent:
            raise
        except IgnoredEvent as exc:
            return self._ignore(exc)
        try:
            if link.expires_at_ms <= self._now_ms() - self.settings.ticket_leeway_seconds * 1000:
                raise PermanentFailure(LINK_EXPIRED)
            if link.renewal_of:
                link = self._on_record(link)
            address = recipient(link.metadata)
        except PermanentFailure as failure:
            return self._fail_before_sending(link, claimer, failure)
        # Rendered before the claim: nothing may fail between claiming and sending.
        return Outbound(link, address, self.templates.render(link), claimer)

    def claim(self, outbound: Sequence[Outbound]) -> list[Outbound | Delivery]:
        """Claim each email (distinct tokens): the claimed :class:`Outbound` where this claimer now
        holds it, else what stands ("duplicate", "in_progress", "unknown" or "failed"; see
        :meth:`_held`). Several go in one transaction; if it is cancelled (one is held), one at a time.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when DynamoDB or EventBridge cannot be reached
                (nothing was sent; the messages are returned for later).
        """
        now_ms = self._now_ms()
        claimed = [replace(item, claimed_at=now_ms) for item in outbound]
        if len(outbound) > 1 and self.markers.claim_emails(
            [(item.link.token_id, item.claimer, self._ttl(item.link)) for item in outbound], now_ms
        ):
            return list(claimed)
        results: list[Outbound | Delivery] = []
        for item in claimed:
            held = self.markers.claim_email(item.link.token_id, item.claimer, now_ms, self._ttl(item.link))
            results.append(item if held is None else self._held(item.link, held, item.claimer))
        return results

    def send(self, outbound: Outbound) -> Delivery:
        """One ``SendEmail`` call for a claimed email (never repeated: the client does not retry).
        "sent" with SES's message id (:meth:`settle` records it); "failed" when SES rejects the
        message and "unknown" when it may have reached SES without an answer (both recorded and
        published).

        Raises:
            Deferred: SES did not take it for now (throttled, paused, unreachable): nothing was sent
                and the claim is still held (the caller releases it).
            SignInLinksError: ``service_unavailable`` (503) when SES rejected or did not answer and
                the outcome could not be recorded or published (DynamoDB, EventBridge); the marker
                says what happened, and a later delivery announces it.
        """
        link = outbound.link
        try:
            response = self.ses.send_email(
                **send_email_request(
                    outbound.email,
                    from_address=self.from_address,
                    to_address=outbound.address,
                    sign_in_token_id=link.token_id,
                    configuration_set=self.settings.email_configuration_set,
                )
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REJECTING_CODES:
                return self._settle_failed(outbound, PermanentFailure(REJECTED, code))
            throttled = code in THROTTLING_CODES
            count("LinkEmailsThrottled" if throttled else "LinkEmailsDeferred")
            logger.warning(
                "SES did not take the link email for now",
                extra={"sign_in_token_id": link.token_id, "ses_error": code or "ClientError"},
            )
            raise Deferred(code or type(exc).__name__, throttled=throttled) from None
        except HTTPClientError as exc:  # the request may have reached SES: never send it again
            return self._settle_unknown(outbound, type(exc).__name__)
        except BotoCoreError as exc:  # no connection: nothing was sent
            count("LinkEmailsDeferred")
            logger.warning("SES unreachable", extra={"sign_in_token_id": link.token_id, "error": type(exc).__name__})
            raise Deferred(type(exc).__name__, throttled=False) from None
        message_id = str(response.get("MessageId", ""))
        logger.info("link email sent", extra={"sign_in_token_id": link.token_id, "message_id": message_id})
        count("LinkEmailsSent")
        return Delivery("sent", link.token_id, message_id=message_id)

    def settle(self, sent: Sequence[tuple[Outbound, str]]) -> None:
        """Record "sent" (with SES's message id) on the markers of claimed emails SES took, all in
        one write (``EmailMarkers.record_sent``).

        Raises nothing: the emails went, and failing now would only have them reported "unknown"
        later; a marker left "sending" is logged.
        """
        if not sent:
            return
        now_ms = self._now_ms()
        markers = [
            (
                EmailMarker(
                    item.link.token_id,
                    EMAIL_SENT,
                    item.claimer,
                    item.claimed_at,
                    now_ms,
                    message_id=message_id,
                    address=item.address,
                    language=i18n.for_locale(item.link.metadata.get("locale"), self.templates.default_language),
                    name=display_name(item.link.metadata.get("first_name")),
                ),
                self._ttl(item.link),
            )
            for item, message_id in sent
        ]
        try:
            self.markers.record_sent(markers)
        except SignInLinksError:
            logger.warning(
                "emails sent, but their markers could not be set to sent",
                extra={"sign_in_token_ids": [item.link.token_id for item, _ in sent]},
            )

    def release(self, outbound: Sequence[Outbound]) -> None:
        """Give back claims on emails SES did not take (or that were never tried): a later delivery
        may claim them again.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when DynamoDB cannot be reached (the
                claims then time out, and their emails are reported "unknown", never sent twice).
        """
        for item in outbound:
            self.markers.release_email(item.link.token_id, item.claimer)

    # -- inside the steps -------------------------------------------------------------------------

    @staticmethod
    def _ignore(exc: IgnoredEvent) -> Delivery:
        logger.warning("event ignored: not a link this stack minted", extra={"reason": str(exc)})
        count("LinkEmailEventsIgnored")
        return Delivery("ignored", reason=str(exc))

    def _verified(self, link: MintedLink) -> MintedLink:
        """``link`` once its token verifies and names it, with the token's own expiry (an expired
        token verifies here; :meth:`prepare` reports it)."""
        try:
            # now=0: expiry is judged by prepare() (a permanent failure, not a foreign event), so only
            # the signature, the kid and the claims decide here.
            ticket = verify_ticket(link.token, self.ticket_keyring(), now=0, leeway=0)
        except SignInLinksError as exc:
            if exc.code is ErrorCode.TICKET_INVALID:
                raise IgnoredEvent("the link's token does not verify") from None
            raise  # the keyring could not be read: the message is kept for later
        if ticket.sid != link.token_id:
            raise IgnoredEvent("the link's token is not the event's sign_in_token_id")
        return replace(link, expires_at_ms=ticket.expires_at * 1000)

    def _on_record(self, link: MintedLink) -> MintedLink:
        """A renewed link addressed as its dead link's email was: the address, language and name on
        that email's marker (never an address from an event); ``no_address`` if there is none."""
        assert link.renewal_of is not None
        sent = self.markers.sent_to(link.renewal_of)
        if sent is None:
            raise PermanentFailure(NO_ADDRESS)
        return replace(link, metadata={"email": sent.address, "locale": sent.language, "first_name": sent.name})

    def _fail_before_sending(self, link: MintedLink, claimer: str, failure: PermanentFailure) -> Delivery:
        held = self.markers.record_email_failure(
            link.token_id, claimer, failure.reason, self._now_ms(), self._ttl(link)
        )
        if held is not None:
            return self._held(link, held, claimer)
        self._announce(link, failure.reason, failure.error_code)
        return Delivery("failed", link.token_id, reason=failure.reason)

    def _held(self, link: MintedLink, marker: EmailMarker, claimer: str) -> Delivery:
        """The token's email is already someone's: say what stands, and finish what is unfinished.

        A "sending" marker is a claim: fresh ones are "in_progress" (look again later), and one older
        than ``EMAIL_CLAIM_TIMEOUT_SECONDS`` (longer than any invocation lives) outlived its claimer,
        which may or may not have sent the email: it becomes "unknown", announced, never resent."""
        if marker.status in (EMAIL_FAILED, EMAIL_UNKNOWN) and not marker.announced:
            self._announce(link, marker.reason or OUTCOME_UNKNOWN, None)  # an earlier run could not publish it
            return Delivery(
                "failed" if marker.status == EMAIL_FAILED else "unknown", link.token_id, reason=marker.reason
            )
        if marker.status != EMAIL_SENDING:
            logger.info("email already handled", extra={"sign_in_token_id": link.token_id, "status": marker.status})
            count("LinkEmailDuplicates")
            return Delivery("duplicate", link.token_id, reason=marker.status)
        if self._now_ms() - marker.claimed_at <= self.settings.email_claim_timeout_seconds * 1000:
            logger.info("email claimed by another delivery", extra={"sign_in_token_id": link.token_id})
            return Delivery("in_progress", link.token_id)
        if not self.markers.take_over_email(link.token_id, marker.request_id, claimer, self._now_ms()):
            return Delivery("duplicate", link.token_id, reason="taken over by another delivery")
        logger.warning(
            "an earlier delivery died while sending: whether the email went is unknown, so it is not resent",
            extra={"sign_in_token_id": link.token_id},
        )
        self._announce(link, OUTCOME_UNKNOWN, None)
        return Delivery("unknown", link.token_id, reason=OUTCOME_UNKNOWN)

    def _settle_failed(self, outbound: Outbound, failure: PermanentFailure) -> Delivery:
        link = outbound.link
        self.markers.settle_email(link.token_id, outbound.claimer, EMAIL_FAILED, self._now_ms(), reason=failure.reason)
        logger.warning(
            "SES rejected the link email",
            extra={"sign_in_token_id": link.token_id, "ses_error": failure.error_code},
        )
        self._announce(link, failure.reason, failure.error_code)
        return Delivery("failed", link.token_id, reason=failure.reason)

    def _settle_unknown(self, outbound: Outbound, error: str) -> Delivery:
        link = outbound.link
        self.markers.settle_email(
            link.token_id, outbound.claimer, EMAIL_UNKNOWN, self._now_ms(), reason=OUTCOME_UNKNOWN
        )
        logger.warning(
            "SES did not answer: whether the email went is unknown, so it is not resent",
            extra={"sign_in_token_id": link.token_id, "error": error},
        )
        self._announce(link, OUTCOME_UNKNOWN, error)
        return Delivery("unknown", link.token_id, reason=OUTCOME_UNKNOWN)

    def _announce(self, link: MintedLink, reason: str, error_code: str | None) -> None:
        """Publish ``SignInLinkEmailFailed`` (ids and the reason; never the address or the link)."""
        detail = {
            "sign_in_token_id": link.token_id,
            "user_id": link.user_id,
            "batch_id": link.batch_id,
            "reason": reason,
            "error_code": error_code,
        }
        count("LinkEmailsFailed")
        logger.warning("link email not sent", extra={"sign_in_token_id": link.token_id, "reason": reason})
        if not self.publisher.publish_one(FAILED_DETAIL_TYPE, detail):
            raise unavailable("EventBridge")  # the marker stays unannounced: the retry publishes it
        self.markers.mark_email_announced(link.token_id)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _ttl(self, link: MintedLink) -> int:
        return max(int(self.clock()), link.expires_at_ms // 1000) + self.settings.token_retention_seconds
