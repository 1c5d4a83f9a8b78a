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
