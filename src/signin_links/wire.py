"""The Clerk-compatible wire format: request bodies in, ``sign_in_token`` objects and the error
envelope out. Shapes only; the rules live in ``service.py``.
"""

from __future__ import annotations

import json
from typing import Any

from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, reject_unknown
from signin_links.models import SignInTokenRecord
from signin_links.service import MintRequest

JSON = "application/json"  # the media type of every /v1 body and answer

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
