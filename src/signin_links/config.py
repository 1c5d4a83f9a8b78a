"""Every setting of signin-links, parsed once from the environment.

No other module reads ``os.environ``. A missing or malformed variable fails at start with a
message that names it (:class:`ConfigError`): every variable is parsed (with its default when
unset), and each function names what it needs set beyond the defaults (``NEEDS`` in its
``app.py``), which :meth:`Settings.require` checks during the function's init.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

from signin_links import branding, i18n
from signin_links.redirects import UrlError, parse

THIRTY_DAYS = 30 * 24 * 3600
MIN_INACTIVITY_SECONDS = 300
MAX_REFRESH_REUSE_GRACE_SECONDS = 60
MAX_SESSION_TOKEN_CAP_SECONDS = 3600  # MaxSessionTokenSeconds' MaxValue: no API token outlives a revocation by more
# A new key signs at least this long after every warm function re-read its keyring (the template's
# KeyActivationMarginSeconds has the same MinValue; rotation.check_timing enforces it too).
MIN_ACTIVATION_MARGIN_SECONDS = 60


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def _origin(url: str, var: str) -> str:
    """The canonical ASCII origin of ``url`` (see ``redirects.py``): what redirects are compared with."""
    try:
        return parse(url).origin
    except UrlError as exc:
        raise ConfigError(f"{var}: {url!r} is not an http(s) origin ({exc.reason})") from None


def _base_url(url: str, var: str) -> str:
    """An http(s) URL that links are built on: canonical ASCII, no query or fragment, no final "/"."""
    try:
        parts = parse(url)
    except UrlError as exc:
        raise ConfigError(f"{var}: {url!r} is not an http(s) URL ({exc.reason})") from None
    if "?" in parts.rest or "#" in parts.rest or "?" in url or "#" in url:
        raise ConfigError(f"{var}: {url!r} must not have a query or a fragment")
    return parts.url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    table_name: str
    api_keys_secret_id: str = ""
    ticket_signing_keyring_secret_id: str = ""  # Ed25519 private keys: the mint and the rotation only
    ticket_verification_keyring_secret_id: str = ""  # their public halves: accept, email, rotation
    # The retired HS256 keyring and when its tokens stop being honoured (an upgrade's migration
    # window; ticket_verification.py): set for the accept only, and only during the window.
    legacy_ticket_keyring_secret_id: str = ""
    legacy_hs256_tickets_until: int = 0  # Unix time; 0: no HS256 token is accepted
    edge_secret_id: str = ""  # EdgeProtection: the header CloudFront adds (edge.py); empty: no edge
    session_keyring_secret_id: str = ""
    event_bus_name: str = ""
    accept_base_url: str = ""
    accept_base_url_parameter: str = ""  # SSM parameter holding the stack's own URL (when accept_base_url is empty)
    # Links point at the stack's CloudFront distribution (EdgeProtection, no custom domain or
    # AcceptBaseUrl): only then does an HTTP mint need the published URL, the request's host being
    # the API's own. Else the parameter is read by batches only (no request host).
    links_behind_cloudfront: bool = False
    allowed_redirect_origins: tuple[str, ...] = ()
    default_redirect_url: str = ""
    default_expires_in_seconds: int = THIRTY_DAYS
    max_expires_in_seconds: int = THIRTY_DAYS
    secrets_max_age_seconds: int = 300
    key_activation_delay_seconds: int = 600
    ticket_leeway_seconds: int = 30
    session_lifetime_seconds: int = 7 * 24 * 3600  # a session's life (expire_at), from its sign-in
    session_token_lifetime_seconds: int = 60  # one session JWT (__session), as Clerk's
    session_inactivity_seconds: int = 0  # abandon_at = last activity + this; 0: off (abandon_at = expire_at)
    # How long the previous refresh token still refreshes after a rotation (two tabs racing, a lost answer).
    refresh_reuse_grace_seconds: int = 10
    max_session_token_seconds: int = 600  # POST /v1/sessions/{id}/tokens: the longest token it signs
    session_issuer: str = ""
    session_cookie_domain: str = ""
    accept_auto_submit: bool = True
    accept_confirmation: str = "never"  # never | cross-site | always (AcceptConfirmation)
    token_retention_seconds: int = 7 * 24 * 3600
    batch_event_source: str = "signin-links.batches"
    results_bucket: str = ""
    manifest_bucket: str = ""  # empty: any bucket the function may read (IAM decides)
    batch_max_users: int = 10_000  # per invocation; beyond it, the Step Functions path
    batch_max_manifest_bytes: int = 32 * 1024 * 1024
    batch_concurrency: int = 8  # threads for BatchWriteItem / PutEvents
    batch_idempotency_seconds: int = 3600
    max_body_bytes: int = 16 * 1024
    # Delivery by email (link_email/; template parameters EmailSender, ...): off without a sender.
    email_sender: str = ""  # the From address, on a verified SES identity
    email_sender_name: str = ""
    email_configuration_set: str = ""
    email_template_dir: str = ""  # empty: the function's own templates/
    email_claim_timeout_seconds: int = 120  # a "sending" claim older than this outlived its invocation
    email_queue_url: str = ""  # the email queue (returned messages get their visibility set there)
    email_maximum_concurrency: int = 2  # the queue's MaximumConcurrency: how many environments share the SES rate
    email_send_rate: int = 0  # emails/s the stack may send; 0: the account's SES MaxSendRate
    # The pages and emails people see (branding.py, i18n.py; template parameters AppName, ...).
    brand: branding.Brand = field(default_factory=branding.Brand)
    default_language: str = i18n.SOURCE_LANGUAGE  # when neither Accept-Language nor metadata.locale names one
    page_template_dir: str = ""  # empty: the accept function's own templates/
    link_renewal: str = "off"  # email | application | off (renewal.py; template parameter LinkRenewal)

    def require(self, *variables: str | tuple[str, ...]) -> Settings:
        """These settings, once each of ``variables`` is set: what a function needs beyond the
        defaults, checked in its init (a cold start) rather than by the request or batch that first
        reads it. A variable is named as in the environment (``TABLE_NAME``; the field
        is its lower case); a tuple is a choice, one of which must be set. :class:`ConfigError` names
        what is missing."""
        for wanted in variables:
            choice = (wanted,) if isinstance(wanted, str) else wanted
            if not any(getattr(self, name.lower()) for name in choice):
                raise ConfigError(f"{' or '.join(choice)} is required by this function but not set")
        return self

    @property
    def accept_origin(self) -> str:
        """The origin of ``accept_base_url`` (its pages' own origin), or "" when links use the request's host."""
        return parse(self.accept_base_url).origin if self.accept_base_url else ""

    def ttl_for(self, expires_at: int) -> int:
        """DynamoDB TTL (housekeeping only) for a token that expires at ``expires_at``."""
        return expires_at + self.token_retention_seconds

    def session_ttl_for(self, expire_at_ms: int) -> int:
        """DynamoDB TTL (housekeeping only) of a session record: the retention after its end."""
        return expire_at_ms // 1000 + self.token_retention_seconds

    def redirect_target(self, url: str) -> str | None:
        """The URL a redirect to ``url`` is checked, signed and sent as (ASCII, see ``redirects.py``)
        when its origin is allowed, else None; :class:`UrlError` if ``url`` is malformed."""
        parts = parse(url)
        return parts.url if parts.origin in self.allowed_redirect_origins else None

    def redirect_allowed(self, url: str) -> bool:
        """Whether ``url`` is a well-formed URL on an allowed origin (never raises)."""
        try:
            return self.redirect_target(url) is not None
        except UrlError:
            return False


MAX_SETTING = 10**10  # seconds (over 300 years), bytes or counts: more is a typo


def _int(env: Mapping[str, str], var: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    # ASCII digits only (int() would also take fullwidth and Arabic-Indic digits and "1_000"), and bounded: a larger
    # number would fail later, as a 5xx, where it reaches DynamoDB (at most 38 digits) or a JWT.
    if not raw.isascii() or not re.fullmatch(r"-?[0-9]{1,12}", raw):
        raise ConfigError(f"{var}: {raw[:40]!r} is not an integer of at most 12 digits")
    value = int(raw)
    if value > MAX_SETTING:
        raise ConfigError(f"{var}: {value} is above the maximum of {MAX_SETTING}")
    if value < minimum:
        raise ConfigError(f"{var}: {value} is below the minimum of {minimum}")
    return value


def _bool(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}: {raw!r} is not a boolean (true/false)")


def _date(env: Mapping[str, str], var: str) -> int:
    """A day as ``YYYY-MM-DD`` (UTC): the Unix time it starts at; 0 when unset."""
    raw = env.get(var, "").strip()
    if not raw:
        return 0
    if not raw.isascii() or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise ConfigError(f"{var}: {raw[:40]!r} is not a date (YYYY-MM-DD)")
    try:
        day = datetime.date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{var}: {raw!r} is not a date (YYYY-MM-DD)") from None
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp())


ACCEPT_CONFIRMATIONS = ("never", "cross-site", "always")


def _required(env: Mapping[str, str], var: str) -> str:
    value = env.get(var, "").strip()
    if not value:
        raise ConfigError(f"{var} is required but not set")
    return value


def _activation_delay(env: Mapping[str, str], secrets_max_age: int) -> int:
    """The deployed stack gives a margin (KEY_ACTIVATION_MARGIN_SECONDS, >= 60) over the secrets'
    max age, so a delay too short cannot be configured; KEY_ACTIVATION_DELAY_SECONDS (tests, local
    runs) gives the delay itself, checked by the rotation."""
    margin = env.get("KEY_ACTIVATION_MARGIN_SECONDS", "").strip()
    if margin and env.get("KEY_ACTIVATION_DELAY_SECONDS", "").strip():
        raise ConfigError("KEY_ACTIVATION_MARGIN_SECONDS and KEY_ACTIVATION_DELAY_SECONDS: set one, not both")
    if margin:
        minimum = MIN_ACTIVATION_MARGIN_SECONDS
        return secrets_max_age + _int(env, "KEY_ACTIVATION_MARGIN_SECONDS", minimum, minimum=minimum)
    return _int(env, "KEY_ACTIVATION_DELAY_SECONDS", 600)


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from a mapping shaped like ``os.environ``."""
    accept_base_url = env.get("ACCEPT_BASE_URL", "").strip().rstrip("/")
    if accept_base_url:
        accept_base_url = _base_url(accept_base_url, "ACCEPT_BASE_URL")
    origins = tuple(
        _origin(item.strip(), "ALLOWED_REDIRECT_ORIGINS")
        for item in env.get("ALLOWED_REDIRECT_ORIGINS", "").split(",")
        if item.strip()
    )
    max_expires = _int(env, "MAX_EXPIRES_IN_SECONDS", THIRTY_DAYS, minimum=1)
    secrets_max_age = _int(env, "SECRETS_MAX_AGE_SECONDS", 300, minimum=1)
    settings = Settings(
        table_name=_required(env, "TABLE_NAME"),
        api_keys_secret_id=env.get("API_KEYS_SECRET_ID", "").strip(),
        ticket_signing_keyring_secret_id=env.get("TICKET_SIGNING_KEYRING_SECRET_ID", "").strip(),
        ticket_verification_keyring_secret_id=env.get("TICKET_VERIFICATION_KEYRING_SECRET_ID", "").strip(),
        legacy_ticket_keyring_secret_id=env.get("LEGACY_TICKET_KEYRING_SECRET_ID", "").strip(),
        legacy_hs256_tickets_until=_date(env, "LEGACY_HS256_TICKETS_UNTIL"),
        edge_secret_id=env.get("EDGE_SECRET_ID", "").strip(),
        session_keyring_secret_id=env.get("SESSION_KEYRING_SECRET_ID", "").strip(),
        event_bus_name=env.get("EVENT_BUS_NAME", "").strip(),
        accept_base_url=accept_base_url,
        accept_base_url_parameter=env.get("ACCEPT_BASE_URL_PARAMETER", "").strip(),
        links_behind_cloudfront=_bool(env, "LINKS_BEHIND_CLOUDFRONT", False),
        allowed_redirect_origins=origins,
        default_redirect_url=_default_redirect(env, origins),
        # Clerk's default of 30 days, capped by a smaller configured maximum.
        default_expires_in_seconds=_int(env, "DEFAULT_EXPIRES_IN_SECONDS", min(THIRTY_DAYS, max_expires), minimum=1),
        max_expires_in_seconds=max_expires,
        secrets_max_age_seconds=secrets_max_age,
        key_activation_delay_seconds=_activation_delay(env, secrets_max_age),
        ticket_leeway_seconds=_int(env, "TICKET_LEEWAY_SECONDS", 30),
        session_lifetime_seconds=_int(env, "SESSION_LIFETIME_SECONDS", 7 * 24 * 3600, minimum=60),
        session_token_lifetime_seconds=_int(env, "SESSION_TOKEN_LIFETIME_SECONDS", 60, minimum=5),
        session_inactivity_seconds=_int(env, "SESSION_INACTIVITY_SECONDS", 0),
        refresh_reuse_grace_seconds=_int(env, "REFRESH_REUSE_GRACE_SECONDS", 10),
        max_session_token_seconds=_int(env, "MAX_SESSION_TOKEN_SECONDS", 600, minimum=5),
        session_issuer=env.get("SESSION_ISSUER", "").strip().rstrip("/"),
        session_cookie_domain=env.get("SESSION_COOKIE_DOMAIN", "").strip(),
        accept_auto_submit=_bool(env, "ACCEPT_AUTO_SUBMIT", True),
        accept_confirmation=_choice(env, "ACCEPT_CONFIRMATION", ACCEPT_CONFIRMATIONS, "never"),
        token_retention_seconds=_int(env, "TOKEN_RETENTION_SECONDS", 7 * 24 * 3600),
        batch_event_source=env.get("BATCH_EVENT_SOURCE", "").strip() or "signin-links.batches",
        results_bucket=env.get("RESULTS_BUCKET", "").strip(),
        manifest_bucket=env.get("MANIFEST_BUCKET", "").strip(),
        batch_max_users=_int(env, "BATCH_MAX_USERS", 10_000, minimum=1),
        batch_max_manifest_bytes=_int(env, "BATCH_MAX_MANIFEST_BYTES", 32 * 1024 * 1024, minimum=1),
        batch_concurrency=_int(env, "BATCH_CONCURRENCY", 8, minimum=1),
        batch_idempotency_seconds=_int(env, "BATCH_IDEMPOTENCY_SECONDS", 3600, minimum=60),
        email_sender=env.get("EMAIL_SENDER", "").strip(),
        email_sender_name=env.get("EMAIL_SENDER_NAME", "").strip(),
        email_configuration_set=env.get("EMAIL_CONFIGURATION_SET", "").strip(),
        email_template_dir=env.get("EMAIL_TEMPLATE_DIR", "").strip(),
        email_claim_timeout_seconds=_int(env, "EMAIL_CLAIM_TIMEOUT_SECONDS", 120, minimum=1),
        email_queue_url=env.get("EMAIL_QUEUE_URL", "").strip(),
        email_maximum_concurrency=_int(env, "EMAIL_MAXIMUM_CONCURRENCY", 2, minimum=1),
        email_send_rate=_int(env, "EMAIL_SEND_RATE", 0),
        brand=_brand(env),
        default_language=_language(env, "DEFAULT_LANGUAGE"),
        page_template_dir=env.get("PAGE_TEMPLATE_DIR", "").strip(),
        link_renewal=_choice(env, "LINK_RENEWAL", ("email", "application", "off"), "off"),
    )
    if bool(settings.legacy_ticket_keyring_secret_id) != bool(settings.legacy_hs256_tickets_until):
        raise ConfigError("LEGACY_TICKET_KEYRING_SECRET_ID and LEGACY_HS256_TICKETS_UNTIL: set both or neither")
    if settings.default_expires_in_seconds > settings.max_expires_in_seconds:
        raise ConfigError("DEFAULT_EXPIRES_IN_SECONDS must not exceed MAX_EXPIRES_IN_SECONDS")
    if settings.session_token_lifetime_seconds > settings.session_lifetime_seconds:
        raise ConfigError("SESSION_TOKEN_LIFETIME_SECONDS must not exceed SESSION_LIFETIME_SECONDS")
    if settings.max_session_token_seconds > MAX_SESSION_TOKEN_CAP_SECONDS:
        raise ConfigError(f"MAX_SESSION_TOKEN_SECONDS must be at most {MAX_SESSION_TOKEN_CAP_SECONDS}")
    if settings.refresh_reuse_grace_seconds > MAX_REFRESH_REUSE_GRACE_SECONDS:
        # Longer, and a copied refresh token would keep working beside the real one unnoticed.
        raise ConfigError(f"REFRESH_REUSE_GRACE_SECONDS must be at most {MAX_REFRESH_REUSE_GRACE_SECONDS}")
    if 0 < settings.session_inactivity_seconds < MIN_INACTIVITY_SECONDS:
        # last_active_at is written at most once a minute: a shorter window would abandon sessions in use.
        raise ConfigError(f"SESSION_INACTIVITY_SECONDS must be 0 (off) or at least {MIN_INACTIVITY_SECONDS}")
    return settings


def _brand(env: Mapping[str, str]) -> branding.Brand:
    """APP_NAME, BRAND_COLOR, LOGO_URL, SUPPORT_URL and SUPPORT_EMAIL, each optional and checked."""

    def checked(var: str, check: Callable[[str], str], default: str = "") -> str:
        raw = env.get(var, "").strip()
        if not raw:
            return default
        try:
            return check(raw)
        except branding.BrandError as exc:
            raise ConfigError(f"{var}: {exc}") from None

    return branding.Brand(
        app_name=checked("APP_NAME", branding.app_name),
        color=checked("BRAND_COLOR", branding.color, branding.DEFAULT_COLOR),
        logo_url=checked("LOGO_URL", branding.https_url),
        support_url=checked("SUPPORT_URL", branding.https_url),
        support_email=checked("SUPPORT_EMAIL", branding.email_address),
    )


def _choice(env: Mapping[str, str], var: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    if raw not in allowed:
        raise ConfigError(f"{var}: {raw[:40]!r} is not one of {', '.join(allowed)}")
    return raw


def _language(env: Mapping[str, str], var: str) -> str:
    raw = env.get(var, "").strip()
    if not raw:
        return i18n.SOURCE_LANGUAGE
    tag = next((tag for tag in i18n.LANGUAGES if tag.lower() == raw.lower()), None)
    if tag is None:
        raise ConfigError(f"{var}: {raw[:40]!r} is not one of the shipped languages {', '.join(i18n.LANGUAGES)}")
    return tag


def _default_redirect(env: Mapping[str, str], origins: tuple[str, ...]) -> str:
    raw = env.get("DEFAULT_REDIRECT_URL", "").strip()
    if not raw:
        return ""
    try:
        parts = parse(raw)
    except UrlError as exc:
        raise ConfigError(f"DEFAULT_REDIRECT_URL: {raw!r} is not an http(s) URL ({exc.reason})") from None
    if parts.origin not in origins:
        raise ConfigError("DEFAULT_REDIRECT_URL must be on one of ALLOWED_REDIRECT_ORIGINS")
    return parts.url


@cache
def get_settings() -> Settings:
    """The settings of this execution environment, parsed on first use."""
    return parse_settings(os.environ)
