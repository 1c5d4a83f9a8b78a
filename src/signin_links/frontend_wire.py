"""The wire format of Clerk's Frontend API, as clerk-js speaks it (docs/clerk-frontend.md).

Requests in: clerk-js sends every body form-encoded with snake_case keys, every method other than
GET and POST as ``POST ?_method=DELETE|PATCH|PUT`` (a Safari CORS workaround), and adds
``_clerk_js_version``, ``__clerk_api_version`` (and sometimes ``_clerk_session_id``,
``_clerk_retry_attempt``) to the query string; those are read here and nowhere else.

Objects out: Clerk's ``client``, ``session``, ``sign_in``, ``token`` and ``environment`` JSON, in
the shape clerk-js parses (Core 2 and Core 3): only ``user.id`` is real, every other user field is
empty. Shapes only; the rules live in ``frontend.py``, which takes the parsed
``request_values.SignInRequest`` and never imports this module.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qs

from signin_links import ids
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, param_missing
from signin_links.models import SessionRecord
from signin_links.request_values import SignInRequest
from signin_links.wire import FORM, JSON, body_bytes, json_object

MAX_FORM_FIELDS = 32  # clerk-js sends at most a handful (strategy, ticket, locale, protect params)
# The methods clerk-js tunnels through POST (``_method``); anything else is 405.
TUNNELLED_METHODS = frozenset({"DELETE", "PATCH", "PUT"})
TICKET_STRATEGY = "ticket"
SIGN_IN_ATTEMPT = "sia"  # Clerk's prefix of a sign-in attempt's id


def publishable_key(frontend_api_host: str) -> str:
    """Clerk's publishable key for a Frontend API host (``clerk.example.com``, or ``host:port``):
    ``pk_live_`` + base64 of ``<host>$``, from which clerk-js builds ``https://<host>/v1/...`` (a
    ``pk_test_`` key would make clerkMiddleware ask for a development browser handshake)."""
    return "pk_live_" + base64.b64encode(f"{frontend_api_host}$".encode()).decode("ascii")


def effective_method(method: str, query: Mapping[str, str] | None) -> str:
    """The method clerk-js meant: ``_method`` on a POST (DELETE, PATCH, PUT), else the request's own.

    An unknown ``_method`` (or one on a GET) is a 405: never guessed."""
    tunnelled = (query or {}).get("_method")
    if tunnelled is None:
        return method.upper()
    wanted = tunnelled.strip().upper()
    if method.upper() != "POST" or wanted not in TUNNELLED_METHODS:
        raise SignInLinksError(ErrorCode.METHOD_NOT_ALLOWED, "_method must be DELETE, PATCH or PUT, on a POST request.")
    return wanted


def form_fields(
    body: bytes | str | None, content_type: str | None, max_bytes: int, *, read: Collection[str]
) -> dict[str, str]:
    """The fields named in ``read`` of a clerk-js body: form-encoded (its own), or a JSON object.

    Each field read must be given once, as a string; every other field is ignored, whatever its
    shape or how often it is repeated: clerk-js adds fields (``locale``, Protect's parameters) that
    this service has no use for."""
    raw = body_bytes(body, max_bytes)
    if not raw.strip():
        return {}
    media_type = (content_type or FORM).split(";", 1)[0].strip().lower()
    if media_type == JSON or media_type.endswith("+json"):
        data = json_object(raw)
        fields: dict[str, str] = {}
        for name in read:
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise param_invalid(name, "must be a string.")
            fields[name] = value
        return fields
    if media_type not in (FORM, ""):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "Send the fields form-encoded, as clerk-js does.")
    try:
        parsed = parse_qs(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The form could not be read.") from None
    single: dict[str, str] = {}
    for name in read:
        values = parsed.get(name)
        if values is None:
            continue
        if len(values) != 1:
            raise param_invalid(name, "must be given once.")
        single[name] = values[0]
    return single


SIGN_IN_FIELDS = ("strategy", "ticket")


def parse_sign_in(fields: Mapping[str, str]) -> SignInRequest:
    """``strategy=ticket&ticket=...``; any other strategy is refused with a message saying why."""
    strategy = fields.get("strategy")
    if strategy is None or strategy == "":
        raise param_missing("strategy")
    if strategy != TICKET_STRATEGY:
        raise SignInLinksError(
            ErrorCode.STRATEGY_UNSUPPORTED,
            f"The {strategy[:64]!r} strategy is not supported by this service: only strategy=ticket, with a "
            "sign-in token minted through POST /v1/sign_in_tokens, signs in.",
            param="strategy",
        )
    ticket = (fields.get("ticket") or "").strip()
    if not ticket:
        raise param_missing("ticket")
    return SignInRequest(ticket=ticket)


# --- Objects out ------------------------------------------------------------------------------------


def user_json(user_id: str, created_at: int) -> dict[str, Any]:
    """Clerk's ``User``, of which this service knows only the id (every other field is empty)."""
    return {
        "object": "user",
        "id": user_id,
        "external_id": None,
        "primary_email_address_id": None,
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "image_url": "",
        "has_image": False,
        "username": None,
        "first_name": None,
        "last_name": None,
        "email_addresses": [],
        "phone_numbers": [],
        "web3_wallets": [],
        "external_accounts": [],
        "enterprise_accounts": [],
        "saml_accounts": [],
        "passkeys": [],
        "organization_memberships": [],
        "password_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "two_factor_enabled": False,
        "public_metadata": {},
        "unsafe_metadata": {},
        "last_sign_in_at": created_at,
        "create_organization_enabled": False,
        "create_organizations_limit": None,
        "delete_self_enabled": False,
        "legal_accepted_at": None,
        "created_at": created_at,
        "updated_at": created_at,
    }


def token_json(jwt: str) -> dict[str, str]:
    return {"object": "token", "jwt": jwt}


def session_json(record: SessionRecord, jwt: str, now_ms: int) -> dict[str, Any]:
    """Clerk's Frontend API ``Session``: with ``user`` and ``last_active_token`` (``setActive`` looks
    the session up in ``client.sessions``; a session without a token makes clerk-js drop ``__session``)."""
    return {
        "object": "session",
        "id": record.id,
        "status": record.status_at(now_ms).value,
        "expire_at": record.expire_at,
        "abandon_at": record.abandon_at,
        "last_active_at": record.last_active_at,
        "last_active_token": token_json(jwt),
        "last_active_organization_id": None,
        "factor_verification_age": None,
        "actor": None,
        "tasks": None,
        "user": user_json(record.user_id, record.created_at),
        "public_user_data": {
            "first_name": None,
            "last_name": None,
            "image_url": "",
            "has_image": False,
            "identifier": record.user_id,
            "user_id": record.user_id,
        },
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def client_json(record: SessionRecord | None, jwt: str, now_ms: int) -> dict[str, Any]:
    """Clerk's ``Client``: the browser and its one session (signed out: no session)."""
    if record is None:
        return {
            "object": "client",
            "id": None,
            "sessions": [],
            "sign_in": None,
            "sign_up": None,
            "last_active_session_id": None,
            "last_authentication_strategy": None,
            "cookie_expires_at": None,
            "captcha_bypass": False,
            "created_at": now_ms,
            "updated_at": now_ms,
        }
    return {
        "object": "client",
        "id": record.client_id,
        "sessions": [session_json(record, jwt, now_ms)],
        "sign_in": None,
        "sign_up": None,
        "last_active_session_id": record.id,
        "last_authentication_strategy": TICKET_STRATEGY,
        "cookie_expires_at": record.expire_at,
        "captcha_bypass": False,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def sign_in_json(record: SessionRecord) -> dict[str, Any]:
    """Clerk's ``SignIn`` of a completed ticket sign-in (not stored: its id is new each time)."""
    return {
        "object": "sign_in",
        "id": ids.new_id(SIGN_IN_ATTEMPT),
        "status": "complete",
        "supported_identifiers": [],
        "supported_first_factors": [],
        "supported_second_factors": [],
        "first_factor_verification": None,
        "second_factor_verification": None,
        "identifier": None,
        "user_data": None,
        "created_session_id": record.id,
        "abandon_at": record.created_at + 24 * 3600 * 1000,
        "created_at": record.created_at,
        "updated_at": record.created_at,
    }


def environment_json(application_name: str, single_session: bool = True) -> dict[str, Any]:
    """Clerk's ``Environment``: a production instance with sign-in by ticket only (no sign-up, no
    organisations, no user profile), single-session (one session per browser)."""
    return {
        "object": "environment",
        "id": "env_signin_links",
        "maintenance_mode": False,
        "auth_config": {
            "object": "auth_config",
            "id": "aac_signin_links",
            "single_session_mode": single_session,
            "claimed_at": None,
            "reverification": False,
        },
        "display_config": {
            "object": "display_config",
            "id": "display_config_signin_links",
            "instance_environment_type": "production",
            "application_name": application_name,
            "branded": False,
            "captcha_public_key": None,
            "captcha_widget_type": None,
            "captcha_provider": None,
            "captcha_public_key_invisible": None,
            "captcha_oauth_bypass": [],
            "home_url": "",
            "sign_in_url": "",
            "sign_up_url": "",
            "after_sign_in_url": "",
            "after_sign_up_url": "",
            "after_sign_out_one_url": "",
            "after_sign_out_all_url": "",
            "after_switch_session_url": "",
            "organization_profile_url": "",
            "create_organization_url": "",
            "after_leave_organization_url": "",
            "after_create_organization_url": "",
            "user_profile_url": "",
            "support_email": None,
            "logo_image_url": "",
            "favicon_image_url": "",
            "preferred_sign_in_strategy": "password",
            "theme": {},
            "show_devmode_warning": False,
            "terms_url": None,
            "privacy_policy_url": None,
            "waitlist_url": "",
            "after_join_waitlist_url": "",
        },
        "user_settings": {
            "attributes": {},
            "social": {},
            "enterprise_sso": {"enabled": False},
            "saml": {"enabled": False},
            "sign_in": {"second_factor": {"required": False}},
            "sign_up": {
                "captcha_enabled": False,
                "custom_action_required": False,
                "progressive": False,
                "mode": "restricted",
                "legal_consent_enabled": False,
            },
            "restrictions": {},
            "password_settings": {},
            "passkey_settings": {},
            "actions": {"delete_self": False, "create_organization": False},
            "attack_protection": {},
        },
        "organization_settings": {
            "enabled": False,
            "max_allowed_memberships": 0,
            "force_organization_selection": False,
            "actions": {"admin_delete": False},
            "domains": {"enabled": False, "enrollment_modes": [], "default_role": None},
        },
        "commerce_settings": {"billing": {"enabled": False, "has_paid_user_plans": False, "has_paid_org_plans": False}},
        "api_keys_settings": {"enabled": False},
        "protect_config": None,
        "client_debug_mode": False,
    }


def wrapped(response: Any, client: dict[str, Any] | None) -> dict[str, Any]:
    """Clerk's Frontend API answer: the resource, with the client it changed piggybacked."""
    return {"response": response, "client": client}


def session_path_id(value: str) -> str:
    """A ``{session_id}`` path parameter: a session id's shape, else 404 (nothing is read)."""
    if not isinstance(value, str) or len(value) > 64 or not ids.is_id(value, ids.SESSION):
        raise SignInLinksError(ErrorCode.RESOURCE_NOT_FOUND, "No session was found with that id.")
    return value
