"""Accepting a sign-in link: verify the token, consume it in ONE conditional write, issue a session.

No API Gateway shapes here: the accept handler hands in the token (and the ``__session`` cookie, if
the browser sent one) and gets back an :class:`Accepted` or a :class:`SignInLinksError`.

Order of work, so that a failure never leaves a consumed token without a session:

1. verify the token (HS256, key by ``kid``, expiry with a small leeway) -> invalid / expired;
2. re-check the redirect carried inside the token against today's allow-list;
3. load (and parse) the session signing key;
4. ``TokenStore.redeem``: pending and unexpired -> accepted, recording the new session id;
   on failure the item as it stands tells already used / revoked / expired apart;
5. sign the session JWT.

A token already accepted is answered with success again when the request carries the very session
that token created (a reload or an in-app browser re-posting the form); otherwise it is "already used".
Each outcome is counted (metrics) and logged. The write is the only AWS call: the audit event of an
accepted token comes from the table's stream (``signin_links.audit``, AuditPipe), so it exists
exactly when the write was committed; a rejection or a retry writes nothing and has no event.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from signin_links import ids
from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_missing
from signin_links.keyring import Keyring
from signin_links.models import SignInTokenRecord, TokenStatus
from signin_links.observability import logger, metrics
from signin_links.sessions import Session, issue_session, verify_session
from signin_links.store import RedeemRejected, TokenStore
from signin_links.tickets import MAX_TOKEN_LENGTH, Ticket, verify_ticket
from signin_links.wire import body_bytes, json_object

Clock = Callable[[], float]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

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


@dataclass(frozen=True)
class AcceptRequest:
    token: str
    # Every ``__session`` value the browser sent (two can arrive, set for different domains).
    session_cookies: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:  # never print the token
        return "AcceptRequest(<redacted>)"


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


def parse_accept_request(
    body: bytes | str | None,
    content_type: str | None,
    max_bytes: int,
    session_cookies: tuple[str, ...] = (),
) -> AcceptRequest:
    """The token of ``POST /accept-token``: a form (``token=...``) or JSON (``{"token": ...}``) body."""
    raw = body_bytes(body, max_bytes)
    media_type = (content_type or FORM).split(";", 1)[0].strip().lower()
    token: object = None
    if media_type == JSON or media_type.endswith("+json"):
        if raw.strip():
            token = json_object(raw).get("token")
    elif media_type in (FORM, ""):
        try:
            fields = parse_qs(raw.decode("utf-8"), max_num_fields=8, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The form could not be read.") from None
        values = fields.get("token") or []
        token = values[0] if len(values) == 1 else None
    else:
        raise SignInLinksError(
            ErrorCode.REQUEST_BODY_INVALID, 'Send the token as a form (token=...) or as JSON ({"token": ...}).'
        )
    if token is None or token == "":
        raise param_missing("token")
    if not isinstance(token, str):
        raise Rejected(ErrorCode.TICKET_INVALID)
    return AcceptRequest(token=token.strip(), session_cookies=session_cookies)


def cookie_values(cookies: list[str] | None, name: str, limit: int = 4) -> tuple[str, ...]:
    """The values of cookie ``name`` among API Gateway's ``cookies`` (``["a=b", ...]``), at most ``limit``."""
    found = [
        value.strip()
        for cookie in cookies or []
        for part in cookie.split(";")
        for key, sep, value in [part.strip().partition("=")]
        if sep and key == name and value.strip()
    ]
    return tuple(found[:limit])


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


class AuditTrail:
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
        ticket_keyring: Callable[[], Keyring],
        session_keyring: Callable[[], Keyring],
        *,
        audit: AuditTrail,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ticket_keyring = ticket_keyring
        self.session_keyring = session_keyring
        self.audit = audit
        self.clock = clock

    def check(self, token: str) -> Ticket:
        """Signature, expiry and redirect of a token, without touching its state (the GET page)."""
        ticket = self._verify(token)
        self._check_redirect(ticket)
        return ticket

    def accept(self, request: AcceptRequest, *, fallback_issuer: str) -> Accepted:
        """Redeem the token once and issue a session; every outcome is counted and logged."""
        try:
            outcome = self._accept(request, fallback_issuer)
        except Rejected as error:
            logger.info(
                "sign-in rejected",
                extra={"reason": error.reason, "sign_in_token_id": error.sign_in_token_id},
            )
            self.audit.rejected(error)
            raise
        logger.info(
            "sign-in accepted",
            extra={
                "sign_in_token_id": outcome.sign_in_token_id,
                "session_id": outcome.session_id,
                "retried": outcome.retried,
            },
        )
        self.audit.accepted(outcome)
        return outcome

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public half of every key in the session keyring (retired keys verify old sessions)."""
        return self.session_keyring().jwks()

    def jwks_max_age(self) -> int:
        """How long a verifier may cache the JWKS.

        A new session key is published (in the secret) ``key_activation_delay`` before it signs; a
        function sees it within ``secrets_max_age``. Caching the JWKS for the rest of that window
        means every verifier knows a key before the first session signed with it (at most 1 hour).
        """
        window = self.settings.key_activation_delay_seconds - self.settings.secrets_max_age_seconds
        return max(0, min(3600, window))

    def issuer(self, fallback: str) -> str:
        return self.settings.session_issuer or self.settings.accept_base_url or fallback.rstrip("/")

    def _verify(self, token: str) -> Ticket:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise Rejected(ErrorCode.TICKET_INVALID)
        try:
            return verify_ticket(
                token, self.ticket_keyring(), now=self.clock(), leeway=self.settings.ticket_leeway_seconds
            )
        except SignInLinksError as error:
            if error.code in REASONS:
                raise Rejected(error.code) from None
            raise

    def _check_redirect(self, ticket: Ticket) -> None:
        if ticket.redirect_url and not self.settings.redirect_allowed(ticket.redirect_url):
            raise Rejected(
                ErrorCode.TICKET_INVALID,
                "This link leads to a destination that is no longer allowed.",
                reason=REDIRECT_NOT_ALLOWED,
                sign_in_token_id=ticket.sid,
            )

    def _accept(self, request: AcceptRequest, fallback_issuer: str) -> Accepted:
        ticket = self.check(request.token)
        keyring = self.session_keyring()  # before the write: no key, no consumed token
        now = self.clock()
        signing_key = keyring.current(now)
        _ = signing_key.private_key  # parse the PEM now: a malformed key must fail before the write
        session_id = ids.new_id(ids.SESSION)
        try:
            record = self.store.redeem(ticket.sid, session_id, int(now), int(now * 1000))
        except RedeemRejected as rejected:
            return self._rejected(ticket, rejected.current, request.session_cookies, keyring, now)
        issued_at = int(now)
        token = issue_session(
            signing_key,
            session_id=session_id,
            user_id=record.user_id,
            issued_at=issued_at,
            lifetime=self.settings.session_lifetime_seconds,
            issuer=self.issuer(fallback_issuer),
            org_id=record.org_id,
            authorized_party=origin_of(ticket.redirect_url) if ticket.redirect_url else None,
        )
        return Accepted(
            sign_in_token_id=record.id,
            user_id=record.user_id,
            session_id=session_id,
            session_token=token,
            redirect_url=ticket.redirect_url,
            org_id=record.org_id,
        )

    def _rejected(
        self,
        ticket: Ticket,
        current: SignInTokenRecord | None,
        session_cookies: tuple[str, ...],
        keyring: Keyring,
        now: float,
    ) -> Accepted:
        """Tell the failed write's cause from the item as it stood; a same-browser retry succeeds."""
        if current is None:
            # Signed by us, but no such token in the table (deleted after expiry, or another stack's).
            raise Rejected(ErrorCode.TICKET_INVALID, sign_in_token_id=ticket.sid)
        if current.status is TokenStatus.ACCEPTED:
            for cookie in session_cookies:
                session = self._same_browser(current, cookie, keyring, now)
                if session is None:
                    continue
                return Accepted(
                    sign_in_token_id=current.id,
                    user_id=current.user_id,
                    session_id=session.session_id,
                    session_token=cookie,
                    redirect_url=ticket.redirect_url,
                    org_id=current.org_id,
                    retried=True,
                )
            code = ErrorCode.SIGN_IN_TOKEN_ALREADY_USED
        elif current.status is TokenStatus.REVOKED:
            code = ErrorCode.SIGN_IN_TOKEN_REVOKED
        else:  # still pending, so the write's expiry condition failed
            code = ErrorCode.TICKET_EXPIRED
        raise Rejected(code, sign_in_token_id=current.id, user_id=current.user_id)

    def _same_browser(
        self, current: SignInTokenRecord, session_cookie: str | None, keyring: Keyring, now: float
    ) -> Session | None:
        if not session_cookie or not current.session_id:
            return None
        session = verify_session(session_cookie, keyring, now=now)
        if session is None or session.user_id != current.user_id:
            return None
        if not hmac.compare_digest(session.session_id.encode(), current.session_id.encode()):
            return None
        return session
