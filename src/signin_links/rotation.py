"""Key rotation, pure: which keys a keyring keeps, which key it adds, and what a valid result is.

No I/O here; :mod:`signin_links.secret_rotation` runs Secrets Manager's four-step protocol
around these functions.

Timing (docs/operations.md, "Key rotation"):

* A new key is added with ``activates_at = now + activation_delay``. Until then every function
  keeps signing with the previous key but can already *verify* the new one as soon as it re-reads
  the secret, which it does at most ``secrets max_age`` after the rotation. The delay must
  therefore exceed that ``max_age`` (checked by :func:`check_timing`), so no token is ever signed
  with a key that some warm function cannot verify yet. The very first key of an empty keyring
  activates at once: nothing was signed before it.
* A key *retires* when its successor activates (``retired_at``). It signed nothing after that, so
  it is dropped once ``retired_at + retention`` has passed, where retention is the longest life of
  what it signed plus leeway: the maximum sign-in token lifetime for ticket (HMAC) keys, the
  session lifetime for session (RSA) keys. The current key is never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jwt

from signin_links.config import MIN_ACTIVATION_MARGIN_SECONDS, Settings
from signin_links.errors import SignInLinksError
from signin_links.keyring import HMAC, RSA, Key, Keyring, generate_key
from signin_links.tickets import sign_ticket, verify_ticket

#: Extra time on top of the secrets cache ``max_age`` before a new key may sign.
ACTIVATION_MARGIN_SECONDS = MIN_ACTIVATION_MARGIN_SECONDS
HMAC_MIN_BYTES = 32
RSA_BITS = 2048
RSA_EXPONENT = 65537


class RotationError(Exception):
    """A rotation cannot proceed or produced an unusable keyring (the rotation fails and is retried)."""


@dataclass(frozen=True)
class RotationPolicy:
    activation_delay: int  # seconds from adding a key to signing with it
    retention: int  # seconds a retired key stays verifiable

    @classmethod
    def for_kind(cls, kind: str, settings: Settings) -> RotationPolicy:
        check_timing(settings)
        if kind == HMAC:
            lifetime = settings.max_expires_in_seconds
        elif kind == RSA:
            lifetime = settings.session_lifetime_seconds
        else:
            raise RotationError(f"unknown keyring kind {kind!r}")
        return cls(
            activation_delay=settings.key_activation_delay_seconds,
            retention=lifetime + settings.ticket_leeway_seconds,
        )


def check_timing(settings: Settings) -> None:
    """A new key must not sign before every warm function has re-read the keyring."""
    needed = settings.secrets_max_age_seconds + ACTIVATION_MARGIN_SECONDS
    if settings.key_activation_delay_seconds < needed:
        raise RotationError(
            f"KEY_ACTIVATION_DELAY_SECONDS ({settings.key_activation_delay_seconds}) must be at least "
            f"SECRETS_MAX_AGE_SECONDS + {ACTIVATION_MARGIN_SECONDS} ({needed}); a deployed stack sets "
            f"KEY_ACTIVATION_MARGIN_SECONDS instead, which cannot be below {ACTIVATION_MARGIN_SECONDS}"
        )


def _order(key: Key) -> tuple[int, int]:
    # The same order Keyring.current() uses to pick the signing key.
    return (key.activates_at, key.created_at)


def retired_at(key: Key, keys: Iterable[Key]) -> int | None:
    """When ``key`` stopped (or will stop) signing: its successor's activation; None if it has none."""
    later = [other.activates_at for other in keys if _order(other) > _order(key)]
    return min(later) if later else None


def prune(keys: Sequence[Key], now: int, retention: int) -> tuple[Key, ...]:
    """The keys still needed at ``now``: drop each key retired for longer than ``retention``."""
    kept = []
    for key in keys:
        retired = retired_at(key, keys)
        if retired is not None and retired + retention <= now:
            continue
        kept.append(key)
    return tuple(kept)


def rotate(kind: str, keys: Sequence[Key], *, now: int, policy: RotationPolicy) -> tuple[tuple[Key, ...], Key]:
    """The keyring after one rotation at ``now``, and the key it added.

    Expired keys are dropped and a fresh key is added; it activates after the policy's delay, or at
    once if the keyring had no key at all.
    """
    kept = prune(keys, now, policy.retention)
    activates_at = now if not keys else now + policy.activation_delay
    taken = {key.kid for key in keys}
    new = generate_key(kind, now=now, activates_at=activates_at)
    while new.kid in taken:  # 32 random bits in a kid: practically never, but cheap to rule out
        new = generate_key(kind, now=now, activates_at=activates_at)
    return (*kept, new), new


def check_keyring(kind: str, keys: Sequence[Key], *, required_kids: Iterable[str], now: int) -> None:
    """Raise :class:`RotationError` unless ``keys`` is a keyring the functions can use.

    Every key must be well formed and sign and verify a token; no ``kid`` may repeat; every kid in
    ``required_kids`` (keys of the current keyring still within retention) must still be present;
    and some key must be able to sign now.
    """
    if not keys:
        raise RotationError("the keyring holds no key")
    kids = [key.kid for key in keys]
    if len(set(kids)) != len(kids):
        raise RotationError("a kid appears twice in the keyring")
    missing = sorted(set(required_kids) - set(kids))
    if missing:
        raise RotationError(f"keys still needed for verification are missing: {', '.join(missing)}")
    if not any(key.activates_at <= now for key in keys):
        raise RotationError("no key of the keyring is active")
    for key in keys:
        if kind == HMAC:
            _check_hmac(key)
        elif kind == RSA:
            _check_rsa(key)
        else:
            raise RotationError(f"unknown keyring kind {kind!r}")


def _check_hmac(key: Key) -> None:
    if len(key.secret) < HMAC_MIN_BYTES or key.private_key_pem:
        raise RotationError(f"key {key.kid}: an HMAC key needs a secret of at least {HMAC_MIN_BYTES} bytes")
    # Round trip through the verifier the accept path uses (PyJWT checks expiry on the wall clock).
    issued_at = int(time.time())
    token = sign_ticket(key, sid="sit_rotationcheck", issued_at=issued_at, expires_in_seconds=60)
    try:
        verify_ticket(token, Keyring(kind=HMAC, keys=(key,)), now=issued_at, leeway=0)
    except SignInLinksError as exc:
        raise RotationError(f"key {key.kid}: sign/verify round trip failed ({exc.code.wire_code})") from None


def _check_rsa(key: Key) -> None:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    if key.secret:
        raise RotationError(f"key {key.kid}: an RSA keyring holds no HMAC secret")
    try:
        private = key.private_key
    except ValueError as exc:  # KeyringFormatError, or a PEM that does not parse
        raise RotationError(f"key {key.kid}: private key does not load ({type(exc).__name__})") from None
    numbers = private.public_key().public_numbers()
    if private.key_size != RSA_BITS or numbers.e != RSA_EXPONENT:
        raise RotationError(f"key {key.kid}: session keys must be RSA-{RSA_BITS} with e = {RSA_EXPONENT}")
    # Round trip through the published JWK, exactly as an app verifying a session would.
    token = jwt.encode({"sub": "rotation-check"}, private, "RS256", {"kid": key.kid})
    public = jwt.PyJWK(key.public_jwk()).key
    if not isinstance(public, RSAPublicKey):
        raise RotationError(f"key {key.kid}: its JWK is not an RSA public key")
    try:
        jwt.decode(token, public, algorithms=["RS256"])
    except jwt.PyJWTError:
        raise RotationError(f"key {key.kid}: sign/verify round trip through the JWKS failed") from None
