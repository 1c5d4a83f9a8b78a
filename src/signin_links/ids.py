"""Identifiers in Clerk's style: a type prefix and a base62 body (``sit_...``, ``sess_...``)."""

from __future__ import annotations

import hashlib
import re
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = re.compile(r"^[0-9A-Za-z]{16,40}$")

SIGN_IN_TOKEN = "sit"
SESSION = "sess"
CLIENT = "client"


def _base62(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars)).rjust(22, "0")


def new_id(prefix: str) -> str:
    """A fresh random id (128 bits)."""
    return f"{prefix}_{_base62(secrets.token_bytes(16))}"


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id for the same parts (used to make batch minting idempotent)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:16]
    return f"{prefix}_{_base62(digest)}"


def is_id(value: str, prefix: str) -> bool:
    head, sep, body = value.partition("_")
    return bool(sep) and head == prefix and bool(_BODY.match(body))
