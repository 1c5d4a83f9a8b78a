"""The ``SignInLinkMinted`` event, checked (:func:`parse_minted`), and the address it is sent to
(:func:`recipient`); what is not a link of this stack is :class:`IgnoredEvent` or
:class:`MalformedEvent`, what can never be sent a :class:`PermanentFailure`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signin_links import ids
from signin_links.events import MINTED_DETAIL_TYPE, SOURCE

# Why an email was not sent (the ``reason`` of SignInLinkEmailFailed and of the marker).
NO_ADDRESS = "no_address"
INVALID_ADDRESS = "invalid_address"
LINK_EXPIRED = "link_expired"
REJECTED = "rejected"
OUTCOME_UNKNOWN = "outcome_unknown"

MAX_ADDRESS_LENGTH = 254

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class IgnoredEvent(Exception):
    """Not a minted link of this stack: nothing is sent or recorded. ``str()`` is safe to log."""


class MalformedEvent(IgnoredEvent):
    """Not a well-formed ``SignInLinkMinted`` event from this stack's source at all (only the stack's
    own functions may publish that source, so one is a fault to look at: the email queue hands it to
    its dead-letter queue; an event invoked directly is ignored). ``str()`` is safe to log."""


class PermanentFailure(Exception):
    """The email cannot be sent, now or later; ``reason`` is one of the reasons above."""

    def __init__(self, reason: str, error_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_code = error_code


@dataclass(frozen=True)
class MintedLink:
    """A ``SignInLinkMinted`` detail, checked."""

    token_id: str
    user_id: str
    url: str = field(repr=False)
    token: str = field(repr=False)
    expires_at_ms: int
    batch_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    renewal_of: str | None = None  # a fresh link for this dead one (renewal.py): mailed to its address


def parse_minted(event: object, accept_base_url: str) -> MintedLink:
    """The minted link an EventBridge event carries: :class:`MalformedEvent` for anything not shaped
    like one, :class:`IgnoredEvent` for a link to another site (the token is not verified here: see
    :meth:`LinkEmails.prepare`)."""
    if not isinstance(event, Mapping):
        raise MalformedEvent("the event is not a JSON object")
    if event.get("detail-type") != MINTED_DETAIL_TYPE or event.get("source") != SOURCE:
        raise MalformedEvent(f"not a {MINTED_DETAIL_TYPE} event from {SOURCE}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEvent("the detail is not a JSON object")
    token_id, user_id, url = detail.get("sign_in_token_id"), detail.get("user_id"), detail.get("url")
    expires_at, batch_id, metadata = detail.get("expires_at"), detail.get("batch_id"), detail.get("metadata")
    if not isinstance(token_id, str) or not ids.is_id(token_id, ids.SIGN_IN_TOKEN):
        raise MalformedEvent("sign_in_token_id is missing or malformed")
    if not isinstance(user_id, str) or not user_id:
        raise MalformedEvent("user_id is missing")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise MalformedEvent("expires_at is not an integer")
    if batch_id is not None and not isinstance(batch_id, str):
        raise MalformedEvent("batch_id is not a string")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise MalformedEvent("metadata is not a JSON object")
    renewal_of = detail.get("renewal_of")
    if renewal_of is not None and (not isinstance(renewal_of, str) or not ids.is_id(renewal_of, ids.SIGN_IN_TOKEN)):
        raise MalformedEvent("renewal_of is not a sign_in_token_id")
    if not isinstance(url, str):
        raise MalformedEvent("url is not a string")
    prefix = f"{accept_base_url.rstrip('/')}/accept-token?token="
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise IgnoredEvent("url is not this stack's accept page")
    return MintedLink(
        token_id=token_id,
        user_id=user_id,
        url=url,
        token=url[len(prefix) :],
        expires_at_ms=expires_at,
        batch_id=batch_id,
        metadata=metadata or {},
        renewal_of=renewal_of,
    )


def recipient(metadata: Mapping[str, Any]) -> str:
    """The address in ``metadata.email``, as SES takes it (an internationalised domain in Punycode);
    :class:`PermanentFailure` if there is none or it is not one address SES could send to."""
    value = metadata.get("email")
    if value is None or value == "":
        raise PermanentFailure(NO_ADDRESS)
    if not isinstance(value, str):
        raise PermanentFailure(INVALID_ADDRESS)
    address = value.strip()
    if len(address) > MAX_ADDRESS_LENGTH or address.count("@") != 1:
        raise PermanentFailure(INVALID_ADDRESS)
    local, domain = address.split("@")
    # SES takes 7-bit local parts only (no SMTPUTF8); the domain may be internationalised.
    if not 1 <= len(local) <= 64 or not _LOCAL_PART.fullmatch(local):
        raise PermanentFailure(INVALID_ADDRESS)
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise PermanentFailure(INVALID_ADDRESS) from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise PermanentFailure(INVALID_ADDRESS)
    full = f"{local}@{ascii_domain}"
    if len(full) > MAX_ADDRESS_LENGTH:
        raise PermanentFailure(INVALID_ADDRESS)
    return full
