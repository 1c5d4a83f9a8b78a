"""Key rotation, pure: which keys a keyring keeps, which key it adds, and what a valid result is.

No I/O here; :mod:`signin_links.rotation.secrets_manager` runs Secrets Manager's four-step protocol
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
  what it signed plus leeway: the maximum sign-in token lifetime for ticket (Ed25519) keys, the
  session lifetime for session (RSA) keys. The current key is never dropped.
* A retired ticket key loses its private half at the next rotation (:func:`strip_retired`): it
  signs nothing more, so only its public half is kept, to verify what it signed until retention
  ends. The signing keyring thus holds at most the current key's private half and the next one's.
* The retired HMAC ticket keyring is not rotated any more (:meth:`RotationPolicy.for_kind` refuses
  it): nothing signs with it, and the accept reads it only during an upgrade's migration window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jwt

from signin_links.config import MIN_ACTIVATION_MARGIN_SECONDS, Settings
from signin_links.errors import SignInLinksError
from signin_links.keyring import ED25519, ED25519_KEY_BYTES, RSA, Key, Keyring, generate_key
from signin_links.ticket_verification import verify_ticket
from signin_links.tickets import sign_ticket

#: Extra time on top of the secrets cache ``max_age`` before a new key may sign.
ACTIVATION_MARGIN_SECONDS = MIN_ACTIVATION_MARGIN_SECONDS
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
        if kind == ED25519:
            lifetime = settings.max_expires_in_seconds
        elif kind == RSA:
            lifetime = settings.session_lifetime_seconds
        else:
            # hmac: the retired ticket keyring; ed25519-public: written by the signing keyring's rotation.
            raise RotationError(f"a {kind!r} keyring is not rotated")
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


def is_retired(key: Key, keys: Iterable[Key], now: int) -> bool:
    """Whether a later key of ``keys`` has activated by ``now`` (``key`` signs no more)."""
    retired = retired_at(key, keys)
    return retired is not None and retired <= now


def strip_retired(keys: Sequence[Key], now: int) -> tuple[Key, ...]:
    """``keys``, the retired Ed25519 ones without their private half."""
    return tuple(key.public_only() if key.seed and is_retired(key, keys, now) else key for key in keys)


def rotate(kind: str, keys: Sequence[Key], *, now: int, policy: RotationPolicy) -> tuple[tuple[Key, ...], Key]:
    """The keyring after one rotation at ``now``, and the key it added.

    Expired keys are dropped, retired Ed25519 keys lose their private half, and a fresh key is
    added; it activates after the policy's delay, or at once if the keyring had no key at all.
    """
    kept = prune(keys, now, policy.retention)
    if kind == ED25519:
        kept = strip_retired(kept, now)
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
    if kind == ED25519:
        check_signing_keyring(keys, now=now)
        return
    for key in keys:
        if kind == RSA:
            _check_rsa(key)
        else:
            raise RotationError(f"a {kind!r} keyring is not rotated")


def check_signing_keyring(keys: Sequence[Key], *, now: int) -> None:
    """Every key of an Ed25519 signing keyring is well formed, its private half (while it has one)
    matches its public half, and signs a token that its public half alone verifies, as the accept
    will: through the verification keyring the rotation publishes."""
    from cryptography.hazmat.primitives import serialization

    ring = Keyring(kind=ED25519, keys=tuple(keys))
    if not ring.current(now).seed:
        raise RotationError(f"key {ring.current(now).kid}: the key that signs now has no private key")
    public = ring.public()
    for key in keys:
        if key.secret or key.private_key_pem or len(key.public) != ED25519_KEY_BYTES:
            raise RotationError(f"key {key.kid}: an Ed25519 key holds a 32-byte public key and nothing else")
        if not key.seed:
            if retired_at(key, keys) is None:
                raise RotationError(f"key {key.kid}: the newest key has no private key")
            continue
        try:
            derived = key.signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except ValueError:
            raise RotationError(f"key {key.kid}: the private key does not load") from None
        if derived != key.public:
            raise RotationError(f"key {key.kid}: the public key is not the private key's")
        token = sign_ticket(key, sid="sit_rotationcheck", issued_at=now, expires_in_seconds=60)
        try:
            verify_ticket(token, public, now=now, leeway=0)
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
