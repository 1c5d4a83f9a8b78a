"""Accepting a sign-in link: verify the token, consume it in ONE conditional write, issue a session.

No API Gateway shapes here: the accept handler hands in the token (and the ``__session`` cookie, if
the browser sent one) and gets back an :class:`Accepted` or a :class:`SignInLinksError`.

Order of work, so that a failure never leaves a consumed token without a session:

1. verify the token (HS256, key by ``kid``, expiry with a small leeway) -> invalid / expired;
2. re-check the redirect carried inside the token against today's allow-list, in the ASCII form
   the answer will carry (``redirects.py``): a token whose redirect cannot be sent (malformed, or
   off the list) is refused here, untouched (a token minted before redirects were normalised may
   carry raw non-ASCII text, which is normalised the same way mint now does);
3. load (and parse) the session signing key;
4. when the browser holds a session of another user (its ``__session`` cookie, signed by us) and the
   request does not confirm the switch: :class:`AnotherUserSignedIn`, nothing written (login CSRF);
5. ``TokenStore.redeem``: ONE ``TransactWriteItems`` (pending and unexpired -> accepted, recording
   the new session id, and the session's record with the hash of its refresh token); on failure the
   token item as it stood tells already used / revoked / expired apart, and nothing is written;
6. sign the session JWT (``SessionTokenLifetimeSeconds``) and hand back the refresh token.

The user (and org) of the session come from the ticket's signed ``uid``/``oid`` claims, so step 5
needs no read first; a token minted before those claims existed costs one ``GetItem`` more.

A token already accepted is answered with success again when the request carries the very session
that token created and that session is still active (a reload or an in-app browser re-posting the
form: one read of the session on that rare path); otherwise it is "already used".
Each outcome is counted (metrics) and logged. The write is the only AWS call: the audit events of
an accepted token and of the session it creates come from the table's stream (``signin_links.audit``,
AuditPipe), so they exist exactly when the write was committed; a rejection or a retry writes
nothing and has no event.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from signin_links import ids, refresh_tokens
from signin_links.config import MIN_ACTIVATION_MARGIN_SECONDS, Settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import Keyring
from signin_links.models import SessionRecord, SessionStatus, SignInTokenRecord, TokenStatus
from signin_links.observability import logger, metrics
from signin_links.redirects import UrlError, origin_of
from signin_links.request_values import AcceptRequest
from signin_links.session_tokens import new_refresh_token, refresh_hash, session_issuer, session_token, verify_session
from signin_links.store import RedeemRejected, TokenStore
from signin_links.ticket_verification import TicketVerifier
from signin_links.tickets import MAX_TOKEN_LENGTH, Ticket

Clock = Callable[[], float]

# Rejection reasons (metric dimension and log field), one per failure the user can see.
REASONS = {
    ErrorCode.TICKET_INVALID: "invalid",
    ErrorCode.TICKET_EXPIRED: "expired",
    ErrorCode.SIGN_IN_TOKEN_ALREADY_USED: "already_used",
    ErrorCode.SIGN_IN_TOKEN_REVOKED: "revoked",
}
REDIRECT_NOT_ALLOWED = "redirect_not_allowed"


class Rejected(SignInLinksError):
    """A rejection of a sign-in attempt, with what is known about the token (for metrics and logs)."""

    def __init__(
        self,
        code: ErrorCode,
        long_message: str | None = None,
        *,
        reason: str | None = None,
        sign_in_token_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        super().__init__(code, long_message)
        self.reason = reason or REASONS.get(code, code.wire_code)
        self.sign_in_token_id = sign_in_token_id
        self.user_id = user_id


class AnotherUserSignedIn(SignInLinksError):
    """The browser holds a session of another user and the request did not confirm the switch."""

    def __init__(self, *, signed_in_user_id: str, link_user_id: str, token: str) -> None:
        super().__init__(ErrorCode.ANOTHER_USER_SIGNED_IN)
        self.signed_in_user_id = signed_in_user_id
        self.link_user_id = link_user_id
        self.token = token

    def __repr__(self) -> str:  # never print the token
        return "AnotherUserSignedIn(<redacted>)"


@dataclass(frozen=True)
class Accepted:
    """A successful sign-in (``retried``: the same browser re-posted a token it already redeemed)."""

    sign_in_token_id: str
    user_id: str
    session_id: str
    session_token: str = field(repr=False)
    redirect_url: str | None
    org_id: str | None = None
    retried: bool = False
    refresh_token: str = field(default="", repr=False)  # empty on a retry: the browser holds its own
    session_max_age: int = 0  # seconds left of the session (the cookies' Max-Age)
    session: SessionRecord | None = field(default=None, repr=False)  # the record a new session wrote


class RedemptionMetrics:
    """Counts each outcome (Powertools metrics). It publishes nothing: the audit events of committed
    changes come from the table's stream (``signin_links.audit``), never from the request."""

    def accepted(self, outcome: Accepted) -> None:
        metrics.add_metric(name="SignInTokensAccepted", unit=MetricUnit.Count, value=1)
        if outcome.retried:
            metrics.add_metric(name="SignInTokenRetriesAccepted", unit=MetricUnit.Count, value=1)

    def rejected(self, error: Rejected) -> None:
        with single_metric(
            name="SignInTokensRejected",
            unit=MetricUnit.Count,
            value=1,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="reason", value=error.reason)


class Redemptions:
    """The accept use case: check a token (GET), redeem it (POST)."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        tickets: TicketVerifier,
        session_keyring: Callable[[], Keyring],
        *,
        metrics: RedemptionMetrics,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tickets = tickets  # public keys only: this function can check a link, never make one
        self.session_keyring = session_keyring
        self.metrics = metrics
        self.clock = clock

    def check(self, token: str) -> Ticket:
        """Signature, expiry and redirect of a token, without touching its state (the GET page).

        The ticket returned carries its redirect as the ASCII URL the answer will send.

        Raises:
            Rejected: the token is malformed, badly signed, expired, or its redirect is no longer
                allowed (``reason`` says which).
            SignInLinksError: ``service_unavailable`` (503) when the verification keyring cannot be read.
        """
        ticket = self._verify(token)
        return replace(ticket, redirect_url=self._check_redirect(ticket))

    def accept(self, request: AcceptRequest, *, fallback_issuer: str, for_client: bool = False) -> Accepted:
        """Redeem the token once and issue a session; every outcome is counted and logged.

        ``for_client`` (Clerk's Frontend API, ``POST /v1/client/sign_ins``): the session's credential
        is the browser's ``__client`` cookie, not ``__refresh``: the same write stores its hash as
        ``client_hash`` and leaves ``refresh_hash`` empty, so neither credential can stand for the
        other (``Accepted.refresh_token`` then holds the ``__client`` value).

        Raises:
            Rejected: the token does not verify, or is no longer pending (already used by another
                browser, revoked, expired): ``reason`` says which, counted and logged.
            AnotherUserSignedIn: another user is signed in in this browser and the request did not
                confirm the switch (login CSRF): the page asks.
            SignInLinksError: ``service_unavailable`` (503) when a keyring or DynamoDB cannot be reached.
        """
        try:
            outcome = self._accept(request, fallback_issuer, for_client)
        except Rejected as error:
            logger.info(
                "sign-in rejected",
                extra={"reason": error.reason, "sign_in_token_id": error.sign_in_token_id},
            )
            self.metrics.rejected(error)
            raise
        logger.info(
            "sign-in accepted",
            extra={
                "sign_in_token_id": outcome.sign_in_token_id,
                "session_id": outcome.session_id,
                "retried": outcome.retried,
            },
        )
        self.metrics.accepted(outcome)
        return outcome

    def confirmation_needed(self, *, from_another_site: bool, session_cookies: tuple[str, ...]) -> bool:
        """Whether the page must name the link's user and wait for a click (``AcceptConfirmation``):
        ``always``; ``cross-site`` for an arrival from another site in a browser that holds no
        session here (one that holds a session is asked at the POST if it is another user's);
        ``never`` keeps the one-click page.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the session keyring cannot be read
                (only for ``cross-site`` with session cookies, as :meth:`holds_session`).
        """
        mode = self.settings.accept_confirmation
        if mode == "always":
            return True
        if mode != "cross-site" or not from_another_site:
            return False
        return not self.holds_session(session_cookies)

    def holds_session(self, session_cookies: tuple[str, ...]) -> bool:
        """A ``__session`` signed by us within the session lifetime (no table read, as the switch check).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the session keyring cannot be read
                (never without session cookies: nothing is read then).
        """
        if not session_cookies:
            return False
        keyring, now = self.session_keyring(), self.clock()
        lifetime = self.settings.session_lifetime_seconds
        return any(verify_session(cookie, keyring, now=now, expired_for=lifetime) for cookie in session_cookies)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public half of every key in the session keyring (retired keys verify old sessions).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the session keyring cannot be read.
        """
        return self.session_keyring().jwks()

    def jwks_max_age(self) -> int:
        """How long a verifier may cache the JWKS.

        A new session key is published (in the secret) ``key_activation_delay`` before it signs; a
        function sees it within ``secrets_max_age``. Caching the JWKS for the rest of that window,
        less the least margin rotation keeps (``MIN_ACTIVATION_MARGIN_SECONDS``, for clock skew and slow
        re-reads), means every verifier knows a key before the first session signed with it (at most
        1 hour; 0 when the delay leaves no room, which rotation refuses anyway).

        Raises nothing: settings only.
        """
        settings = self.settings
        window = (
            settings.key_activation_delay_seconds - settings.secrets_max_age_seconds - MIN_ACTIVATION_MARGIN_SECONDS
        )
        return max(0, min(3600, window))

    def _verify(self, token: str) -> Ticket:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise Rejected(ErrorCode.TICKET_INVALID)
        try:
            return self.tickets.verify(token, now=self.clock(), leeway=self.settings.ticket_leeway_seconds)
        except SignInLinksError as error:
            if error.code in REASONS:
                raise Rejected(error.code) from None
            raise

    def _check_redirect(self, ticket: Ticket) -> str | None:
        if not ticket.redirect_url:
            return None
        try:
            target = self.settings.redirect_target(ticket.redirect_url)
        except UrlError:
            target = None
        if target is None:
            raise Rejected(
                ErrorCode.TICKET_INVALID,
                "This link leads to a destination that is no longer allowed.",
                reason=REDIRECT_NOT_ALLOWED,
                sign_in_token_id=ticket.sid,
            )
        return target

    def _accept(self, request: AcceptRequest, fallback_issuer: str, for_client: bool = False) -> Accepted:
        ticket = self.check(request.token)
        keyring = self.session_keyring()  # before the write: no key, no consumed token
        now = self.clock()
        signing_key = keyring.current(now)
        _ = signing_key.private_key  # parse the PEM now: a malformed key must fail before the write
        user_id, org_id = ticket.user_id, ticket.org_id
        if user_id is None:  # minted before tickets carried uid: read the token once
            current = self.store.get(ticket.sid)
            if current is None:
                raise Rejected(ErrorCode.TICKET_INVALID, sign_in_token_id=ticket.sid)
            user_id, org_id = current.user_id, current.org_id
        if not request.confirm_switch:
            self._refuse_silent_switch(request, user_id, keyring, now)
        settings = self.settings
        now_ms = int(now * 1000)
        expire_at = now_ms + settings.session_lifetime_seconds * 1000
        inactivity_ms = settings.session_inactivity_seconds * 1000
        session_id = ids.new_id(ids.SESSION)
        if for_client:  # the __client credential: a random secret, its hash kept (frontend.py)
            client = new_refresh_token(session_id)
            credential, client_hash = client.value, refresh_hash(client.secret)
        else:  # the refresh token of generation 0 (refresh_tokens.py): nothing of it is stored
            credential, client_hash = refresh_tokens.issue(signing_key, session_id, 0).value, None
        authorized_party = origin_of(ticket.redirect_url) if ticket.redirect_url else None
        session = SessionRecord(
            id=session_id,
            user_id=user_id,
            client_id=ids.new_id(ids.CLIENT),
            status=SessionStatus.ACTIVE,
            created_at=now_ms,
            updated_at=now_ms,
            last_active_at=now_ms,
            expire_at=expire_at,
            abandon_at=min(expire_at, now_ms + inactivity_ms) if inactivity_ms else expire_at,
            sign_in_token_id=ticket.sid,
            org_id=org_id,
            authorized_party=authorized_party,
            client_hash=client_hash,
            refresh_generation=0,
            rotated_at=now_ms,
        )
        try:
            self.store.redeem(
                ticket.sid,
                session,
                int(now),
                settings.session_ttl_for(expire_at),
                end_sessions=self._held_sessions(request.refresh_cookies, keyring),
                ended_ttl=now_ms // 1000 + settings.token_retention_seconds,
            )
        except RedeemRejected as rejected:
            return self._rejected(
                ticket,
                rejected.current,
                user_id=user_id,
                session_cookies=request.session_cookies,
                keyring=keyring,
                now=now,
                issuer=session_issuer(settings, fallback_issuer),
            )
        lifetime = settings.session_token_lifetime_seconds
        token = session_token(
            signing_key, session, now=now, lifetime=lifetime, issuer=session_issuer(settings, fallback_issuer)
        )
        return Accepted(
            sign_in_token_id=ticket.sid,
            user_id=user_id,
            session_id=session.id,
            session_token=token,
            redirect_url=ticket.redirect_url,
            org_id=org_id,
            refresh_token=credential,
            session_max_age=settings.session_lifetime_seconds,
            session=session,
        )

    @staticmethod
    def _held_sessions(refresh_cookies: tuple[str, ...], keyring: Keyring) -> list[str]:
        """The sessions this browser holds (its refresh tokens that prove themselves): a sign-in here
        ends them, in the same transaction, whoever they belong to (the same user, or a confirmed
        switch). At most four: a browser holds one, or two when a sibling host planted one."""
        held = []
        for value in refresh_tokens.distinct(refresh_cookies)[:4]:
            token = refresh_tokens.parse(value)
            if token is not None and refresh_tokens.proven(token, keyring):
                held.append(token.session_id)
        return held

    def _refuse_silent_switch(self, request: AcceptRequest, user_id: str, keyring: Keyring, now: float) -> None:
        """Login CSRF: a link of user B must not silently replace the session of user A in this browser.

        "Holds a session" means a ``__session`` cookie signed by us, issued within the session lifetime
        (its 60-second token may have expired while the session lives on). No table read: a session
        revoked meanwhile still asks for the confirmation, which is harmless.
        """
        for cookie in request.session_cookies:
            held = verify_session(cookie, keyring, now=now, expired_for=self.settings.session_lifetime_seconds)
            if held is not None and held.user_id != user_id:
                raise AnotherUserSignedIn(signed_in_user_id=held.user_id, link_user_id=user_id, token=request.token)

    def _rejected(
        self,
        ticket: Ticket,
        current: SignInTokenRecord | None,
        *,
        user_id: str,
        session_cookies: tuple[str, ...],
        keyring: Keyring,
        now: float,
        issuer: str,
    ) -> Accepted:
        """Tell the failed write's cause from the item as it stood; a same-browser retry succeeds."""
        if current is None or current.user_id != user_id:
            # Signed by us, but no such token in the table (deleted after expiry, or another stack's).
            raise Rejected(ErrorCode.TICKET_INVALID, sign_in_token_id=ticket.sid)
        if current.status is TokenStatus.ACCEPTED:
            for cookie in session_cookies:
                retried = self._same_browser(ticket, current, cookie, keyring=keyring, now=now, issuer=issuer)
                if retried is not None:
                    return retried
            code = ErrorCode.SIGN_IN_TOKEN_ALREADY_USED
        elif current.status is TokenStatus.REVOKED:
            code = ErrorCode.SIGN_IN_TOKEN_REVOKED
        else:  # still pending, so the write's expiry condition failed
            code = ErrorCode.TICKET_EXPIRED
        raise Rejected(code, sign_in_token_id=current.id, user_id=current.user_id)

    def _same_browser(
        self,
        ticket: Ticket,
        current: SignInTokenRecord,
        session_cookie: str | None,
        *,
        keyring: Keyring,
        now: float,
        issuer: str,
    ) -> Accepted | None:
        """The retry of a used link by the browser that used it, while the session it created is active."""
        if not session_cookie or not current.session_id:
            return None
        held = verify_session(session_cookie, keyring, now=now, expired_for=self.settings.session_lifetime_seconds)
        if held is None or held.user_id != current.user_id:
            return None
        if not hmac.compare_digest(held.session_id.encode(), current.session_id.encode()):
            return None
        now_ms = int(now * 1000)
        session = self.store.get_session(held.session_id)  # the rare path: one read
        if session is None or session.status_at(now_ms) is not SessionStatus.ACTIVE:
            return None
        token = session_token(
            keyring.current(now), session, now=now, lifetime=self.settings.session_token_lifetime_seconds, issuer=issuer
        )
        return Accepted(
            sign_in_token_id=current.id,
            user_id=current.user_id,
            session_id=session.id,
            session_token=token,
            redirect_url=ticket.redirect_url,
            org_id=current.org_id,
            retried=True,
            session_max_age=max(0, (session.expire_at - now_ms) // 1000),
        )
