"""Clerk's Frontend API for sign-in by ticket: the use cases behind ``functions/clerk_frontend``.

No API Gateway shapes here: the handler hands in the ``__Host-client`` cookie's value, a session id
from the path and the parsed sign-in, and gets back session records and JWTs (or a
:class:`SignInLinksError`, which the one error mapping turns into Clerk's envelope).

The browser's identity (Clerk's *client*) is one session: single-session mode, Clerk's default. Its
credential, the ``__Host-client`` cookie, is ``<session id>.<secret>`` (256 random bits); the
session item keeps the SHA-256 of the secret as ``client_hash``, so a ``__client`` value never
refreshes through ``/session/refresh`` (another shape, and the refresh's write refuses a session with
a ``client_hash``) and a refresh token never authenticates a client
(``tests/robustness/test_token_confusion.py``).

Costs, by design (``bench/aws_calls.py`` shows them):

* ``sign_in``: one AWS call, the accept's ``TransactWriteItems`` (``Redemptions.accept``: the token
  pending -> accepted and the session put, conditionally, together). A browser that still holds a
  ``__Host-client`` cookie is read first (one ``GetItem``): a live session answers ``session_exists``.
* ``client``, ``token``, ``handshake``: one ``GetItem`` (the session named by the cookie), no write.
* ``touch``: that read, and an ``UpdateItem`` of ``last_active_at`` at most once a minute.
* ``sign_out``: one conditional ``UpdateItem`` (active -> ended, only with the matching hash), no read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import Keyring
from signin_links.models import SessionRecord, SessionStatus
from signin_links.observability import logger, metrics
from signin_links.redeem import Redemptions
from signin_links.request_values import AcceptRequest, SignInRequest
from signin_links.session_tokens import (
    RefreshToken,
    parse_refresh_token,
    refresh_hash,
    refresh_matches,
    session_issuer,
    session_token,
)
from signin_links.sessions import ACTIVITY_INTERVAL_MS
from signin_links.store import TokenStore

Clock = Callable[[], float]


@dataclass(frozen=True)
class ClientSession:
    """The browser's session and a fresh session JWT for it."""

    record: SessionRecord
    jwt: str = field(repr=False)


@dataclass(frozen=True)
class SignedIn:
    """A ticket sign-in: the new session, its JWT and the ``__Host-client`` value that names it."""

    record: SessionRecord
    jwt: str = field(repr=False)
    client_value: str = field(repr=False)
    max_age: int


def unauthenticated(reason: str) -> SignInLinksError:
    """401 ``authentication_invalid``: clerk-js signs the browser out. The reason is logged only."""
    logger.info("frontend api client refused", extra={"reason": reason})
    return SignInLinksError(ErrorCode.SESSION_REFRESH_INVALID)


class FrontendApi:
    """Sign-in by ticket, the browser's client, its session tokens and sign-out."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        redemptions: Redemptions,
        session_keyring: Callable[[], Keyring],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.redemptions = redemptions
        self.session_keyring = session_keyring
        self.clock = clock

    # --- sign-in ----------------------------------------------------------------------------------

    def sign_in(self, request: SignInRequest, client_value: object, *, fallback_issuer: str) -> SignedIn:
        """Redeem the ticket through the accept's use case (the same single ``TransactWriteItems``).

        Raises:
            SignInLinksError: ``session_exists`` (400, nothing written) when the browser's client
                holds a live session; ``service_unavailable`` (503) when a keyring or DynamoDB cannot
                be reached.
            Rejected: the accept's rejections (a ``SignInLinksError``): ``ticket_invalid_code`` (400),
                ``ticket_expired_code`` (400), ``sign_in_token_already_used_code`` (400),
                ``sign_in_token_revoked_code`` (400).
        """
        held = parse_refresh_token(client_value)
        if held is not None and self._live(held) is not None:
            raise SignInLinksError(ErrorCode.SESSION_EXISTS)
        outcome = self.redemptions.accept(
            AcceptRequest(token=request.ticket), fallback_issuer=fallback_issuer, for_client=True
        )
        assert outcome.session is not None  # a new session (for_client never takes the retry path)
        metrics.add_metric(name="FrontendApiSignIns", unit=MetricUnit.Count, value=1)
        return SignedIn(outcome.session, outcome.session_token, outcome.refresh_token, outcome.session_max_age)

    # --- the client and its session ---------------------------------------------------------------

    def client(self, client_value: object, *, fallback_issuer: str) -> ClientSession | None:
        """The browser's live session and a fresh JWT, or None (no cookie, a forged or stale one).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the session keyring or DynamoDB
                cannot be reached.
        """
        record = self.live_session(client_value)
        if record is None:
            return None
        return ClientSession(record, self._jwt(record, fallback_issuer))

    def live_session(self, client_value: object) -> SessionRecord | None:
        """The session a ``__Host-client`` value names when it is live, else None: one read (none
        without a well-formed value).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
        held = parse_refresh_token(client_value)
        return None if held is None else self._live(held)

    def token(self, session_id: str, client_value: object, *, fallback_issuer: str) -> ClientSession:
        """A fresh session JWT (``getToken()``): one read.

        Raises:
            SignInLinksError: ``authentication_invalid`` (401) when the cookie does not name a live
                session (clerk-js then signs the browser out); ``resource_not_found`` (404) for a
                session of another client (nothing of it read); ``service_unavailable`` (503) when
                the session keyring or DynamoDB cannot be reached.
        """
        record = self._authenticate(session_id, client_value)
        return ClientSession(record, self._jwt(record, fallback_issuer))

    def touch(self, session_id: str, client_value: object, *, fallback_issuer: str) -> ClientSession:
        """``setActive`` and activity: the session and a fresh JWT; ``last_active_at`` is written at
        most once a minute (as ``/session/refresh`` does).

        Raises:
            SignInLinksError: as :meth:`token` (401, 404, 503); the activity write's refused condition
                (another tab wrote it this minute) is not an error.
        """
        record = self._authenticate(session_id, client_value)
        now_ms = self.now_ms()
        if now_ms - record.last_active_at >= ACTIVITY_INTERVAL_MS:
            inactivity_ms = self.settings.session_inactivity_seconds * 1000
            abandon_at = min(record.expire_at, now_ms + inactivity_ms) if inactivity_ms else record.expire_at
            self.store.touch_session(record.id, now_ms, abandon_at, ACTIVITY_INTERVAL_MS)
        return ClientSession(record, self._jwt(record, fallback_issuer))

    def sign_out(self, client_value: object, session_id: str | None = None) -> SessionRecord | None:
        """End (``ended``) the session the cookie names, only with the matching secret: one conditional
        write, no read. None when there was nothing to end (the cookie is cleared anyway).

        Raises:
            SignInLinksError: ``resource_not_found`` (404) when ``session_id`` names another session
                than the cookie's; ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
        held = parse_refresh_token(client_value)
        if held is None:
            return None
        if session_id is not None and session_id != held.session_id:
            raise SignInLinksError(ErrorCode.RESOURCE_NOT_FOUND, "No session was found with that id.")
        now_ms = self.now_ms()
        new, _ = self.store.end_session(
            held.session_id,
            SessionStatus.ENDED,
            now_ms,
            now_ms // 1000 + self.settings.token_retention_seconds,
            client_hash=refresh_hash(held.secret),
        )
        if new is not None:
            metrics.add_metric(name="SessionsEnded", unit=MetricUnit.Count, value=1)
            logger.info("session ended", extra={"session_id": new.id, "status": new.status.value})
        return new

    # --- helpers ----------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Now by the use case's clock, in Unix ms (what Clerk's objects carry). Raises nothing."""
        return int(self.clock() * 1000)

    def _live(self, held: RefreshToken) -> SessionRecord | None:
        """The session the credential names, when its ``client_hash`` matches and it is active."""
        record = self.store.get_session(held.session_id)  # the one read
        if record is None or not record.client_hash or not refresh_matches(held, record.client_hash):
            return None
        if record.status_at(self.now_ms()) is not SessionStatus.ACTIVE:
            return None
        return record

    def _authenticate(self, session_id: str, client_value: object) -> SessionRecord:
        held = parse_refresh_token(client_value)
        if held is None:
            raise unauthenticated("no_client")
        if session_id != held.session_id:
            # Another client's session (or none): nothing of it is read or told.
            raise SignInLinksError(ErrorCode.RESOURCE_NOT_FOUND, "No session was found with that id.")
        record = self._live(held)
        if record is None:
            raise unauthenticated("client_not_live")
        return record

    def _jwt(self, record: SessionRecord, fallback_issuer: str) -> str:
        now = self.clock()
        return session_token(
            self.session_keyring().current(now),
            record,
            now=now,
            lifetime=self.settings.session_token_lifetime_seconds,
            issuer=session_issuer(self.settings, fallback_issuer),
        )
