"""Use cases of a session after its sign-in: refresh, sign-out, and Clerk's ``/v1/sessions`` API.

No API Gateway shapes here: handlers hand in cookie values, ids and parsed query values, and get
back :class:`SessionRecord`s, tokens or a :class:`SignInLinksError`.

Costs, by design (``bench/aws_calls.py`` shows them):

* refresh: ONE conditional ``UpdateItem`` (the rotation, with the activity); a second call only on
  the rare paths: a reused refresh token (the session's revocation) or a session that time ended
  (recording it). A refresh token that does not prove itself costs no call;
* sign-out and revoke: one conditional write per session (the old item comes back on a failed
  condition);
* get, list: one read (a Query per page of the index for a list).

Every status change is one conditional write in ``store/`` whose old and new images tell the
change (the table's stream is the audit trail); each is also counted and logged here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from signin_links import ids, refresh_tokens
from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid
from signin_links.keyring import Keyring
from signin_links.models import SessionRecord, SessionStatus
from signin_links.observability import logger, metrics
from signin_links.refresh_tokens import RefreshToken
from signin_links.request_values import SessionQuery
from signin_links.session_tokens import session_issuer, session_token, verify_session
from signin_links.store import TokenStore

Clock = Callable[[], float]

ACTIVITY_INTERVAL_MS = 60_000  # the Frontend API's touch writes last_active_at at most once a minute
REFRESH_REUSED = "refresh_token_reused"  # status_reason of a session revoked for a reused refresh token
SIGNED_OUT = "signed_out"  # status_reason of a session its browser signed out
ALL_REVOKED = "all_sessions_revoked"  # status_reason of a session POST /v1/sessions/revoke ended
REVOKE_ALL_CONCURRENCY = 8  # conditional writes at once (the table is on-demand; one user's sessions)
METRIC_FOR = {
    SessionStatus.ENDED: "SessionsEnded",
    SessionStatus.REVOKED: "SessionsRevoked",
    SessionStatus.EXPIRED: "SessionsExpired",
    SessionStatus.ABANDONED: "SessionsAbandoned",
}


@dataclass(frozen=True)
class Refreshed:
    """A fresh session token for an active session, and the refresh token the browser now holds."""

    session: SessionRecord
    token: str = field(repr=False)
    max_age: int  # seconds left of the session (the cookies' Max-Age)
    refresh_token: str = field(default="", repr=False)  # to set as the cookie; "" when it must not change


class RefreshRefused(SignInLinksError):
    """401 for every failed refresh; ``reason`` goes to the log and the metric only. ``clear_cookies``
    is False when the request must change nothing, not even the browser's cookies (two refresh
    cookies: one of them was planted, and clearing ours would sign the victim out for the attacker)."""

    def __init__(self, reason: str, *, clear_cookies: bool = True) -> None:
        super().__init__(ErrorCode.SESSION_REFRESH_INVALID)
        self.reason = reason
        self.clear_cookies = clear_cookies


def refused(reason: str, *, clear_cookies: bool = True) -> RefreshRefused:
    metrics.add_metric(name="SessionRefreshesRefused", unit=MetricUnit.Count, value=1)
    logger.info("session refresh refused", extra={"reason": reason})
    return RefreshRefused(reason, clear_cookies=clear_cookies)


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

    # --- the browser's and the backend's refresh ------------------------------------------------

    def refresh(
        self,
        refresh_values: tuple[str, ...],
        *,
        rotate: bool,
        fallback_issuer: str,
        session_id: str | None = None,
        expired_token: str | None = None,
    ) -> Refreshed:
        """A new session token while the session named by the refresh token is active; otherwise 401.

        ``refresh_values``: every refresh token the request carried (cookies of every refresh name,
        or the backend's one ``refresh_token``). Two different ones change nothing (a sibling host
        planted one: which session is this browser's?). The token must prove itself
        (``refresh_tokens.proven``) before any DynamoDB call. Then ONE conditional write records the
        activity and, with ``rotate``, moves the session to the next generation, whose token the
        answer carries. When the write's condition fails, the item as it stood tells why:

        * the previous generation within ``RefreshReuseGraceSeconds`` of its rotation: another tab
          won the race, or the browser lost the answer. Success, no write, and the current token
          again (deterministic: the same value the winner got, so it overwrites nothing newer);
        * an older generation, or the previous one after the grace: the token was copied and both
          copies are in use. The session is revoked (``status_reason`` ``refresh_token_reused``,
          metric ``SessionRefreshReuseDetected``, the ``SessionRevoked`` audit event) and 401: the
          newest token is refused too from then on;
        * ended by time (still recorded ``active``): that is recorded; 401. Not active: 401.

        ``session_id`` and ``expired_token`` (Clerk's ``POST /v1/sessions/{id}/refresh``) must name
        the same session. ``rotate`` is False for Clerk's ``format=token``: the backend has no way to
        hand the browser a new cookie, so its token stays valid (docs/api.md).

        Raises:
            RefreshRefused: 401, ``reason`` says why (missing, malformed, not proven, unknown or
                inactive session, a reuse); the answer clears the refresh cookies unless two were sent.
            SignInLinksError: ``service_unavailable`` (503) when the keyring or DynamoDB cannot be reached.
        """
        values = refresh_tokens.distinct(refresh_values)
        if len(values) > 1:
            raise refused("several_refresh_tokens", clear_cookies=False)
        presented = refresh_tokens.parse(values[0]) if values else None
        if presented is None:
            raise refused("malformed" if values else "missing")
        keyring = self.session_keyring()  # before any DynamoDB call: no key, no write
        if not refresh_tokens.proven(presented, keyring):
            raise refused("not_proven")
        if session_id is not None and session_id != presented.session_id:
            raise refused("another_session")
        now = self.clock()
        now_ms = int(now * 1000)
        held = None
        if expired_token is not None:
            held = verify_session(expired_token, keyring, now=now, expired_for=self.settings.session_lifetime_seconds)
            if held is None or held.session_id != presented.session_id:
                raise refused("expired_token_mismatch")
        new, old = self.store.refresh_session(  # the one write
            presented.session_id, presented.generation, now_ms, rotate=rotate, abandon_at=self._abandon_at(now_ms)
        )
        record = new or self._after_refused_write(presented, old, now_ms, rotate)
        if held is not None and held.user_id != record.user_id:
            raise refused("expired_token_mismatch")
        token = self._token(record, keyring, now, self.settings.session_token_lifetime_seconds, fallback_issuer)
        handed = ""
        if rotate:
            handed = refresh_tokens.issue(keyring.current(now), record.id, record.refresh_generation).value
        metrics.add_metric(name="SessionsRefreshed", unit=MetricUnit.Count, value=1)
        return Refreshed(
            session=record,
            token=token,
            max_age=max(0, (record.expire_at - now_ms) // 1000),
            refresh_token=handed,
        )

    def _after_refused_write(
        self, presented: RefreshToken, old: SessionRecord | None, now_ms: int, rotate: bool
    ) -> SessionRecord:
        """Why the refresh's write was refused, from the item as it stood: the session to answer
        for (a race lost within the grace), or a :class:`RefreshRefused`."""
        if old is None or old.client_hash:
            raise refused("unknown_session")
        status = old.status_at(now_ms)
        if status is not SessionStatus.ACTIVE:
            if old.status is SessionStatus.ACTIVE:  # time ended it: record that (the second call)
                self._end(old.id, status, now_ms)
            raise refused(status.value)
        current = old.refresh_generation
        grace_ms = self.settings.refresh_reuse_grace_seconds * 1000
        if presented.generation == current - 1 and now_ms - old.rotated_at <= grace_ms:
            metrics.add_metric(name="SessionRefreshesWithinGrace", unit=MetricUnit.Count, value=1)
            return old
        if presented.generation < current:
            revoked, _ = self._end(old.id, SessionStatus.REVOKED, now_ms, reason=REFRESH_REUSED)
            metrics.add_metric(name="SessionRefreshReuseDetected", unit=MetricUnit.Count, value=1)
            logger.warning(
                "refresh token reused: session revoked",
                extra={
                    "session_id": old.id,
                    "presented_generation": presented.generation,
                    "current_generation": current,
                    "revoked": revoked is not None,
                },
            )
            raise refused("reused")
        raise refused("generation_ahead")  # proven, yet never issued: a key leaked, or a bug

    def _abandon_at(self, now_ms: int) -> int | None:
        """The new ``abandon_at`` after activity at ``now_ms``, or None when inactivity is off (then
        ``abandon_at`` stays ``expire_at``). It may pass ``expire_at``: expiry comes first."""
        inactivity = self.settings.session_inactivity_seconds
        return now_ms + inactivity * 1000 if inactivity else None

    def _token(self, record: SessionRecord, keyring: Keyring, now: float, lifetime: int, fallback: str) -> str:
        return session_token(
            keyring.current(now), record, now=now, lifetime=lifetime, issuer=session_issuer(self.settings, fallback)
        )

    # --- status changes -------------------------------------------------------------------------

    def _end(
        self, session_id: str, status: SessionStatus, now_ms: int, *, reason: str | None = None
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        new, old = self.store.end_session(
            session_id, status, now_ms, now_ms // 1000 + self.settings.token_retention_seconds, reason=reason
        )
        if new is not None:
            metrics.add_metric(name=METRIC_FOR[status], unit=MetricUnit.Count, value=1)
            logger.info(
                f"session {status.value}", extra={"session_id": session_id, "status": status.value, "reason": reason}
            )
        return new, old

    def sign_out(self, refresh_values: tuple[str, ...]) -> list[SessionRecord]:
        """End (``ended``) every session named by the request's refresh tokens that prove themselves
        (a browser holding two, one planted by a sibling host, signs out of both): one conditional
        write each, no read. The sessions ended (none: the cookies go anyway).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the keyring or DynamoDB cannot be reached.
        """
        tokens = [token for value in refresh_tokens.distinct(refresh_values) if (token := refresh_tokens.parse(value))]
        if not tokens:
            return []
        keyring = self.session_keyring()
        now_ms = self.now_ms()
        ended = []
        for session_id in dict.fromkeys(token.session_id for token in tokens if refresh_tokens.proven(token, keyring)):
            new, _ = self._end(session_id, SessionStatus.ENDED, now_ms, reason=SIGNED_OUT)
            if new is not None:
                ended.append(new)
        return ended

    def revoke(self, session_id: str) -> SessionRecord:
        """active -> revoked (``POST /v1/sessions/{id}/revoke``).

        Raises:
            SignInLinksError: ``resource_not_found`` (404) for an unknown session;
                ``session_cannot_be_revoked_code`` (400) for one that is not active;
                ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
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
        """One session (``GET /v1/sessions/{id}``).

        Raises:
            SignInLinksError: ``resource_not_found`` (404) for an unknown session;
                ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
        self._known_shape(session_id)
        record = self.store.get_session(session_id)
        if record is None:
            raise not_found()
        return record

    def list(self, query: SessionQuery) -> tuple[list[SessionRecord], int | None]:
        """A page of a user's (or client's) sessions, newest first, filtered in the query by the status
        they have now, and, for Clerk's paginated shape, the true count of every matching session.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
        return self.store.list_sessions(
            user_id=query.user_id,
            client_id=query.client_id,
            status=query.status,
            now_ms=self.now_ms(),
            offset=query.offset,
            limit=query.limit,
            count=query.paginated,
        )

    def revoke_all(self, user_id: str) -> int:
        """Revoke every session of ``user_id`` that is active now (``POST /v1/sessions/revoke``, the
        leaked-key playbook's last step; Clerk has no such call): one conditional write each, a few at
        once, ``status_reason`` ``all_sessions_revoked``. Sessions created meanwhile are not covered:
        cut off what mints them first. Idempotent: a second call revokes what is left (nothing).
        Returns how many this call revoked.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when DynamoDB cannot be reached (what was
                revoked stays revoked; a retry revokes the rest).
        """
        now_ms = self.now_ms()
        ttl = now_ms // 1000 + self.settings.token_retention_seconds

        def revoke(session_id: str) -> bool:  # in a worker thread: no metrics or logs here
            new, _ = self.store.end_session(session_id, SessionStatus.REVOKED, now_ms, ttl, reason=ALL_REVOKED)
            return new is not None

        revoked = 0
        with ThreadPoolExecutor(max_workers=REVOKE_ALL_CONCURRENCY) as pool:
            for ids_page in self.store.active_session_ids(user_id, now_ms):
                revoked += sum(pool.map(revoke, ids_page))
        if revoked:
            metrics.add_metric(name=METRIC_FOR[SessionStatus.REVOKED], unit=MetricUnit.Count, value=revoked)
        logger.info("every session of a user revoked", extra={"user_id": user_id, "revoked": revoked})
        return revoked

    def create_token(self, session_id: str, expires_in_seconds: object, *, fallback_issuer: str) -> str:
        """A session token for an active session (``POST /v1/sessions/{id}/tokens``), living at most
        ``MaxSessionTokenSeconds`` (10 minutes by default): a token outlives any revocation, so the
        API does not sign one for the session's whole life.

        Raises:
            SignInLinksError: ``form_param_value_invalid`` (422) for an ``expires_in_seconds`` that is not an
                integer in range; ``resource_not_found`` (404) for an unknown session;
                ``session_not_active`` (400) for one that is not active; ``service_unavailable`` (503) when
                the keyring or DynamoDB cannot be reached.
        """
        cap = self.settings.max_session_token_seconds
        lifetime = min(self.settings.session_token_lifetime_seconds, cap)
        if expires_in_seconds is not None:
            if isinstance(expires_in_seconds, bool) or not isinstance(expires_in_seconds, int):
                raise param_invalid("expires_in_seconds", "must be an integer.")
            if not 1 <= expires_in_seconds <= cap:
                raise param_invalid("expires_in_seconds", f"must be between 1 and {cap} seconds.")
            lifetime = expires_in_seconds
        keyring = self.session_keyring()
        record = self.get(session_id)
        now = self.clock()
        if record.status_at(int(now * 1000)) is not SessionStatus.ACTIVE:
            raise SignInLinksError(ErrorCode.SESSION_NOT_ACTIVE)
        return self._token(record, keyring, now, lifetime, fallback_issuer)

    def now_ms(self) -> int:
        """Now by the use case's clock, in Unix ms (what Clerk's objects carry). Raises nothing."""
        return int(self.clock() * 1000)
