"""Sign-in tokens ("tickets"): HS256 JWTs signed with the current key of the ticket keyring.

Pure functions over PyJWT; no I/O. Claims follow Clerk's ticket (``sid``, ``st``, ``eis``,
``exp``) plus ``iat`` and, when the link redirects, ``rdr`` (the redirect is carried inside the
signed token and re-checked at accept). ``uid`` (the user id) and ``oid`` (the org id, when given)
let the accept write the session record in the same transaction that consumes the token, without
reading the token first; tokens minted before they existed have neither (the accept then reads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt

from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import Key, Keyring

TICKET_TYPE = "sign_in_token"
MAX_TOKEN_LENGTH = 4096
# Compact JWS: three base64url segments. Anything else (a lone surrogate, padding, stray
# characters that base64 would silently skip) is rejected before PyJWT sees it.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Ticket:
    sid: str
    issued_at: int
    expires_at: int
    expires_in_seconds: int
    redirect_url: str | None
    kid: str
    user_id: str | None = None  # None: a token minted before ``uid`` existed
    org_id: str | None = None


def sign_ticket(
    key: Key,
    *,
    sid: str,
    issued_at: int,
    expires_in_seconds: int,
    redirect_url: str | None = None,
    user_id: str | None = None,
    org_id: str | None = None,
) -> str:
    claims: dict[str, object] = {
        "eis": expires_in_seconds,
        "exp": issued_at + expires_in_seconds,
        "iat": issued_at,
        "sid": sid,
        "st": TICKET_TYPE,
    }
    if redirect_url:
        claims["rdr"] = redirect_url
    if user_id:
        claims["uid"] = user_id
    if org_id:
        claims["oid"] = org_id
    return jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.kid, "typ": "JWT"})


def _invalid() -> SignInLinksError:
    return SignInLinksError(ErrorCode.TICKET_INVALID)


def verify_ticket(token: str, keyring: Keyring, *, now: float, leeway: int) -> Ticket:
    """Check signature (HS256 only, key chosen by ``kid``), type and expiry of a sign-in token.

    Raises ``ticket_invalid_code`` for anything malformed, unsigned, signed with an unknown key or
    another algorithm, and ``ticket_expired_code`` for a genuine token past its expiry.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
        raise _invalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _invalid() from None
    kid = header.get("kid")
    if header.get("alg") != "HS256" or not isinstance(kid, str):
        raise _invalid()
    key = keyring.get(kid)
    if key is None or not key.secret:
        raise _invalid()
    try:
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=["HS256"],
            # Expiry is checked below against the caller's clock, not PyJWT's wall clock, so that
            # one notion of "now" decides (the accept handler and the tests inject it).
            options={"require": ["exp", "iat", "sid", "st"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise _invalid() from None
    sid, exp, iat, eis = claims.get("sid"), claims.get("exp"), claims.get("iat"), claims.get("eis", 0)
    rdr = claims.get("rdr")
    uid, oid = claims.get("uid"), claims.get("oid")
    if (
        claims.get("st") != TICKET_TYPE
        or not isinstance(sid, str)
        or not sid.startswith("sit_")
        or not isinstance(exp, int)
        or not isinstance(iat, int)
        or not isinstance(eis, int)
        or (rdr is not None and not isinstance(rdr, str))
        or (uid is not None and (not isinstance(uid, str) or not uid))
        or (oid is not None and (not isinstance(oid, str) or not oid))
    ):
        raise _invalid()
    if exp + leeway < now:
        raise SignInLinksError(ErrorCode.TICKET_EXPIRED)
    return Ticket(
        sid=sid,
        issued_at=iat,
        expires_at=exp,
        expires_in_seconds=eis,
        redirect_url=rdr,
        kid=kid,
        user_id=uid,
        org_id=oid,
    )
