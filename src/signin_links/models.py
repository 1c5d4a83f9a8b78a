"""Domain objects (no AWS or HTTP types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TokenStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


@dataclass(frozen=True)
class SignInTokenRecord:
    """What the table holds for one sign-in token. Never the token itself."""

    id: str
    user_id: str
    status: TokenStatus
    created_at: int  # Unix ms
    updated_at: int  # Unix ms
    expires_at: int  # Unix s
    expires_in_seconds: int
    redirect_url: str | None = None
    org_id: str | None = None
    batch_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class SignInToken:
    """A record plus, right after minting, the token and its URL (never stored)."""

    record: SignInTokenRecord
    token: str = field(default="", repr=False)
    url: str = field(default="", repr=False)


# --- Sessions ---------------------------------------------------------------------------------


class SessionStatus(StrEnum):
    """Clerk's session statuses this service uses. ``expired`` and ``abandoned`` follow from time:
    an ``active`` record past ``expire_at`` / ``abandon_at`` *is* expired / abandoned (see
    :meth:`SessionRecord.status_at`), whether or not a write has recorded it yet."""

    ACTIVE = "active"
    ENDED = "ended"  # the user signed out
    REVOKED = "revoked"  # the application revoked it (POST /v1/sessions/{id}/revoke)
    EXPIRED = "expired"  # past expire_at (SessionLifetimeSeconds after sign-in)
    ABANDONED = "abandoned"  # past abandon_at (SessionInactivitySeconds without a refresh)


@dataclass(frozen=True)
class SessionRecord:
    """What the table holds for one session: never a session token nor a refresh token (the refresh
    token's generation is stored, its proof is derived; ``refresh_tokens.py``)."""

    id: str  # sess_...
    user_id: str
    client_id: str  # client_...: one per sign-in (the browser that redeemed the link)
    status: SessionStatus  # as stored; see status_at
    created_at: int  # Unix ms
    updated_at: int  # Unix ms
    last_active_at: int  # Unix ms
    expire_at: int  # Unix ms
    abandon_at: int  # Unix ms (= expire_at when SessionInactivitySeconds is off)
    sign_in_token_id: str
    # SHA-256 (hex) of a refresh secret stored by earlier versions (never read); "" for every new session.
    refresh_hash: str = field(default="", repr=False)
    org_id: str | None = None
    authorized_party: str | None = None  # the azp claim of its tokens (the link's redirect origin)
    # SHA-256 (hex) of the ``__client`` secret of a session made through Clerk's Frontend API (whose
    # refresh_hash is then empty: no __refresh cookie names it); None for the accept page's sessions.
    client_hash: str | None = field(default=None, repr=False)
    refresh_generation: int = 0  # the current refresh token's generation (0 at sign-in, +1 a rotation)
    rotated_at: int = 0  # Unix ms: when that generation became current
    status_reason: str | None = None  # why it left "active", when the service ended it for a reason

    def status_at(self, now_ms: int) -> SessionStatus:
        """The status at ``now_ms``: an active record past its expiry or abandonment is no longer active."""
        if self.status is not SessionStatus.ACTIVE:
            return self.status
        if now_ms >= self.expire_at:
            return SessionStatus.EXPIRED
        if now_ms >= self.abandon_at:
            return SessionStatus.ABANDONED
        return SessionStatus.ACTIVE


# The status of a unit of batch work (store.BatchHeader.status).
BATCH_RUNNING = "running"
BATCH_COMPLETED = "completed"

# Where the email of one sign-in token stands (EmailMarker.status).
EMAIL_SENDING = "sending"
EMAIL_SENT = "sent"
EMAIL_FAILED = "failed"
EMAIL_UNKNOWN = "unknown"

# What a renewal request met (store.RenewalRequests.request).
RENEWAL_RECORDED = "recorded"  # this call recorded it: its stream record becomes SignInLinkRenewalRequested
RENEWAL_ALREADY = "already"  # one was recorded before for this token
RENEWAL_REFUSED = "refused"  # not renewable: unknown, revoked, still usable, another user's, or never emailed


@dataclass(frozen=True)
class EmailMarker:
    """Where the email of one sign-in token stands (``pk`` = ``email#<token_id>``)."""

    token_id: str
    status: str  # sending | sent | failed | unknown
    request_id: str  # the invocation that claimed (or recorded, or took over) it
    claimed_at: int  # Unix ms
    updated_at: int  # Unix ms
    reason: str = ""
    message_id: str = ""
    announced: bool = False  # a failed/unknown marker's event was published
    # A "sent" marker keeps whom it went to, so that a renewal of the link (renewal.py) goes to the
    # same address in the same language: never an address from a request.
    address: str = ""
    language: str = ""
    name: str = ""  # the greeting's name, as display.display_name showed it
