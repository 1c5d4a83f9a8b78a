"""Bearer secret keys for the ``/v1`` API, read from Secrets Manager and compared in constant time.

The secret is JSON: ``{"secret_key": "..."}`` (what the stack generates) and/or
``{"secret_keys": ["...", "..."]}`` (several live keys, for rotating API keys without downtime).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import lru_cache

from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.keyring import fetch_secret
from signin_links.observability import logger

MAX_HEADER_LENGTH = 1024


@lru_cache(maxsize=4)
def parse_api_keys(raw: str) -> tuple[bytes, ...]:
    """Digests of the live keys (a digest hides each key's length from the comparison)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw
    keys: list[str] = []
    if isinstance(data, str):
        keys.append(data)
    elif isinstance(data, dict):
        if isinstance(data.get("secret_key"), str):
            keys.append(data["secret_key"])
        listed = data.get("secret_keys")
        if isinstance(listed, list):
            keys.extend(key for key in listed if isinstance(key, str))
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys if len(key) >= 16)


def bearer_key(header: str | None) -> str:
    """The key in ``Authorization: Bearer <key>``, or ``authorization_header_format_invalid``."""
    if not header or len(header) > MAX_HEADER_LENGTH:
        raise SignInLinksError(ErrorCode.AUTHORIZATION_HEADER_FORMAT_INVALID)
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or any(ch.isspace() for ch in key) or not key.isprintable():
        raise SignInLinksError(ErrorCode.AUTHORIZATION_HEADER_FORMAT_INVALID)
    return key


def key_matches(presented: str, live: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every live key is compared, whatever the outcome."""
    digest = hashlib.sha256(presented.encode()).digest()
    matched = False
    for candidate in live:
        matched |= hmac.compare_digest(digest, candidate)
    return matched


def live_keys(settings: Settings) -> tuple[bytes, ...]:
    """Digests of the live API keys (the secret is cached for ``secrets_max_age``, its parse on its text)."""
    return parse_api_keys(fetch_secret(settings.api_keys_secret_id, settings.secrets_max_age_seconds))


def authenticate(header: str | None, settings: Settings) -> None:
    """Let the request through when ``header`` is ``Bearer <key>`` with a live key of the API keys
    secret (every live key compared, in constant time).

    Raises:
        SignInLinksError: ``authorization_header_format_invalid`` (401) for a missing or malformed
            header; ``clerk_key_invalid`` (401) for a key that is not live; ``service_unavailable``
            (503) when the secret cannot be read or holds no usable key (an operator's error, logged).
    """
    presented = bearer_key(header)
    live = live_keys(settings)
    if not live:
        logger.error("the API keys secret holds no usable key (at least 16 characters)")
        raise unavailable("Authentication")
    if not key_matches(presented, live):
        raise SignInLinksError(ErrorCode.CLERK_KEY_INVALID)
