"""The wire format: requests in (the one place a request's shape is checked: the mint request's
JSON, the accept request's form or JSON, cookies, the session routes' query, refresh and sign-out
bodies), Clerk's ``sign_in_token`` and ``session`` objects and the error envelope out. Shapes only;
the rules live in the use cases (``sign_in_tokens.py``, ``redeem.py``, ``sessions.py``).

A request parses into a value of ``request_values.py`` (or ``mint_request.py``'s ``MintRequest``),
which the use cases take: this module sits above them in the import layers and none imports it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from signin_links.config import Settings
from signin_links.cookies import REFRESH_NAMES, refresh_cookie_name
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, param_missing, reject_unknown
from signin_links.mint_request import MintRequest, check_identifier
from signin_links.models import SessionRecord, SessionStatus, SignInTokenRecord
from signin_links.redirects import UrlError
from signin_links.request_values import AcceptRequest, SessionQuery, SessionRefreshRequest, SignOutRequest

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
CSRF_FIELD = "csrf_token"  # the per-render token of the service's own forms (csrf.py)


def clean_token(value: str) -> str:
    """A token as it arrived, without the whitespace that mail clients and copy-paste add around
    it (the page's query string and the POST body are read alike)."""
    return value.strip()


def parse_accept_request(
    body: bytes | str | None,
    content_type: str | None,
    max_bytes: int,
    session_cookies: tuple[str, ...] = (),
    refresh_cookies: tuple[str, ...] = (),
) -> AcceptRequest:
    """The token of ``POST /accept-token``: a form (``token=...``) or JSON (``{"token": ...}``) body."""
    raw = body_bytes(body, max_bytes)
    media_type = (content_type or FORM).split(";", 1)[0].strip().lower()
    token: object = None
    confirm: object = None
    csrf: object = None
    if media_type == JSON or media_type.endswith("+json"):
        if raw.strip():
            data = json_object(raw)
            token, confirm, csrf = data.get("token"), data.get(CONFIRM_FIELD), data.get(CSRF_FIELD)
    elif media_type in (FORM, ""):
        fields = form_fields(raw)
        token, confirm, csrf = (single(fields, name) for name in ("token", CONFIRM_FIELD, CSRF_FIELD))
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
    return AcceptRequest(
        token=token,
        session_cookies=session_cookies,
        refresh_cookies=refresh_cookies,
        confirm_switch=confirm == CONFIRM_SWITCH_USER,
        csrf_token=csrf if isinstance(csrf, str) else None,
    )


def form_fields(raw: bytes) -> dict[str, list[str]]:
    """A form body's fields (at most 8), or ``request_body_invalid``."""
    try:
        return parse_qs(raw.decode("utf-8"), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The form could not be read.") from None


def single(fields: dict[str, list[str]], name: str) -> str | None:
    """A form field given exactly once (a repeated field counts as absent: which one would be meant?)."""
    values = fields.get(name) or []
    return values[0] if len(values) == 1 else None


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


def refresh_cookie_values(cookies: list[str] | None, cookie_domain: str) -> tuple[str, ...]:
    """The refresh tokens a refresh reads: the values of this deployment's refresh cookie
    (``cookies.refresh_cookie_name``), or, when the request carries different values under any
    refresh name, all of them, which the refresh refuses (a sibling host planted one). A cookie of
    another refresh name alone is not read: a sibling can set ``__Secure-refresh`` for the parent
    domain, but never ``__Host-refresh``."""
    every = all_refresh_cookie_values(cookies)
    if len(dict.fromkeys(every)) > 1:
        return every
    return cookie_values(cookies, refresh_cookie_name(cookie_domain))


def all_refresh_cookie_values(cookies: list[str] | None) -> tuple[str, ...]:
    """The values of every refresh cookie, whatever its name (``cookies.REFRESH_NAMES``), at most eight:
    what sign-out ends and what a new sign-in replaces."""
    return tuple(value for name in REFRESH_NAMES for value in cookie_values(cookies, name))[:8]


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


# --- The session routes' requests and Clerk's Session object ------------------------------------

MAX_LIST_LIMIT = 500
MAX_OFFSET = 100_000
MAX_REDIRECT_LENGTH = 2048
# Every status Clerk's SDKs may ask for; this service's sessions are never removed, replaced or pending.
CLERK_STATUSES = frozenset({*(status.value for status in SessionStatus), "removed", "replaced", "pending"})
TOKEN_FIELDS = frozenset({"expires_in_seconds"})
REFRESH_FIELDS = frozenset(
    {"expired_token", "refresh_token", "request_origin", "request_headers", "format", "request_originating_ip"}
)


def parse_session_refresh(data: dict[str, Any]) -> SessionRefreshRequest:
    """The refresh body's fields and JSON types (what Clerk's SDKs send), or a 422 naming the field."""
    reject_unknown(data, REFRESH_FIELDS)
    expired_token, refresh_token = data.get("expired_token"), data.get("refresh_token")
    for name, value in (("expired_token", expired_token), ("refresh_token", refresh_token)):
        if not isinstance(value, str) or not value:
            raise param_invalid(name, "must be a non-empty string.")
    if not isinstance(data.get("request_origin"), str):
        raise param_invalid("request_origin", "must be a string.")
    if data.get("request_headers") is not None and not isinstance(data["request_headers"], dict):
        raise param_invalid("request_headers", "must be an object or null.")
    if data.get("request_originating_ip") is not None and not isinstance(data["request_originating_ip"], str):
        raise param_invalid("request_originating_ip", "must be a string or null.")
    response_format = "token" if data.get("format") is None else data["format"]
    if response_format not in ("token", "cookie"):
        raise param_invalid("format", "must be token or cookie.")
    assert isinstance(expired_token, str) and isinstance(refresh_token, str)  # checked above
    return SessionRefreshRequest(expired_token, refresh_token, response_format)


REVOKE_ALL_FIELDS = frozenset({"user_id"})


def parse_revoke_all(data: dict[str, Any]) -> str:
    """The body of ``POST /v1/sessions/revoke``: ``{"user_id": "..."}`` (the mint's rules for ids),
    or a 422 naming the field; an unknown field is ``form_param_unknown``."""
    reject_unknown(data, REVOKE_ALL_FIELDS)
    user_id = check_identifier(data.get("user_id"), "user_id", required=True)
    assert user_id is not None  # required
    return user_id


def _query_int(raw: str | None, name: str, default: int, minimum: int, maximum: int) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise param_invalid(name, f"must be an integer between {minimum} and {maximum}.")
    value = int(text)
    if not minimum <= value <= maximum:
        raise param_invalid(name, f"must be an integer between {minimum} and {maximum}.")
    return value


def _query_id(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    return check_identifier(raw, name, required=False)  # the mint's rules for ids


def parse_session_query(params: dict[str, str]) -> SessionQuery:
    """The query string of ``GET /v1/sessions`` (what Clerk's SDKs send), or a 422 naming the field
    (a parameter given empty is invalid, not absent)."""
    user_id, client_id = _query_id(params.get("user_id"), "user_id"), _query_id(params.get("client_id"), "client_id")
    if user_id is None and client_id is None:
        raise param_missing("user_id")
    raw_status = params.get("status")
    if raw_status is not None and raw_status not in CLERK_STATUSES:
        raise param_invalid("status", f"must be one of {', '.join(sorted(CLERK_STATUSES))}.")
    paginated = params.get("paginated", "false").strip().lower()
    if paginated not in ("true", "false"):
        raise param_invalid("paginated", "must be true or false.")
    return SessionQuery(
        user_id=user_id,
        client_id=client_id,
        status=raw_status,
        limit=_query_int(params.get("limit"), "limit", 10, 1, MAX_LIST_LIMIT),
        offset=_query_int(params.get("offset"), "offset", 0, 0, MAX_OFFSET),
        paginated=paginated == "true",
    )


def allowed_redirect(value: object, settings: Settings) -> str | None:
    """The canonical ASCII form (``redirects.py``) of ``value`` when it is an http(s) URL on
    ``AllowedRedirectOrigins``, else None: the form the answer's ``Location`` carries, as the accept's."""
    if not isinstance(value, str) or not value or len(value) > MAX_REDIRECT_LENGTH:
        return None
    try:
        return settings.redirect_target(value)
    except UrlError:
        return None


def parse_sign_out_request(body: bytes | str | None, content_type: str | None, settings: Settings) -> SignOutRequest:
    """The optional ``redirect_url`` (and ``csrf_token``) of ``POST /sign-out``, a form or JSON: None
    when absent, 422 when present and not an allowed URL."""
    raw = body_bytes(body, settings.max_body_bytes)
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    redirect: object = None
    csrf: object = None
    if media_type == "application/json" or media_type.endswith("+json"):
        data = json_object(raw) if raw.strip() else {}
        redirect, csrf = data.get("redirect_url"), data.get(CSRF_FIELD)
    else:
        fields = form_fields(raw)
        redirect, csrf = single(fields, "redirect_url"), single(fields, CSRF_FIELD)
    csrf_token = csrf if isinstance(csrf, str) else None
    if redirect is None or redirect == "":
        return SignOutRequest(None, csrf_token)
    url = allowed_redirect(redirect, settings)
    if url is None:
        raise param_invalid("redirect_url", "is not on the list of allowed redirect origins.")
    return SignOutRequest(url, csrf_token)


def session_json(record: SessionRecord, now_ms: int) -> dict[str, object]:
    """Clerk's ``Session`` object; ``status`` is the status at ``now_ms`` (time expires a session)."""
    return {
        "object": "session",
        "id": record.id,
        "user_id": record.user_id,
        "client_id": record.client_id,
        "status": record.status_at(now_ms).value,
        "last_active_at": record.last_active_at,
        "expire_at": record.expire_at,
        "abandon_at": record.abandon_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_active_organization_id": record.org_id,
        "actor": None,
    }
