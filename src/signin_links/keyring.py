"""Keyrings: the signing keys kept in Secrets Manager, and how they are read.

A keyring secret is JSON::

    {"kind": "ed25519" | "ed25519-public" | "rsa" | "hmac",
     "keys": [{"kid": "...", "created_at": 1700000000, "activates_at": 1700000600,
               "public_key": "<base64url>", "private_key": "<base64url>"}  # ed25519 (32 bytes each)
               "public_key": "<base64url>"                                 # ed25519-public
               "private_key_pem": "-----BEGIN..."                          # rsa
               "secret": "<base64url>"                                     # hmac (retired)
              }, ...],
     "bootstrap": "<random string>"}            # optional, hmac only

* ``ed25519``: the **ticket signing keyring** (sign-in tokens, EdDSA). Only the mint and the
  rotation read it. A key keeps its ``private_key`` while it may still sign; once retired (a later
  key has activated) the rotation strips it, and the entry keeps only its ``public_key`` until its
  tokens have expired. ``ed25519-public``: the **ticket verification keyring**, the public half of
  every key of the signing keyring, published by the rotation (``rotation/secrets_manager.py``); the accept
  and the email function read only this one, so they can check a link but never make one.
* ``rsa``: the session keyring (session JWTs, RS256; the public half is the JWKS).
* ``hmac``: the retired HS256 ticket keyring. Nothing signs with it any more; the accept reads it
  only during an upgrade's migration window (``LEGACY_HS256_TICKETS_UNTIL``, see
  ``ticket_verification.py``). ``bootstrap`` was CloudFormation's ``GenerateSecretString`` seed:
  it reads as the key ``boot-<hash>``.
* Every key in ``keys`` verifies; the *current* key (the one that signs) is the most recently
  activated key whose ``activates_at`` has passed. Rotation adds a key that activates only after
  every running function has re-read the secret (see ``rotation/policy.py``), so a key is never used to
  sign before all verifiers know it.

Key material is parsed lazily (``cryptography`` is imported only when a key signs or verifies, and
then only the module of its algorithm), so the mint loads Ed25519 and nothing else of it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from signin_links.errors import unavailable
from signin_links.observability import logger

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from signin_links.config import Settings

HMAC = "hmac"
RSA = "rsa"
ED25519 = "ed25519"
ED25519_PUBLIC = "ed25519-public"
KINDS = (ED25519, ED25519_PUBLIC, RSA, HMAC)
ED25519_KEY_BYTES = 32


class KeyringFormatError(ValueError):
    """The secret does not hold a keyring in the documented format."""


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, eq=False)
class Key:
    kid: str
    created_at: int
    activates_at: int
    secret: bytes = b""  # hmac
    private_key_pem: str = ""  # rsa
    seed: bytes = b""  # ed25519: the 32-byte private key (RFC 8032), while the key may sign
    public: bytes = b""  # ed25519: the 32-byte public key

    def __repr__(self) -> str:  # never print key material
        return f"Key(kid={self.kid!r}, activates_at={self.activates_at})"

    @cached_property
    def signer(self) -> Ed25519PrivateKey:
        """The Ed25519 private key (only a signing keyring's unretired keys have one)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if len(self.seed) != ED25519_KEY_BYTES:
            raise KeyringFormatError(f"key {self.kid} holds no Ed25519 private key")
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @cached_property
    def verifier(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if len(self.public) != ED25519_KEY_BYTES:
            raise KeyringFormatError(f"key {self.kid} holds no Ed25519 public key")
        return Ed25519PublicKey.from_public_bytes(self.public)

    def public_only(self) -> Key:
        """This key without its private half (what the verification keyring holds of it)."""
        return Key(kid=self.kid, created_at=self.created_at, activates_at=self.activates_at, public=self.public)

    @cached_property
    def private_key(self) -> RSAPrivateKey:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(self.private_key_pem.encode("ascii"), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise KeyringFormatError(f"key {self.kid} is not an RSA key")
        return key

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()

        def encode_int(value: int) -> str:
            return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": encode_int(numbers.n),
            "e": encode_int(numbers.e),
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kid": self.kid, "created_at": self.created_at, "activates_at": self.activates_at}
        if self.secret:
            data["secret"] = b64url_encode(self.secret)
        if self.private_key_pem:
            data["private_key_pem"] = self.private_key_pem
        if self.public:
            data["public_key"] = b64url_encode(self.public)
        if self.seed:
            data["private_key"] = b64url_encode(self.seed)
        return data


@dataclass(frozen=True)
class Keyring:
    kind: str
    keys: tuple[Key, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringFormatError("keyring holds no key")

    def current(self, now: float | None = None) -> Key:
        """The key that signs now: the latest activated one (or the earliest, if none has activated)."""
        now = time.time() if now is None else now
        active = [key for key in self.keys if key.activates_at <= now]
        if active:
            return max(active, key=lambda key: (key.activates_at, key.created_at))
        return min(self.keys, key=lambda key: key.activates_at)

    def get(self, kid: str) -> Key | None:
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(key.kid for key in self.keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        if self.kind != RSA:
            raise KeyringFormatError("only an RSA keyring has a JWKS")
        return {"keys": [key.public_jwk() for key in self.keys]}

    def public(self) -> Keyring:
        """The verification keyring of an Ed25519 signing keyring: every key, public half only."""
        if self.kind != ED25519:
            raise KeyringFormatError(f"a {self.kind} keyring has no verification keyring")
        return Keyring(kind=ED25519_PUBLIC, keys=tuple(key.public_only() for key in self.keys))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "keys": [key.to_json() for key in self.keys]}, sort_keys=True)


def bootstrap_key(seed: str) -> Key:
    kid = "boot-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
    return Key(kid=kid, created_at=0, activates_at=0, secret=seed.encode())


@lru_cache(maxsize=16)
def parse_keyring(raw: str, expected_kind: str | None = None) -> Keyring:
    """Parse a keyring secret (cached on the exact text, so a warm call parses nothing)."""
    kind, keys = read_keys(raw, expected_kind)
    return Keyring(kind=kind, keys=keys)


def read_keys(raw: str, expected_kind: str | None = None) -> tuple[str, tuple[Key, ...]]:
    """Kind and keys of a keyring secret, which may hold no key yet (a keyring the stack creates
    empty, before its first rotation).

    A ``bootstrap`` seed with no keys becomes the key ``boot-<hash>``. Rotation reads keyrings
    through this; signing and verifying code goes through :func:`parse_keyring`, which refuses an
    empty keyring.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise KeyringFormatError("keyring secret is not JSON") from None
    if not isinstance(data, dict):
        raise KeyringFormatError("keyring secret is not a JSON object")
    kind = data.get("kind", HMAC)
    if kind not in KINDS or (expected_kind and kind != expected_kind):
        raise KeyringFormatError(f"keyring kind {kind!r} is not {expected_kind or '/'.join(KINDS)}")
    keys: list[Key] = []
    items = data.get("keys") or []
    if not isinstance(items, list):
        raise KeyringFormatError("keyring keys is not a list")
    for item in items:
        try:
            keys.append(_read_key(kind, item))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(1e400)
            if isinstance(exc, KeyringFormatError):
                raise
            raise KeyringFormatError(f"malformed key entry: {type(exc).__name__}") from None
    seed = data.get("bootstrap")
    if kind == HMAC and isinstance(seed, str) and len(seed) >= 32 and not keys:
        keys.append(bootstrap_key(seed))
    if kind == ED25519:
        _check_only_retired_keys_are_public(keys)
    return kind, tuple(keys)


def _read_key(kind: str, item: Any) -> Key:
    kid = str(item["kid"])
    created_at = int(item.get("created_at", 0))
    activates_at = int(item.get("activates_at", created_at))
    key = Key(kid=kid, created_at=created_at, activates_at=activates_at)
    if kind == HMAC:
        secret = b64url_decode(item["secret"])
        if len(secret) < 32:
            raise KeyringFormatError(f"key {kid}: an HMAC key needs at least 32 bytes")
        return replace(key, secret=secret)
    if kind == RSA:
        return replace(key, private_key_pem=str(item["private_key_pem"]))
    public = _ed25519_bytes(item["public_key"], kid, "public_key")
    if kind == ED25519_PUBLIC:
        if "private_key" in item or "secret" in item or "private_key_pem" in item:
            raise KeyringFormatError(f"key {kid}: a verification keyring holds public keys only")
        return replace(key, public=public)
    private = item.get("private_key")
    return replace(key, public=public, seed=b"" if private is None else _ed25519_bytes(private, kid, "private_key"))


def _ed25519_bytes(value: Any, kid: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise KeyringFormatError(f"key {kid}: {name} is not a base64url string")
    raw = b64url_decode(value)
    if len(raw) != ED25519_KEY_BYTES:
        raise KeyringFormatError(f"key {kid}: {name} is not {ED25519_KEY_BYTES} bytes")
    return raw


def _check_only_retired_keys_are_public(keys: list[Key]) -> None:
    """A signing keyring may drop the private half of a retired key only (one a later key
    follows): otherwise the key that should sign could not, or an older one would sign instead."""
    latest = max(((key.activates_at, key.created_at) for key in keys), default=None)
    for key in keys:
        if not key.seed and (key.activates_at, key.created_at) == latest:
            raise KeyringFormatError(f"key {key.kid}: the newest key of a signing keyring has no private key")


def fetch_secret(secret_id: str, max_age: int) -> str:
    """Read a secret through Powertools Parameters (cached for ``max_age`` seconds)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from signin_links import aws

    try:
        # AWSCURRENT is the default stage; naming it keeps emulators that do not follow a moved
        # AWSCURRENT label (moto) in step with Secrets Manager after a rotation.
        value = aws.secrets_provider().get(secret_id, max_age=max_age, VersionStage="AWSCURRENT")
    except GetParameterError as exc:
        logger.warning("secret read failed", extra={"secret_id": secret_id, "error": str(exc)[:300]})
        raise unavailable("Secrets Manager") from None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def forget_secrets() -> None:
    """Drop every cached secret and parameter value (``aws.clear_provider_caches``) and parsed
    keyring: the next read goes to AWS again (after a SnapStart restore, ``signin_links.snapstart``,
    followed by ``aws.reset_clients``, which drops the providers and their clients too)."""
    from signin_links import aws

    aws.clear_provider_caches()
    parse_keyring.cache_clear()


def load_keyring(secret_id: str, max_age: int, kind: str) -> Keyring:
    """The keyring held in ``secret_id``; a malformed secret is an operator error (503, logged)."""
    raw = fetch_secret(secret_id, max_age)
    try:
        return parse_keyring(raw, kind)
    except KeyringFormatError as exc:
        logger.error("keyring secret is malformed", extra={"secret_id": secret_id, "reason": str(exc)})
        raise unavailable("The signing keyring") from None


def keyring_reader(secret_id: str, max_age: int, kind: str) -> Callable[[], Keyring]:
    """What a use case is handed: a function that reads the keyring at each call (the secret cached
    for ``max_age`` seconds, so a rotation is seen within that; the parse cached on its text), and
    that a test replaces with a fixed keyring."""

    def read() -> Keyring:
        return load_keyring(secret_id, max_age, kind)

    return read


def ticket_signing_keyring_reader(settings: Settings) -> Callable[[], Keyring]:
    """The ticket signing keyring (Ed25519 private keys: the mint's alone), as :func:`keyring_reader`."""
    return keyring_reader(settings.ticket_signing_keyring_secret_id, settings.secrets_max_age_seconds, ED25519)


def ticket_verification_keyring_reader(settings: Settings) -> Callable[[], Keyring]:
    """The ticket verification keyring (public keys: the accept's and the email function's), as
    :func:`keyring_reader`."""
    return keyring_reader(
        settings.ticket_verification_keyring_secret_id, settings.secrets_max_age_seconds, ED25519_PUBLIC
    )


def legacy_ticket_keyring_reader(settings: Settings) -> Callable[[], Keyring] | None:
    """The retired HS256 keyring while an upgrade's migration window is open, else None."""
    if not settings.legacy_ticket_keyring_secret_id:
        return None
    return keyring_reader(settings.legacy_ticket_keyring_secret_id, settings.secrets_max_age_seconds, HMAC)


def session_keyring_reader(settings: Settings) -> Callable[[], Keyring]:
    """The session (RSA) keyring of these settings, as :func:`keyring_reader`."""
    return keyring_reader(settings.session_keyring_secret_id, settings.secrets_max_age_seconds, RSA)


def generate_key(kind: str, *, now: int, activates_at: int | None = None) -> Key:
    """A fresh key: Ed25519 for sign-in tokens, RSA-2048 with e = 65537 for sessions, 32 random
    bytes for HMAC (the retired ticket kind, kept for tests of the migration window)."""
    import secrets as random

    kid = f"{kind}-{time.strftime('%Y%m%d', time.gmtime(now))}-{random.token_hex(4)}"
    activates = now if activates_at is None else activates_at
    if kind == HMAC:
        return Key(kid=kid, created_at=now, activates_at=activates, secret=random.token_bytes(32))
    from cryptography.hazmat.primitives import serialization

    if kind == ED25519:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signer = Ed25519PrivateKey.generate()
        seed = signer.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public = signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Key(kid=kid, created_at=now, activates_at=activates, seed=seed, public=public)
    if kind != RSA:
        raise KeyringFormatError(f"no key of kind {kind!r} is generated")
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return Key(kid=kid, created_at=now, activates_at=activates, private_key_pem=pem)


def new_keyring_json(kind: str, now: int | None = None) -> str:
    """A keyring secret holding one key that is active at once (first deploy, local stack)."""
    now = int(time.time()) if now is None else now
    return Keyring(kind=kind, keys=(generate_key(kind, now=now),)).to_json()


def new_ticket_keyrings_json(now: int | None = None) -> tuple[str, str]:
    """A ticket signing keyring with one key active at once, and its verification keyring: what a
    stack's first rotation writes (the local stack and the test fixtures seed with it)."""
    ring = parse_keyring(new_keyring_json(ED25519, now), ED25519)
    return ring.to_json(), ring.public().to_json()
