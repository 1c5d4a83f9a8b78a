"""Checking a sign-in token: EdDSA with the public keys of the ticket verification keyring.

Pure functions over PyJWT; no I/O. What verifies a link (the accept, the email function, Clerk's
Frontend API) holds public keys only, so it can never make one (``tickets.py`` signs, in the mint).

**The migration window.** Tokens minted before the Ed25519 keyring existed are HS256, signed with
the retired HMAC keyring. While ``LEGACY_HS256_TICKETS_UNTIL`` is set (the template's
``LegacyHs256TicketsUntil``, a day), the accept also reads that keyring and honours an HS256 token
whose ``exp`` falls before that day, and nothing at all from that day on; whatever else is HS256
is ``ticket_invalid_code``. The day bounds what a stolen accept credential could forge with the
retired keys, whatever the template still grants (docs/deploying.md, "Upgrading").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import Keyring, legacy_ticket_keyring_reader, ticket_verification_keyring_reader
from signin_links.observability import logger, metrics
from signin_links.tickets import ALGORITHM, COMPACT_JWS, LEGACY_ALGORITHM, MAX_TOKEN_LENGTH, TICKET_TYPE, Ticket

if TYPE_CHECKING:
    from signin_links.config import Settings

_REQUIRED = ["exp", "iat", "sid", "st"]
# Expiry is checked against the caller's clock, not PyJWT's wall clock, so that one notion of "now"
# decides (the accept handler and the tests inject it).
_OPTIONS: Any = {"require": _REQUIRED, "verify_iat": False, "verify_exp": False}


def _invalid() -> SignInLinksError:
    return SignInLinksError(ErrorCode.TICKET_INVALID)


def _header(token: str) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a well-formed compact JWS; ``ticket_invalid_code`` otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not COMPACT_JWS.fullmatch(token):
        raise _invalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _invalid() from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or not isinstance(kid, str):
        raise _invalid()
    return alg, kid


def _ticket(claims: dict[str, Any], kid: str, *, now: float, leeway: int) -> Ticket:
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


def verify_ticket(token: str, keyring: Keyring, *, now: float, leeway: int) -> Ticket:
    """Check signature (EdDSA only, the public key chosen by ``kid``), type and expiry of a sign-in token.

    ``keyring`` is the verification keyring (a signing keyring verifies too: its keys carry their
    public halves). Raises ``ticket_invalid_code`` for anything malformed, unsigned, signed with an
    unknown key or another algorithm, and ``ticket_expired_code`` for a genuine token past its expiry.
    """
    alg, kid = _header(token)
    if alg != ALGORITHM:
        raise _invalid()
    return _verified(token, keyring, kid, now=now, leeway=leeway)


def _verified(token: str, keyring: Keyring, kid: str, *, now: float, leeway: int) -> Ticket:
    key = keyring.get(kid)
    if key is None or not key.public:
        raise _invalid()
    try:
        claims = jwt.decode(token, key.verifier, algorithms=[ALGORITHM], options=_OPTIONS)
    except jwt.PyJWTError:
        raise _invalid() from None
    return _ticket(claims, kid, now=now, leeway=leeway)


def verify_legacy_ticket(token: str, keyring: Keyring, *, until: int, now: float, leeway: int) -> Ticket:
    """Check an HS256 token of the retired HMAC keyring, honoured only while ``now`` is before
    ``until`` and only if it expires before ``until`` too; ``ticket_invalid_code`` otherwise."""
    alg, kid = _header(token)
    if alg != LEGACY_ALGORITHM or now >= until:
        raise _invalid()
    key = keyring.get(kid)
    if key is None or not key.secret:
        raise _invalid()
    try:
        claims = jwt.decode(token, key.secret, algorithms=[LEGACY_ALGORITHM], options=_OPTIONS)
    except jwt.PyJWTError:
        raise _invalid() from None
    ticket = _ticket(claims, kid, now=now, leeway=leeway)
    if ticket.expires_at >= until:
        raise _invalid()  # minted to outlive the window: not a token the old mint made before it
    return ticket


@dataclass(frozen=True)
class TicketVerifier:
    """What a function that checks links is handed: the verification keyring, and during an
    upgrade's migration window the retired HMAC keyring with the day the window closes."""

    keyring: Callable[[], Keyring]
    legacy_keyring: Callable[[], Keyring] | None = None
    legacy_until: int = 0

    def verify(self, token: str, *, now: float, leeway: int) -> Ticket:
        """:func:`verify_ticket`, or for an HS256 token in the window :func:`verify_legacy_ticket`.
        Reads the keyrings (cached) only once the token is well formed."""
        alg, kid = _header(token)
        if alg == LEGACY_ALGORITHM:
            if self.legacy_keyring is None or now >= self.legacy_until:
                # Not silent: an operator who upgraded without a window sees why yesterday's links fail.
                logger.warning("an HS256 sign-in token was refused: LegacyHs256TicketsUntil is not open")
                metrics.add_metric(name="LegacyTicketsRefused", unit="Count", value=1)
                raise _invalid()
            return verify_legacy_ticket(token, self.legacy_keyring(), until=self.legacy_until, now=now, leeway=leeway)
        if alg != ALGORITHM:
            raise _invalid()
        return _verified(token, self.keyring(), kid, now=now, leeway=leeway)


def ticket_verifier(settings: Settings) -> TicketVerifier:
    """The verifier of these settings: the verification keyring, and the retired HMAC keyring while
    ``LEGACY_HS256_TICKETS_UNTIL`` is set."""
    return TicketVerifier(
        keyring=ticket_verification_keyring_reader(settings),
        legacy_keyring=legacy_ticket_keyring_reader(settings),
        legacy_until=settings.legacy_hs256_tickets_until,
    )
