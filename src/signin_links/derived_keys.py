"""Symmetric keys derived from the session keyring's keys (HKDF-SHA256, RFC 5869).

The accept and sessions functions hold the session keyring (RSA private keys) and, once sign-in
tokens are asymmetric, no other secret they could sign with. The refresh tokens' proofs
(``refresh_tokens.py``) and the forms' CSRF tokens (``csrf.py``) need symmetric keys: each key of
the ring yields one per purpose, HKDF over the key's PEM with the purpose as ``info``. A derived key
rotates with its RSA key, is never stored, and tells nothing about the RSA key nor about the key of
another purpose. Standard library only, and no PyJWT: ``csrf.py`` is in the mint's import graph
(``http.py``), which must not load PyJWT (tests/unit/test_mint_imports.py).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from signin_links.keyring import Key

SALT = b"signin-links derived keys v1"


@lru_cache(maxsize=64)
def _hkdf(material: str, purpose: str) -> bytes:
    prk = hmac.new(SALT, material.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(prk, purpose.encode("ascii") + b"\x01", hashlib.sha256).digest()


def derived_key(key: Key, purpose: str) -> bytes:
    """A 256-bit key for ``purpose`` derived from one key of the session keyring."""
    material = key.private_key_pem or key.secret.hex()
    if not material:
        raise ValueError(f"key {key.kid} holds no material to derive from")
    return _hkdf(material, purpose)
