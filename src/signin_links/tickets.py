"""Sign-in tokens ("tickets"): what they say, and how the mint signs them (EdDSA, Ed25519).

Claims follow Clerk's ticket (``sid``, ``st``, ``eis``, ``exp``) plus ``iat`` and, when the link
redirects, ``rdr`` (the redirect is carried inside the signed token and re-checked at accept).
``uid`` (the user id) and ``oid`` (the org id, when given) let the accept write the session record
in the same transaction that consumes the token, without reading the token first; tokens minted
before they existed have neither (the accept then reads).

Only the mint (and the rotation's self-check) signs, with the current key of the ticket signing
keyring; everyone else verifies with public keys (``ticket_verification.py``), so a function that
checks links cannot make one. The compact JWS is assembled here rather than by PyJWT on purpose:
importing PyJWT loads every algorithm ``cryptography`` offers (about 100 ms of a cold start,
``docs/performance.md``), and the mint needs one signature: the header and claims as compact JSON,
base64url, Ed25519 over ``header.payload`` (RFC 7515, RFC 8037). What it makes is checked by
PyJWT's own decoder in the tests and by the rotation before a key is ever used.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from signin_links.keyring import Key

TICKET_TYPE = "sign_in_token"
ALGORITHM = "EdDSA"  # RFC 8037: Ed25519 signatures in JOSE
LEGACY_ALGORITHM = "HS256"  # what tokens minted before Ed25519 carry (the migration window only)
MAX_TOKEN_LENGTH = 4096
# Compact JWS: three base64url segments. Anything else (a lone surrogate, padding, stray
# characters that base64 would silently skip) is rejected before PyJWT sees it.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


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


def _segment(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _json_segment(value: dict[str, object]) -> str:
    return _segment(json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii"))


def ticket_claims(
    *,
    sid: str,
    issued_at: int,
    expires_in_seconds: int,
    redirect_url: str | None = None,
    user_id: str | None = None,
    org_id: str | None = None,
) -> dict[str, object]:
    """The claims of a sign-in token."""
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
    return claims


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
    """A sign-in token signed with ``key`` (an Ed25519 key of the signing keyring). Deterministic:
    the same claims and key give the same token (Ed25519 signatures are), so a redelivered batch
    announces the very link it minted first."""
    claims = ticket_claims(
        sid=sid,
        issued_at=issued_at,
        expires_in_seconds=expires_in_seconds,
        redirect_url=redirect_url,
        user_id=user_id,
        org_id=org_id,
    )
    signing_input = f"{_json_segment({'alg': ALGORITHM, 'kid': key.kid, 'typ': 'JWT'})}.{_json_segment(claims)}"
    return f"{signing_input}.{_segment(key.signer.sign(signing_input.encode('ascii')))}"
