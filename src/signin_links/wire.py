"""The wire format: request bodies in (the one place a request's shape is checked: the mint
request's JSON, the accept request's form or JSON, cookies), Clerk's ``sign_in_token`` objects and
error envelope out. Shapes only; the rules live in the use cases (``service.py``, ``redeem.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, param_missing, reject_unknown
from signin_links.models import SignInTokenRecord
from signin_links.service import MintRequest

JSON = "application/json"  # the media type of every /v1 body and answer
FORM = "application/x-www-form-urlencoded"

CREATE_FIELDS = frozenset({"user_id", "expires_in_seconds", "org_id", "redirect_url"})


def body_bytes(body: bytes | str | None, max_bytes: int) -> bytes:
    """The request body as bytes, refused (413) beyond ``max_bytes``."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else (body or b"")
    if len(raw) > max_bytes:
        raise SignInLinksError(ErrorCode.REQUEST_BODY_TOO_LARGE, f"The request body must be at most {max_bytes} bytes.")
    return raw


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or ``request_body_invalid``."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The request body must be a JSON object.")
    return data


def read_json_object(body: bytes | str | None, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    raw = body_bytes(body, max_bytes)
    return json_object(raw) if raw.strip() else {}


def parse_mint_request(data: dict[str, Any]) -> MintRequest:
    """Field names and JSON types of ``POST /v1/sign_in_tokens``; unknown fields are rejected
    (``form_param_unknown``), as Clerk does."""
    reject_unknown(data, CREATE_FIELDS)
    expires = data.get("expires_in_seconds")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise param_invalid("expires_in_seconds", "must be an integer.")
    return MintRequest(
        user_id=data.get("user_id"),  # type: ignore[arg-type]  # checked by the service
        expires_in_seconds=expires,
        org_id=data.get("org_id"),
        redirect_url=data.get("redirect_url"),
    )


# --- POST /accept-token (the accept function; redeem.py consumes the token) ---------------------

CONFIRM_FIELD = "confirm"
CONFIRM_SWITCH_USER = "switch_user"


@dataclass(frozen=True)
class AcceptRequest:
    token: str
    # Every ``__session`` value the browser sent (two can arrive, set for different domains).
    session_cookies: tuple[str, ...] = field(default=(), repr=False)
    # The person confirmed signing in as the link's user although another user is signed in here.
    confirm_switch: bool = False

    def __repr__(self) -> str:  # never print the token
        return "AcceptRequest(<redacted>)"


def clean_token(value: str) -> str:
    """A token as it arrived, without the whitespace that mail clients and copy-paste add around
    it (the page's query string and the POST body are read alike)."""
    return value.strip()


def parse_accept_request(
    body: bytes | str | None,
    content_type: str | None,
    max_bytes: int,
    session_cookies: tuple[str, ...] = (),
) -> AcceptRequest:
    """The token of ``POST /accept-token``: a form (``token=...``) or JSON (``{"token": ...}``) body."""
    raw = body_bytes(body, max_bytes)
    media_type = (content_type or FORM).split(";", 1)[0].strip().lower()
    token: object = None
    confirm: object = None
    if media_type == JSON or media_type.endswith("+json"):
        if raw.strip():
            data = json_object(raw)
            token, confirm = data.get("token"), data.get(CONFIRM_FIELD)
    elif media_type in (FORM, ""):
        try:
            fields = parse_qs(raw.decode("utf-8"), max_num_fields=8, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The form could not be read.") from None
        values = fields.get("token") or []
        token = values[0] if len(values) == 1 else None
        confirms = fields.get(CONFIRM_FIELD) or []
        confirm = confirms[0] if len(confirms) == 1 else None
    else:
        raise SignInLinksError(
            ErrorCode.REQUEST_BODY_INVALID, 'Send the token as a form (token=...) or as JSON ({"token": ...}).'
        )
    if isinstance(token, str):
        token = clean_token(token)
    if token is None or token == "":
        raise param_missing("token")
    if not isinstance(token, str):
        raise SignInLinksError(ErrorCode.TICKET_INVALID)  # as a token that does not verify
    return AcceptRequest(token=token, session_cookies=session_cookies, confirm_switch=confirm == CONFIRM_SWITCH_USER)


def cookie_values(cookies: list[str] | None, name: str, limit: int = 4) -> tuple[str, ...]:
    """The values of cookie ``name`` among API Gateway's ``cookies`` (``["a=b", ...]``), at most ``limit``."""
    found = [
        value.strip()
        for cookie in cookies or []
        for part in cookie.split(";")
        for key, sep, value in [part.strip().partition("=")]
        if sep and key == name and value.strip()
    ]
    return tuple(found[:limit])


def sign_in_token_json(record: SignInTokenRecord, *, token: str = "", url: str = "") -> dict[str, Any]:
    """Exactly the fields of Clerk's ``sign_in_token`` object.

    The token is never stored, so only the mint response carries ``token`` and ``url``; later
    answers (revoke) omit ``token`` and give ``url: null``, both of which Clerk's SDKs accept.
    """
    body: dict[str, Any] = {
        "object": "sign_in_token",
        "id": record.id,
        "status": record.status.value,
        "user_id": record.user_id,
    }
    if token:
        body["token"] = token
    body["url"] = url or None
    body["created_at"] = record.created_at
    body["updated_at"] = record.updated_at
    return body


def error_envelope(error: SignInLinksError, trace_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "message": error.message,
        "long_message": error.long_message,
        "code": error.code.wire_code,
    }
    if error.meta:
        entry["meta"] = error.meta
    return {"errors": [entry], "clerk_trace_id": trace_id}
