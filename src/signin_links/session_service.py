"""Use cases of a session after its sign-in: refresh, sign-out, and Clerk's ``/v1/sessions`` API.

No API Gateway shapes here: handlers hand in cookie values, ids and parsed query values, and get
back :class:`SessionRecord`s, tokens or a :class:`SignInLinksError`.

Costs, by design (``bench/aws_calls.py`` shows them):

* refresh: at most one read (the session, by the id inside ``__refresh``) and one write (either
  ``last_active_at``, at most once a minute, or the session's end when time has ended it);
* sign-out and revoke: one conditional write each (the old item comes back on a failed condition);
* get, list: one read (a Query per page of the index for a list).

Every status change is one conditional write in ``store.py`` whose old and new images tell the
change (the table's stream is the audit trail); each is also counted and logged here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from signin_links import ids
from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid
from signin_links.keyring import Keyring
from signin_links.models import SessionRecord, SessionStatus
from signin_links.observability import logger, metrics
from signin_links.sessions import issue_session, parse_refresh_token, refresh_hash, refresh_matches, verify_session
from signin_links.store import TokenStore
from signin_links.wire import SessionQuery

Clock = Callable[[], float]

ACTIVITY_INTERVAL_MS = 60_000  # last_active_at is written at most once a minute per session
METRIC_FOR = {
    SessionStatus.ENDED: "SessionsEnded",
    SessionStatus.REVOKED: "SessionsRevoked",
    SessionStatus.EXPIRED: "SessionsExpired",
    SessionStatus.ABANDONED: "SessionsAbandoned",
}


@dataclass(frozen=True)
class Refreshed:
    """A fresh session token for an active session."""

    session: SessionRecord
    token: str = field(repr=False)
    max_age: int  # seconds left of the session (the cookies' Max-Age)


def refused(reason: str) -> SignInLinksError:
    """401 for every failed refresh; the reason goes to the log and the metric only."""
    metrics.add_metric(name="SessionRefreshesRefused", unit=MetricUnit.Count, value=1)
    logger.info("session refresh refused", extra={"reason": reason})
    return SignInLinksError(ErrorCode.SESSION_REFRESH_INVALID)


def not_found() -> SignInLinksError:
    return SignInLinksError(ErrorCode.RESOURCE_NOT_FOUND, "No session was found with that id.")


class Sessions:
    """Refresh, sign-out, revoke, read and list sessions; issue session tokens."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        session_keyring: Callable[[], Keyring],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.session_keyring = session_keyring
        self.clock = clock

    def issuer(self, fallback: str) -> str:
        return self.settings.session_issuer or self.settings.accept_base_url or fallback.rstrip("/")

    # --- the browser's and the backend's refresh ------------------------------------------------

    def refresh(
        self,
        refresh_value: object,
        *,
        fallback_issuer: str,
        session_id: str | None = None,
        expired_token: str | None = None,
    ) -> Refreshed:
        """A new session token while the session named by ``refresh_value`` (``<sess id>.<secret>``) is
        active and the secret matches its hash; otherwise 401. ``session_id`` and ``expired_token``
        (Clerk's ``POST /v1/sessions/{id}/refresh``) must name the same session."""
        presented = parse_refresh_token(refresh_value)
        if presented is None:
            raise refused("malformed")
        if session_id is not None and session_id != presented.session_id:
            raise refused("another_session")
        keyring = self.session_keyring()  # before any DynamoDB call: no key, no write
        now = self.clock()
        now_ms = int(now * 1000)
        held = None
        if expired_token is not None:
            held = verify_session(expired_token, keyring, now=now, expired_for=self.settings.session_lifetime_seconds)
            if held is None or held.session_id != presented.session_id:
                raise refused("expired_token_mismatch")
        record = self.store.get_session(presented.session_id)  # the one read
        if record is None or not refresh_matches(presented, record.refresh_hash):
            raise refused("unknown_or_mismatch")
        if held is not None and held.user_id != record.user_id:
            raise refused("expired_token_mismatch")
        status = record.status_at(now_ms)
        if status is not SessionStatus.ACTIVE:
            if record.status is SessionStatus.ACTIVE:  # time ended it: record that (the one write)
                self._end(record.id, status, now_ms)
            raise refused(status.value)
        if now_ms - record.last_active_at >= ACTIVITY_INTERVAL_MS:
            self.store.touch_session(record.id, now_ms, self._abandon_at(record, now_ms), ACTIVITY_INTERVAL_MS)
        token = self._token(record, keyring, now, self.settings.session_token_lifetime_seconds, fallback_issuer)
        metrics.add_metric(name="SessionsRefreshed", unit=MetricUnit.Count, value=1)
        return Refreshed(session=record, token=token, max_age=max(0, (record.expire_at - now_ms) // 1000))

    def _abandon_at(self, record: SessionRecord, now_ms: int) -> int:
        inactivity_ms = self.settings.session_inactivity_seconds * 1000
        return min(record.expire_at, now_ms + inactivity_ms) if inactivity_ms else record.expire_at

    def _token(self, record: SessionRecord, keyring: Keyring, now: float, lifetime: int, fallback: str) -> str:
        return issue_session(
            keyring.current(now),
            session_id=record.id,
            user_id=record.user_id,
            issued_at=int(now),
            lifetime=lifetime,
            issuer=self.issuer(fallback),
            org_id=record.org_id,
            authorized_party=record.authorized_party,
        )

    # --- status changes -------------------------------------------------------------------------

    def _end(
        self, session_id: str, status: SessionStatus, now_ms: int, refresh_hash: str | None = None
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        new, old = self.store.end_session(
            session_id, status, now_ms, now_ms // 1000 + self.settings.token_retention_seconds, refresh_hash
        )
        if new is not None:
            metrics.add_metric(name=METRIC_FOR[status], unit=MetricUnit.Count, value=1)
            logger.info(f"session {status.value}", extra={"session_id": session_id, "status": status.value})
        return new, old

    def sign_out(self, refresh_value: object) -> SessionRecord | None:
        """End (``ended``) the session named by a ``__refresh`` value whose secret matches: one
        conditional write, no read. None when there was nothing to end (the cookies go anyway)."""
        presented = parse_refresh_token(refresh_value)
        if presented is None:
            return None
        new, _ = self._end(
            presented.session_id, SessionStatus.ENDED, int(self.clock() * 1000), refresh_hash(presented.secret)
        )
        return new

    def revoke(self, session_id: str) -> SessionRecord:
        """active -> revoked (``POST /v1/sessions/{id}/revoke``); 404 unknown, 400 not active."""
        self._known_shape(session_id)
        new, old = self._end(session_id, SessionStatus.REVOKED, int(self.clock() * 1000))
        if new is not None:
            return new
        if old is None:
            raise not_found()
        raise SignInLinksError(
            ErrorCode.SESSION_CANNOT_BE_REVOKED,
            f"Only active sessions can be revoked; this one is {old.status_at(int(self.clock() * 1000)).value}.",
        )

    # --- reads ----------------------------------------------------------------------------------

    @staticmethod
    def _known_shape(session_id: str) -> None:
        if not isinstance(session_id, str) or len(session_id) > 64 or not ids.is_id(session_id, ids.SESSION):
            raise not_found()

    def get(self, session_id: str) -> SessionRecord:
        self._known_shape(session_id)
        record = self.store.get_session(session_id)
        if record is None:
            raise not_found()
        return record

    def list(self, query: SessionQuery) -> tuple[list[SessionRecord], int]:
        """A page of a user's (or client's) sessions, newest first, filtered by the status they have
        now, and the total count of the filtered list."""
        if query.user_id is not None:
            found = self.store.list_sessions(user_id=query.user_id)
            if query.client_id is not None:
                found = [record for record in found if record.client_id == query.client_id]
        else:
            found = self.store.list_sessions(client_id=query.client_id)
        if query.status is not None:
            now_ms = self.now_ms()
            found = [record for record in found if record.status_at(now_ms).value == query.status]
        return found[query.offset : query.offset + query.limit], len(found)

    def create_token(self, session_id: str, expires_in_seconds: object, *, fallback_issuer: str) -> str:
        """A session token for an active session (``POST /v1/sessions/{id}/tokens``)."""
        lifetime = self.settings.session_token_lifetime_seconds
        if expires_in_seconds is not None:
            if isinstance(expires_in_seconds, bool) or not isinstance(expires_in_seconds, int):
                raise param_invalid("expires_in_seconds", "must be an integer.")
            if not 1 <= expires_in_seconds <= self.settings.session_lifetime_seconds:
                raise param_invalid(
                    "expires_in_seconds", f"must be between 1 and {self.settings.session_lifetime_seconds} seconds."
                )
            lifetime = expires_in_seconds
        keyring = self.session_keyring()
        record = self.get(session_id)
        now = self.clock()
        if record.status_at(int(now * 1000)) is not SessionStatus.ACTIVE:
            raise SignInLinksError(ErrorCode.SESSION_NOT_ACTIVE)
        return self._token(record, keyring, now, lifetime, fallback_issuer)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
