"""What each request asks for, once its shape is checked: the values the use cases take.

``wire.py`` and ``frontend_wire.py`` (Clerk's wire formats, above the use cases in the import
layers) parse a request into one of these; the use cases (``redeem.py``, ``sessions.py``,
``frontend.py``) take them without knowing any wire format. Plain frozen values, no rules and no
imports from the package: a mint's request and its rules are ``mint_request.py``'s.

Every value that carries a credential (a sign-in token, a cookie, a refresh token, a CSRF token)
keeps it out of ``repr``, so a logged value never shows one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AcceptRequest:
    """``POST /accept-token`` (and the Frontend API's sign-in by ticket): the token to redeem and
    what the browser sent beside it."""

    token: str
    # Every ``__session`` value the browser sent (two can arrive, set for different domains).
    session_cookies: tuple[str, ...] = field(default=(), repr=False)
    # Every refresh cookie the browser sent (any refresh name): the sessions a sign-in here ends.
    refresh_cookies: tuple[str, ...] = field(default=(), repr=False)
    # The person confirmed signing in as the link's user although another user is signed in here.
    confirm_switch: bool = False
    # The form's CSRF token (None when absent or not a single string); checked only when needed.
    csrf_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print the token
        return "AcceptRequest(<redacted>)"


@dataclass(frozen=True)
class SignInRequest:
    """``POST /v1/client/sign_ins`` (Clerk's Frontend API): the ticket (``strategy=ticket``) to redeem."""

    ticket: str

    def __repr__(self) -> str:  # never print the ticket
        return "SignInRequest(<redacted>)"


@dataclass(frozen=True)
class SessionQuery:
    """``GET /v1/sessions``: ``user_id`` or ``client_id``, an optional status, a page."""

    user_id: str | None = None
    client_id: str | None = None
    status: str | None = None  # one of Clerk's statuses (removed, replaced, pending never match here)
    limit: int = 10
    offset: int = 0
    paginated: bool = False


@dataclass(frozen=True)
class SessionRefreshRequest:
    """``POST /v1/sessions/{id}/refresh`` (Clerk's backend refresh): both cookies' values and the
    answer's format (``token``: the JWT; ``cookie``: a ``Set-Cookie`` line for it)."""

    expired_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    response_format: str = "token"


@dataclass(frozen=True)
class SignOutRequest:
    """``POST /sign-out``: where to go afterwards (an allowed URL, canonical) and the form's CSRF token."""

    redirect_url: str | None = None
    csrf_token: str | None = field(default=None, repr=False)
