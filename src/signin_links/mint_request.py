"""What a mint asks for (:class:`MintRequest`) and the rules it must keep: identifiers, lifetime,
redirect URL. Shared by the HTTP mint (``wire.py``), the batches (``batch/``) and ``sign_in_tokens.py``."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace

from signin_links.config import Settings
from signin_links.errors import param_invalid, param_missing
from signin_links.redirects import UrlError

MAX_ID_LENGTH = 256
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class MintRequest:
    user_id: str
    expires_in_seconds: int | None = None
    org_id: str | None = None
    redirect_url: str | None = None


def check_identifier(value: object, name: str, *, required: bool) -> str | None:
    """A user or org id: a non-empty string of at most 256 characters, no control characters."""
    if value is None:
        if required:
            raise param_missing(name)
        return None
    if not isinstance(value, str):
        raise param_invalid(name, "must be a string.")
    if not value.strip():
        raise param_invalid(name, "must not be empty.")
    if len(value) > MAX_ID_LENGTH:
        raise param_invalid(name, f"must be at most {MAX_ID_LENGTH} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029" for ch in value):
        raise param_invalid(name, "must not contain control characters.")
    return value


def check_mint_request(request: MintRequest, settings: Settings) -> MintRequest:
    """Apply the bounds and defaults of the contract; returns a request with every field settled."""
    check_identifier(request.user_id, "user_id", required=True)
    check_identifier(request.org_id, "org_id", required=False)
    expires = request.expires_in_seconds
    if expires is None:
        expires = settings.default_expires_in_seconds
    elif isinstance(expires, bool) or not isinstance(expires, int):
        raise param_invalid("expires_in_seconds", "must be an integer.")
    elif not 1 <= expires <= settings.max_expires_in_seconds:
        raise param_invalid("expires_in_seconds", f"must be between 1 and {settings.max_expires_in_seconds} seconds.")
    redirect = request.redirect_url
    if redirect is None:
        redirect = settings.default_redirect_url or None
    elif not isinstance(redirect, str):
        raise param_invalid("redirect_url", "must be a string.")
    else:
        redirect = check_redirect_url(redirect, settings)
    return replace(request, expires_in_seconds=expires, redirect_url=redirect)


def check_redirect_url(url: str, settings: Settings) -> str:
    """The ASCII URL a redirect is signed and sent as (``redirects.py``), on an allowed origin."""
    if len(url) > MAX_URL_LENGTH:
        raise param_invalid("redirect_url", f"must be at most {MAX_URL_LENGTH} characters.")
    try:
        target = settings.redirect_target(url)
    except UrlError as exc:
        raise param_invalid("redirect_url", f"is not a valid http(s) URL: {exc.reason}.") from None
    if target is None:
        raise param_invalid("redirect_url", "is not on the list of allowed redirect origins.")
    if len(target) > MAX_URL_LENGTH:
        raise param_invalid("redirect_url", f"must be at most {MAX_URL_LENGTH} characters once percent-encoded.")
    return target
