"""``clerkMiddleware``'s handshake (``GET /v1/client/handshake``): where the browser goes back to.

When ``clerkMiddleware`` (``@clerk/nextjs``, ``@clerk/backend``) sees a page request whose
``__client_uat`` says "signed in" but whose ``__session`` is missing or expired, it sends the browser
(a top-level GET) to the Frontend API's handshake with ``redirect_url``. The Frontend API answers
with a redirect back there carrying ``__clerk_handshake``: a JWT, signed by a key of the JWKS, whose
``handshake`` claim is the list of ``Set-Cookie`` values the middleware sets on the app's own domain
(``__session``, ``__client_uat``; both cleared when the browser has no live session). This service
answers in that token format (Clerk's other format, a nonce the backend exchanges through the
Backend API, is not implemented; ``@clerk/backend`` accepts either).

Pure: no I/O (the caller hands in the session JWT and the keyring).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from signin_links.keyring import Keyring
from signin_links.session_tokens import ALGORITHM

HANDSHAKE_PARAM = "__clerk_handshake"
HANDSHAKE_LIFETIME = 60  # seconds: the middleware reads it at once, on the redirect's request
# What clerk-js writes itself on the app's domain: readable by script (not HttpOnly), Lax.
COOKIE_ATTRIBUTES = "Path=/; SameSite=Lax; Secure"


def handshake_cookies(session_jwt: str | None, now: int, max_age: int) -> list[str]:
    """The ``Set-Cookie`` values the middleware applies: the session's, or both cleared."""
    if session_jwt is None:
        return [
            f"__session=; {COOKIE_ATTRIBUTES}; Max-Age=0",
            f"__client_uat=0; {COOKIE_ATTRIBUTES}; Max-Age={max_age}",
        ]
    return [
        f"__session={session_jwt}; {COOKIE_ATTRIBUTES}",
        f"__client_uat={now}; {COOKIE_ATTRIBUTES}; Max-Age={max_age}",
    ]


def handshake_location(
    redirect_url: str, session_jwt: str | None, keyring: Keyring, *, now: float, max_age: int, issuer: str
) -> str:
    """``redirect_url`` (already checked against the allow-list) with ``__clerk_handshake`` added."""
    issued = int(now)
    key = keyring.current(now)
    token = jwt.encode(
        {
            "handshake": handshake_cookies(session_jwt, issued, max_age),
            "iat": issued,
            "exp": issued + HANDSHAKE_LIFETIME,
            "iss": issuer,
        },
        key.private_key,
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": "JWT"},
    )
    parts = urlsplit(redirect_url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != HANDSHAKE_PARAM]
    query.append((HANDSHAKE_PARAM, token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
