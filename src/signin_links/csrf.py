"""Per-render CSRF tokens for the accept function's own forms.

Browsers that send no Fetch Metadata (Safari before 16.4, Firefox before 90) cannot be checked by
``Sec-Fetch-Site``; their cross-site POSTs carry an ``Origin`` instead, which an attacker's page can
make ``null`` (a sandboxed iframe, a ``data:`` URL), the same value the service's own pages send
(they use ``Referrer-Policy: no-referrer``). So ``fetch_metadata.py`` asks such a POST, when its
``Origin`` is neither the service's own nor an allowed one, for proof that the service's own page
rendered the form: this token.

The mechanism is a signed double-submit cookie:

* the cookie ``__Host-csrf`` holds a random nonce (128 bits; ``Secure``, ``Path=/``, no ``Domain``,
  so no other host, sibling or parent, can set or overwrite it; ``HttpOnly``; ``SameSite=Lax``).
  A page reuses the nonce the browser already holds, so two tabs do not invalidate each other;
* each rendered form gets its own ``csrf_token`` field, ``<issued at>.<salt>.<mac>``: the MAC is
  HMAC-SHA256 over the nonce, the time and a fresh salt, keyed with a key derived from the session
  keyring's key (:func:`signin_links.derived_keys.derived_key`: the accept function holds that keyring
  already, and no other function needs these tokens);
* a token is valid for :data:`LIFETIME_SECONDS` after it was rendered, with the cookie it was
  rendered for, under any key of the ring (rotation does not break an open page).

An attacker can neither read the page's field (same-origin policy, ``frame-ancestors 'none'``) nor
set the ``__Host-`` cookie, nor compute a MAC without the key. Pure functions; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256

from signin_links.cookies import CSRF, CSRF_LIFETIME_SECONDS
from signin_links.derived_keys import derived_key
from signin_links.keyring import Keyring

COOKIE_NAME = CSRF
FIELD = "csrf_token"
LIFETIME_SECONDS = CSRF_LIFETIME_SECONDS
CLOCK_SKEW_SECONDS = 60
NONCE_BYTES = 16
SALT_BYTES = 9
PURPOSE = "csrf-token"
MAX_TOKEN_LENGTH = 128
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str, size: int) -> bytes | None:
    """``text`` decoded as unpadded base64url of exactly ``size`` bytes, or None."""
    if not text or not set(text) <= _ALPHABET or len(text) != len(_b64(bytes(size))):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size and _b64(raw) == text else None


def valid_nonce(value: object) -> bool:
    return isinstance(value, str) and _unb64(value, NONCE_BYTES) is not None


@dataclass(frozen=True)
class CsrfGrant:
    """What one rendered page carries: the nonce for its cookie and the token for its forms."""

    nonce: str = field(repr=False)
    token: str = field(repr=False)


def _mac(key: bytes, nonce: str, issued_at: int, salt: str) -> str:
    message = f"{nonce}.{issued_at}.{salt}".encode("ascii")
    return _b64(hmac.new(key, message, sha256).digest())


def issue(keyring: Keyring, now: float, cookie_nonces: Iterable[str] = ()) -> CsrfGrant:
    """A token for one rendered page, bound to the browser's nonce (a new one if it holds none)."""
    nonce = next((value for value in cookie_nonces if valid_nonce(value)), None) or _b64(
        secrets.token_bytes(NONCE_BYTES)
    )
    issued_at = int(now)
    salt = _b64(secrets.token_bytes(SALT_BYTES))
    key = derived_key(keyring.current(now), PURPOSE)
    return CsrfGrant(nonce=nonce, token=f"{issued_at}.{salt}.{_mac(key, nonce, issued_at, salt)}")


def verify(token: object, cookie_nonces: Iterable[str], keyring: Keyring, now: float) -> bool:
    """Whether ``token`` was rendered by this service, within its lifetime, for one of the browser's
    ``__Host-csrf`` nonces. Never raises: anything malformed is simply not valid."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return False
    parts = token.split(".")
    if len(parts) != 3:
        return False
    raw_time, salt, mac = parts
    if not raw_time.isdigit() or len(raw_time) > 12 or _unb64(salt, SALT_BYTES) is None or _unb64(mac, 32) is None:
        return False
    issued_at = int(raw_time)
    if not now - LIFETIME_SECONDS <= issued_at <= now + CLOCK_SKEW_SECONDS:
        return False
    nonces = [value for value in cookie_nonces if valid_nonce(value)][:4]
    valid = False
    for key in keyring.keys:  # every key of the ring: a rotation does not break an open page
        secret = derived_key(key, PURPOSE)
        for nonce in nonces:
            valid |= hmac.compare_digest(_mac(secret, nonce, issued_at, salt), mac)
    return valid
