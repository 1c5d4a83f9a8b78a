"""Refresh tokens (the ``__Host-refresh`` / ``__Secure-refresh`` cookie): rotating, and each one provable.

A refresh token is ``<session id>.<generation>.<proof>``:

* ``generation`` counts the session's rotations: 0 at sign-in, one more at every refresh that
  rotates (``sessions.Sessions.refresh``). The session item stores the current one
  (``refresh_generation``) and when it became current (``rotated_at``): no secret at all.
* ``proof`` is HMAC-SHA256 over the session id and the generation, keyed with a key derived from
  the session keyring (``derived_keys.py``, purpose ``refresh-token``), base64url (43 characters).
  Only the accept and sessions functions (and rotation) hold that keyring.

So a token proves by itself that this service issued it for that session and generation: the
refresh checks the proof before any DynamoDB call (a forged or mangled cookie costs nothing), and a
proven token of an *older* generation is a reuse, detected whatever the number of rotations since
(a stolen token replayed after the victim refreshed, or the victim's after the thief refreshed):
the session is revoked. Proofs are deterministic, so the service can hand the current token again to
a browser whose previous answer was lost (within ``RefreshReuseGraceSeconds``). Every key of the ring
verifies, so a key rotation does not sign anyone out; a key removed from the ring (a leaked key)
invalidates the tokens it proved.

Pure functions; no I/O; standard library only.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256

from signin_links import ids
from signin_links.derived_keys import derived_key
from signin_links.keyring import Key, Keyring

PURPOSE = "refresh-token"
MAX_LENGTH = 128
MAX_GENERATION = 10**9  # 30 years of one refresh a second
_PROOF_LENGTH = 43  # base64url of 32 bytes, unpadded
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class RefreshToken:
    """A parsed refresh token (not yet proven: see :func:`proven`)."""

    session_id: str
    generation: int
    proof: str = field(repr=False)

    @property
    def value(self) -> str:
        return f"{self.session_id}.{self.generation}.{self.proof}"


def _proof(key: Key, session_id: str, generation: int) -> str:
    message = f"{session_id}.{generation}".encode("ascii")
    digest = hmac.new(derived_key(key, PURPOSE), message, sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue(key: Key, session_id: str, generation: int) -> RefreshToken:
    """The token of ``generation`` of a session, proven with ``key`` (the ring's current key)."""
    return RefreshToken(session_id, generation, _proof(key, session_id, generation))


def parse(value: object) -> RefreshToken | None:
    """The parts of a refresh token, or None for anything else (never raises)."""
    if not isinstance(value, str) or len(value) > MAX_LENGTH or not value.isascii():
        return None
    parts = value.strip().split(".")
    if len(parts) != 3:
        return None
    session_id, generation, proof = parts
    if not ids.is_id(session_id, ids.SESSION) or len(proof) != _PROOF_LENGTH or not set(proof) <= _ALPHABET:
        return None
    if not generation.isdigit() or not generation.isascii() or str(int(generation)) != generation:
        return None  # ASCII digits, no sign, no leading zero: one spelling per generation
    number = int(generation)
    if number > MAX_GENERATION:
        return None
    return RefreshToken(session_id, number, proof)


def proven(token: RefreshToken, keyring: Keyring) -> bool:
    """Whether one of the ring's keys proves ``token`` (constant-time comparisons, every key tried)."""
    matched = False
    for key in keyring.keys:
        matched |= hmac.compare_digest(_proof(key, token.session_id, token.generation), token.proof)
    return matched


def distinct(values: Iterable[str]) -> tuple[str, ...]:
    """The different values among a request's refresh cookies, in order (surrounding spaces ignored)."""
    return tuple(dict.fromkeys(value.strip() for value in values if value.strip()))
