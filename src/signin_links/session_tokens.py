"""Session tokens (``__session``): RS256 JWTs in the shape of Clerk's session token.

Pure functions over PyJWT; no I/O. The signing key is the current key of the session keyring
(RSA-2048, e = 65537, see ``keyring.py``); its public half is served as the JWKS, so any JWT
library verifies a session without calling this service.

Claims (``wire-format.md``): ``sub``, ``sid`` (``sess_...``), ``iat``, ``nbf`` (iat - 10 s, Clerk's
habit), ``exp``, ``iss``, ``azp`` (the redirect's origin, when the link has one), ``v: 2``,
``sts: "active"`` and ``o: {"id": ...}`` when the token carried an organization. No ``aud``:
Clerk's Python SDK rejects an unexpected audience. Header: ``alg: RS256``, ``typ: JWT``, ``kid``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import jwt

from signin_links import ids
from signin_links.config import Settings
from signin_links.keyring import Key, Keyring
from signin_links.models import SessionRecord

REFRESH_SECRET_BYTES = 32  # 256 bits
ALGORITHM = "RS256"
NOT_BEFORE_SKEW = 10
MAX_SESSION_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Session:
    """A verified (or just issued) session."""

    session_id: str
    user_id: str
    issued_at: int
    expires_at: int
    org_id: str | None = None


def session_issuer(settings: Settings, fallback: str) -> str:
    """The session JWT's ``iss``: ``SessionIssuer``, else ``AcceptBaseUrl``, else ``fallback`` (the
    request's own base URL)."""
    return settings.session_issuer or settings.accept_base_url or fallback.rstrip("/")


def session_token(key: Key, record: SessionRecord, *, now: float, lifetime: int, issuer: str) -> str:
    """The session JWT of ``record``, signed with ``key`` (:func:`issue_session`)."""
    return issue_session(
        key,
        session_id=record.id,
        user_id=record.user_id,
        issued_at=int(now),
        lifetime=lifetime,
        issuer=issuer,
        org_id=record.org_id,
        authorized_party=record.authorized_party,
    )


def issue_session(
    key: Key,
    *,
    session_id: str,
    user_id: str,
    issued_at: int,
    lifetime: int,
    issuer: str,
    org_id: str | None = None,
    authorized_party: str | None = None,
) -> str:
    """Sign a session JWT with ``key`` (an RSA key of the session keyring)."""
    claims: dict[str, object] = {
        "sub": user_id,
        "sid": session_id,
        "iat": issued_at,
        "nbf": issued_at - NOT_BEFORE_SKEW,
        "exp": issued_at + lifetime,
        "iss": issuer,
        "v": 2,
        "sts": "active",
    }
    if authorized_party:
        claims["azp"] = authorized_party
    if org_id:
        claims["o"] = {"id": org_id}
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})


def _decode(token: str, keyring: Keyring, leeway: int) -> dict[str, object] | None:
    """The claims of a session JWT signed (RS256) by a key of ``keyring``, or None."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid = header.get("kid")
    key = keyring.get(kid) if isinstance(kid, str) else None
    if header.get("alg") != ALGORITHM or key is None or not key.private_key_pem:
        return None
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            leeway=leeway,
            # Times are checked against the caller's clock below, not PyJWT's wall clock.
            options={
                "require": ["exp", "iat", "sub", "sid"],
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError:
        return None
    return claims


def verify_session(
    token: str, keyring: Keyring, *, now: float, leeway: int = 0, expired_for: int | None = None
) -> Session | None:
    """The session a ``__session`` value stands for, or None if it is not one of ours and live.

    RS256 only, key chosen by ``kid`` among the session keyring's keys; ``exp`` and ``nbf`` are checked
    against ``now``. ``expired_for`` accepts a token whose ``exp`` passed at most that many seconds ago
    (a short-lived token still names its session and user: refresh, the same-browser retry and the
    "another user is signed in" check use it; none of them trusts the session to be active without
    the table). Never raises on bad input: a cookie is a hint, not a request.
    """
    if not token or len(token) > MAX_SESSION_TOKEN_LENGTH or not token.isascii():
        return None  # a JWT is ASCII; PyJWT would raise UnicodeEncodeError on a lone surrogate
    claims = _decode(token, keyring, leeway)
    if claims is None:
        return None
    sub, sid, iat, exp = claims.get("sub"), claims.get("sid"), claims.get("iat"), claims.get("exp")
    nbf = claims.get("nbf", iat)
    if (
        not isinstance(sub, str)
        or not isinstance(sid, str)
        or not ids.is_id(sid, ids.SESSION)
        or not isinstance(iat, int)
        or not isinstance(exp, int)
        or claims.get("sts") != "active"
        or not isinstance(nbf, int)
        or exp + leeway + (expired_for or 0) < now
        or nbf - leeway > now
    ):
        return None
    org = claims.get("o")
    org_id = org.get("id") if isinstance(org, dict) and isinstance(org.get("id"), str) else None
    return Session(session_id=sid, user_id=sub, issued_at=iat, expires_at=exp, org_id=org_id)


# --- Secret credentials (the Frontend API's ``__Host-client``) -------------------------------------
# ``<session id>.<secret>``: the session is found by its key (one GetItem, never a scan), and the
# secret (256 random bits, base64url) is checked against the SHA-256 the session item holds, in
# constant time. The table never holds the secret itself. (The accept page's refresh cookie is a
# rotating, provable token instead: ``refresh_tokens.py``.)


@dataclass(frozen=True)
class RefreshToken:
    session_id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"RefreshToken(session_id={self.session_id!r}, secret=<redacted>)"

    @property
    def value(self) -> str:
        return f"{self.session_id}.{self.secret}"


def refresh_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_refresh_token(session_id: str) -> RefreshToken:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(REFRESH_SECRET_BYTES)).rstrip(b"=").decode("ascii")
    return RefreshToken(session_id=session_id, secret=secret)


MAX_REFRESH_TOKEN_LENGTH = 128
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_refresh_token(value: object) -> RefreshToken | None:
    """The session id and secret of a ``__refresh`` value, or None for anything else (never raises)."""
    if not isinstance(value, str) or len(value) > MAX_REFRESH_TOKEN_LENGTH or not value.isascii():
        return None
    session_id, sep, secret = value.strip().partition(".")
    if not sep or not ids.is_id(session_id, ids.SESSION) or not secret or not set(secret) <= _SECRET_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != REFRESH_SECRET_BYTES:
        return None
    return RefreshToken(session_id=session_id, secret=secret)


def refresh_matches(token: RefreshToken, stored_hash: str) -> bool:
    """Constant-time comparison of the presented secret's hash with the stored one."""
    return hmac.compare_digest(refresh_hash(token.secret).encode("ascii"), stored_hash.encode("ascii", "replace"))
