"""Hand-made JWTs for the tests that check forged, tampered and confused tokens are refused.

The mint and PyJWT sign the real ones; these helpers build what PyJWT would refuse to (``alg: none``, HS256
keyed with a public key, a payload changed under a valid signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def b64(data: bytes) -> str:
    """base64url without padding, as in a JWT segment."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    """A JWT segment's bytes (the padding put back)."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64_json(value: Any) -> str:
    """A JWT segment holding ``value`` as JSON."""
    return b64(json.dumps(value).encode())


def hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT of ``header`` and ``claims`` signed with HMAC-SHA256 under ``key``, whatever the header says."""
    signing_input = f"{b64_json(header)}.{b64_json(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def eddsa(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    """A JWT of ``header`` and ``claims`` signed with Ed25519 under ``key`` (a ``Key`` of the signing
    keyring, or a ``cryptography`` Ed25519 private key), whatever the header says."""
    signer = getattr(key, "signer", key)
    signing_input = f"{b64_json(header)}.{b64_json(claims)}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"
