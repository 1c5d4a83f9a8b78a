"""The one table of domain errors: each has its HTTP status, wire code and messages.

Domain code raises :class:`SignInLinksError` with an :class:`ErrorCode`; the handlers map it to
a response in one place (``wire.error_envelope``) and never build error bodies themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import Enum
from typing import Any


class ErrorCode(Enum):
    """(wire code, HTTP status, short message, default long message)."""

    AUTHORIZATION_HEADER_FORMAT_INVALID = (
        "authorization_header_format_invalid",
        401,
        "Invalid Authorization header format",
        "The Authorization header must be of the form 'Bearer <secret key>'.",
    )
    CLERK_KEY_INVALID = (
        "clerk_key_invalid",
        401,
        "Secret key invalid",
        "The provided secret key is not recognised.",
    )
    REQUEST_BODY_INVALID = (
        "request_body_invalid",
        400,
        "Request body invalid",
        "The request body is not a valid JSON object.",
    )
    REQUEST_BODY_TOO_LARGE = (
        "request_body_too_large",
        413,
        "Request body too large",
        "The request body exceeds the maximum allowed size.",
    )
    FORM_PARAM_MISSING = ("form_param_missing", 422, "is missing", "A required parameter is missing.")
    FORM_PARAM_VALUE_INVALID = (
        "form_param_value_invalid",
        422,
        "is invalid",
        "A parameter has an invalid value.",
    )
    FORM_PARAM_UNKNOWN = ("form_param_unknown", 422, "is unknown", "The request contains an unknown parameter.")
    RESOURCE_NOT_FOUND = ("resource_not_found", 404, "not found", "The requested resource was not found.")
    ROUTE_NOT_FOUND = ("resource_not_found", 404, "not found", "No such route.")
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, "Method not allowed", "This route does not accept that method.")
    SIGN_IN_TOKEN_CANNOT_BE_REVOKED = (
        "sign_in_token_cannot_be_revoked_code",
        400,
        "Sign in token cannot be revoked",
        "Only pending sign in tokens can be revoked.",
    )
    TICKET_INVALID = (
        "ticket_invalid_code",
        400,
        "This link is not valid",
        "The sign-in link is malformed or was not issued by this service.",
    )
    TICKET_EXPIRED = ("ticket_expired_code", 400, "This link has expired", "The sign-in link has expired.")
    SIGN_IN_TOKEN_ALREADY_USED = (
        "sign_in_token_already_used_code",
        400,
        "This link was already used",
        "The sign-in link has already been used to sign in.",
    )
    SIGN_IN_TOKEN_REVOKED = (
        "sign_in_token_revoked_code",
        400,
        "This link was revoked",
        "The sign-in link was revoked by the application.",
    )
    # --- Sessions and login CSRF ---
    SESSION_CANNOT_BE_REVOKED = (
        "session_cannot_be_revoked_code",
        400,
        "Session cannot be revoked",
        "Only active sessions can be revoked.",
    )
    SESSION_NOT_ACTIVE = (
        "session_not_active",
        400,
        "Session not active",
        "The session has ended, was revoked, has expired or was abandoned.",
    )
    SESSION_REFRESH_INVALID = (
        "authentication_invalid",
        401,
        "Signed out",
        "The session is not active or the refresh token does not match it; sign in again.",
    )
    ORIGIN_INVALID = (
        "origin_invalid",
        403,
        "Request refused",
        "This request came from another site that is not allowed to make it.",
    )
    EDGE_REQUIRED = (
        "edge_required",
        403,
        "Request refused",
        "Requests to this service go through its CloudFront distribution.",
    )
    ANOTHER_USER_SIGNED_IN = (
        "another_user_signed_in",
        409,
        "Another user is signed in",
        "This browser is signed in as another user; confirm to switch users.",
    )
    # --- Clerk's Frontend API (functions/clerk_frontend, docs/clerk-frontend.md) ---
    SESSION_EXISTS = (
        "session_exists",
        400,
        "You're already signed in",
        "This browser already holds an active session; sign out before signing in again.",
    )
    STRATEGY_UNSUPPORTED = (
        "strategy_for_user_invalid",
        422,
        "is not supported",
        "Only the ticket strategy is supported: pass strategy=ticket with the sign-in token.",
    )
    SERVICE_UNAVAILABLE = (
        "service_unavailable",
        503,
        "Service temporarily unavailable",
        "A dependency of the service is temporarily unavailable; retry shortly.",
    )

    def __init__(self, wire_code: str, status: int, message: str, long_message: str) -> None:
        self.wire_code = wire_code
        self.status = status
        self.message = message
        self.long_message = long_message


class SignInLinksError(Exception):
    """A failure the caller can act on; carries everything the error envelope needs."""

    def __init__(
        self,
        code: ErrorCode,
        long_message: str | None = None,
        *,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.code = code
        self.long_message = long_message or code.long_message
        self.param = param
        self.retry_after = retry_after
        super().__init__(f"{code.wire_code}: {self.long_message}")

    @property
    def status(self) -> int:
        return self.code.status

    @property
    def message(self) -> str:
        if self.param and self.code in _PARAM_MESSAGES:
            return f"{self.param} {self.code.message}"
        return self.code.message

    @property
    def meta(self) -> dict[str, Any] | None:
        return {"param_name": self.param} if self.param else None


_PARAM_MESSAGES = {
    ErrorCode.FORM_PARAM_MISSING,
    ErrorCode.FORM_PARAM_VALUE_INVALID,
    ErrorCode.FORM_PARAM_UNKNOWN,
    ErrorCode.STRATEGY_UNSUPPORTED,
}


def param_missing(name: str) -> SignInLinksError:
    return SignInLinksError(ErrorCode.FORM_PARAM_MISSING, f"{name} must be included.", param=name)


def param_invalid(name: str, why: str) -> SignInLinksError:
    return SignInLinksError(ErrorCode.FORM_PARAM_VALUE_INVALID, f"{name} {why}", param=name)


def reject_unknown(data: Iterable[object], allowed: Collection[str]) -> None:
    """Refuse the first field name not in ``allowed`` (422 ``form_param_unknown``), as Clerk does."""
    for name in data:
        if name not in allowed:
            shown = str(name)[:64]
            raise SignInLinksError(ErrorCode.FORM_PARAM_UNKNOWN, f"{shown} is not a valid parameter.", param=shown)


def unavailable(what: str, retry_after: int = 1) -> SignInLinksError:
    return SignInLinksError(
        ErrorCode.SERVICE_UNAVAILABLE, f"{what} is temporarily unavailable; retry shortly.", retry_after=retry_after
    )
