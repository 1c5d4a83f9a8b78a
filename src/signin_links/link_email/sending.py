"""Delivery by email: each ``SignInLinkMinted`` event becomes one email through Amazon SES v2
``SendEmail``, and no token ever gets two.

The events reach the function through the email queue (``signin_links.email_queue`` runs these steps
for a batch, paced to the account's SES rate); an event invoked directly takes :meth:`LinkEmails.deliver`.
The steps for one event:

1. **prepare** (:meth:`LinkEmails.prepare`). *Is it ours?* A ``SignInLinkMinted`` detail of source
   ``signin-links`` that is not well formed is a :class:`MalformedEvent` (the queue hands the message
   to its dead-letter queue). A well-formed one whose ``url`` is not
   ``<ACCEPT_BASE_URL>/accept-token?token=<token>``, or whose token does not verify against the
   ticket verification keyring (public keys only: this function cannot mint a link) and name the
   event's ``sign_in_token_id``, is *ignored*: logged, counted
   (``LinkEmailEventsIgnored``), nothing sent, nothing recorded. So whoever can put events on the
   bus can neither have the stack mail a link it did not mint nor block a real link's email.
   *Permanent failures before sending* (no ``metadata.email``, an address SES cannot take, a link
   already expired) are recorded, a "failed" marker keyed by the token id, and published as
   ``SignInLinkEmailFailed`` (the marker notes it was; a retry publishes what an earlier attempt
   could not). Otherwise the templates are rendered (:class:`EmailTemplates`).
2. **claim** (:meth:`LinkEmails.claim`): a conditional put of the "sending" marker (several in one
   transaction, ``EmailMarkers.claim_emails``). If a marker is there, the email is someone else's:
   "sent", "failed" or "unknown" means a duplicate delivery, nothing to do; a fresh "sending" claim
   means another delivery is sending it (look again later); a claim older than
   ``EMAIL_CLAIM_TIMEOUT_SECONDS`` outlived its claimer, and nobody can tell whether SES took the
   message: the marker becomes "unknown" and ``SignInLinkEmailFailed`` says ``outcome_unknown``.
3. **send** (:meth:`LinkEmails.send`): one ``SendEmail`` call (the client never retries by itself).
   SES *rejecting* the message (``MessageRejected``, ``BadRequestException``) is a permanent failure
   (recorded, published). SES *refusing* it for now (throttled, account paused, SES unavailable, no
   connection) means nothing was sent: :class:`Deferred`, and the claim is given back
   (:meth:`LinkEmails.release`) for a later attempt; nothing here ever sleeps on it. A request that
   may have reached SES without an answer (a read timeout, a dropped connection) is never sent
   again: "unknown", published.
4. **settle** (:meth:`LinkEmails.settle`): "sent" with SES's message id.

At most once, not exactly once: the only way to a second email would be a second ``SendEmail``
after SES accepted the first, and a claim is given back only when SES answered that it did not
accept the message. The price is the "unknown" outcome: a delivery that dies between its claim and
SES's answer leaves an email that may or may not have gone, which is published, not resent.

Nothing here logs an address, a URL or a token; events carry the token id, never the link.
"""

from __future__ import annotations

import html
import json
import re
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formataddr
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from signin_links import i18n, ids, texts
from signin_links.branding import Brand
from signin_links.config import ConfigError, Settings
from signin_links.display import display_name, display_text
from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.events import MINTED_DETAIL_TYPE, SOURCE, EventPublisher
from signin_links.keyring import Keyring
from signin_links.models import EMAIL_FAILED, EMAIL_SENDING, EMAIL_SENT, EMAIL_UNKNOWN, EmailMarker
from signin_links.observability import count, logger
from signin_links.store import EmailMarkers
from signin_links.ticket_verification import verify_ticket

FAILED_DETAIL_TYPE = "SignInLinkEmailFailed"

# Why an email was not sent (the ``reason`` of SignInLinkEmailFailed and of the marker).
NO_ADDRESS = "no_address"
INVALID_ADDRESS = "invalid_address"
LINK_EXPIRED = "link_expired"
REJECTED = "rejected"
OUTCOME_UNKNOWN = "outcome_unknown"

# SES v2 SendEmail errors. Throttled: SES's sending rate (or daily quota) was reached: later. Rejecting:
# the message itself (its address, its content) is refused, and would be again. Anything else: not
# sent, not for good.
THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
)
REJECTING_CODES = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
# The link's own fields; then the words of the default templates in the reader's language
# (texts.py) and the brand, so that a team's own templates stay translated and branded too.
LINK_FIELDS = frozenset({"url", "user_id", "sign_in_token_id", "batch_id", "expires_at"})
TEXT_FIELDS = frozenset({"subject", "greeting", "intro", "button", "paste", "expiry", "ignore"})
BRAND_FIELDS = frozenset({"lang", "dir", "align", "app_name", "brand_color", "logo"})
FIELDS = LINK_FIELDS | TEXT_FIELDS | BRAND_FIELDS
MAX_ADDRESS_LENGTH = 254

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SUBJECT_SPACE = re.compile(r"\s+")


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


# --- The event ------------------------------------------------------------------------------------


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


# --- The templates --------------------------------------------------------------------------------


class _Template(string.Template):
    """``$name`` / ``${name}`` for the link's fields; ``${metadata.key}`` for a metadata field, and
    ``${metadata.key|fallback}`` for one that may be missing or empty."""

    idpattern = r"(?a:[_a-z][_a-z0-9]*)"
    braceidpattern = r"(?a:metadata\.[A-Za-z0-9_-]+(?:\|[^{}$\n]*)?|[_a-z][_a-z0-9]*)"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)


def clean(value: str) -> str:
    """No lone surrogates (SES's JSON cannot carry them) and no control characters but tab and newline."""
    value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL.sub("", value)


def metadata_text(value: object) -> str:
    """A metadata value as text: strings as they are, other JSON values as JSON, null as nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, TypeError):  # a number too long for Python's int-to-text limit
        return ""


class _Values(Mapping[str, str]):
    """What a template's placeholders stand for, escaped for one part of the email. A metadata value
    is shown only as :func:`display.display_text` allows (else its fallback); ``markup`` holds
    markup built by this module for the HTML part (the logo)."""

    def __init__(
        self,
        fields: Mapping[str, str],
        metadata: Mapping[str, Any],
        escape: Callable[[str], str],
        markup: Mapping[str, str] | None = None,
    ) -> None:
        self._fields = fields
        self._metadata = metadata
        self._escape = escape
        self._markup = markup or {}

    def __getitem__(self, name: str) -> str:
        if name.lower().startswith("metadata."):
            key, _, fallback = name[len("metadata.") :].partition("|")
            value = display_text(clean(metadata_text(self._metadata.get(key))))
            return self._escape(value or fallback)
        if name.lower() in self._markup:
            return self._markup[name.lower()]
        return self._escape(clean(self._fields[name.lower()]))

    def __iter__(self) -> Any:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def _subject_escape(value: str) -> str:
    return _SUBJECT_SPACE.sub(" ", value)


def _html_escape(value: str) -> str:
    return html.escape(value, quote=True)


@dataclass(frozen=True)
class EmailTemplates:
    """The subject, text and HTML templates (``subject.txt``, ``body.txt``, ``body.html``), with the
    brand and the language an email falls back to (``DefaultLanguage``)."""

    subject: _Template
    text: _Template
    html: _Template
    brand: Brand = field(default_factory=Brand)
    default_language: str = i18n.SOURCE_LANGUAGE

    @classmethod
    def load(
        cls, directory: Path, *, brand: Brand | None = None, default_language: str = i18n.SOURCE_LANGUAGE
    ) -> EmailTemplates:
        """Read and check the three files; :class:`ConfigError` names a missing file or a bad placeholder."""
        loaded: dict[str, _Template] = {}
        for name in TEMPLATE_FILES:
            path = directory / name
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"email template {path} cannot be read ({type(exc).__name__})") from None
            template = _Template(text)
            used = _placeholders(template, path)
            if name == "subject.txt" and "url" in used:
                raise ConfigError(f"email template {path}: the link ($url) must not be in the subject")
            if name != "subject.txt" and "url" not in used:
                raise ConfigError(f"email template {path} does not contain the link ($url)")
            loaded[name] = template
        return cls(
            subject=loaded["subject.txt"],
            text=loaded["body.txt"],
            html=loaded["body.html"],
            brand=brand or Brand(),
            default_language=default_language,
        )

    def render(self, link: MintedLink) -> RenderedEmail:
        """The email of ``link``, in the language of its ``metadata.locale`` (else the default)."""
        lang = i18n.language(i18n.for_locale(link.metadata.get("locale"), self.default_language))
        expires_at = expiry_text(link.expires_at_ms)
        fields = {
            "url": link.url,
            "user_id": link.user_id,
            "sign_in_token_id": link.token_id,
            "batch_id": link.batch_id or "",
            "expires_at": expires_at,
            **self._words(
                lang, display_name(link.metadata.get("first_name")), expires_at, renewed=bool(link.renewal_of)
            ),
            **self._brand_fields(lang),
        }
        subject = self.subject.substitute(_Values(fields, link.metadata, _subject_escape)).strip()
        return RenderedEmail(
            subject=subject,
            text=self.text.substitute(_Values(fields, link.metadata, str)),
            html=self.html.substitute(_Values(fields, link.metadata, _html_escape, {"logo": self._logo()})),
        )

    def _words(self, lang: i18n.Language, name: str, expires_at: str, *, renewed: bool = False) -> dict[str, str]:
        app = self.brand.app_name
        return {
            "subject": lang.text(texts.EMAIL_SUBJECT_WITH_APP, app_name=app) if app else lang.text(texts.EMAIL_SUBJECT),
            "greeting": lang.text(texts.EMAIL_GREETING_NAME, name=name) if name else lang.text(texts.EMAIL_GREETING),
            "intro": self._intro(lang, renewed=renewed),
            "button": lang.text(texts.SIGN_IN),
            "paste": lang.text(texts.EMAIL_PASTE),
            "expiry": lang.text(texts.EMAIL_EXPIRY, expires_at=expires_at),
            "ignore": lang.text(texts.EMAIL_IGNORE),
        }

    def _intro(self, lang: i18n.Language, *, renewed: bool) -> str:
        if renewed:  # the reader asked for it on the page of a dead link
            return lang.text(texts.EMAIL_INTRO_RENEWED)
        app = self.brand.app_name
        return lang.text(texts.EMAIL_INTRO_WITH_APP, app_name=app) if app else lang.text(texts.EMAIL_INTRO)

    def _brand_fields(self, lang: i18n.Language) -> dict[str, str]:
        return {
            "lang": lang.tag,
            "dir": lang.direction,
            "align": "right" if lang.direction == "rtl" else "left",  # for clients that ignore dir
            "app_name": self.brand.app_name,
            "brand_color": self.brand.color,
            "logo": "",  # the HTML part's is markup (_logo); the text parts show none
        }

    def _logo(self) -> str:
        """The logo for the HTML part (an image with the name as its alt text), or the name, or nothing."""
        brand = self.brand
        if brand.logo_url:
            return (
                f'<p style="margin:0 0 24px"><img src="{html.escape(brand.logo_url)}" '
                f'alt="{html.escape(brand.app_name)}" height="40" style="display:block;height:40px;border:0"></p>'
            )
        if brand.app_name:
            return f'<p style="margin:0 0 24px;font-weight:600">{html.escape(brand.app_name)}</p>'
        return ""


def _placeholders(template: _Template, path: Path) -> set[str]:
    used: set[str] = set()
    for match in template.pattern.finditer(template.template):
        if match.group("invalid") is not None:
            line = template.template[: match.start()].count("\n") + 1
            raise ConfigError(f"email template {path}, line {line}: a lone $ (write $$ for a dollar sign)")
        name = match.group("named") or match.group("braced")
        if name is None:
            continue  # $$
        if not name.lower().startswith("metadata.") and name.lower() not in FIELDS:
            raise ConfigError(f"email template {path}: unknown placeholder ${{{name}}} (known: {sorted(FIELDS)})")
        used.add(name.lower())
    return used


def expiry_text(expires_at_ms: int) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_at_ms / 1000))
    except (OverflowError, OSError, ValueError):
        return ""


# --- Sending --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What happened to one event (the function's result; never an address or a link)."""

    outcome: str  # sent | failed | unknown | duplicate | in_progress | ignored
    sign_in_token_id: str | None = None
    message_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class Outbound:
    """An email ready to send: the link checked, the address taken, the templates rendered, and who
    claims it (the queue message's id, or the Lambda request id of an event invoked directly)."""

    link: MintedLink
    address: str = field(repr=False)
    email: RenderedEmail = field(repr=False)
    claimer: str
    claimed_at: int = 0  # Unix ms, once claimed


class Deferred(Exception):
    """SES did not take the email for now (``throttled``: its sending rate; else paused, unavailable,
    no connection): nothing was sent, and the claim is the caller's to give back. ``str()`` is the
    SES error code or the exception's type, safe to log."""

    def __init__(self, error: str, *, throttled: bool) -> None:
        super().__init__(error)
        self.error = error
        self.throttled = throttled


class LinkEmails:
    """The delivery-by-email use case (see the module's docstring): :meth:`prepare`, :meth:`claim`,
    :meth:`send` and :meth:`settle` are its steps (the email queue runs them for a batch,
    ``signin_links.email_queue``); :meth:`deliver` runs them all for one event."""

    def __init__(
        self,
        settings: Settings,
        *,
        markers: EmailMarkers,
        ses: Any,
        publisher: EventPublisher,
        templates: EmailTemplates,
        ticket_keyring: Callable[[], Keyring],
        published_base_url: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.email_sender:
            raise ConfigError("EMAIL_SENDER (template parameter EmailSender) must be set to send link emails")
        try:
            sender = recipient({"email": settings.email_sender})
        except PermanentFailure:
            raise ConfigError(f"EMAIL_SENDER: {settings.email_sender!r} is not an email address") from None
        if not settings.accept_base_url and published_base_url is None:
            raise ConfigError(
                "no accept base URL to check links against: set ACCEPT_BASE_URL (template parameter AcceptBaseUrl) "
                "or ACCEPT_BASE_URL_PARAMETER (the stack's AcceptBaseUrlParameter)"
            )
        self.settings = settings
        self.markers = markers
        self.ses = ses
        self.publisher = publisher
        self.templates = templates
        self.ticket_keyring = ticket_keyring  # the verification keyring: public keys only
        self.published_base_url = published_base_url
        self.clock = clock
        name = clean(settings.email_sender_name or settings.brand.app_name).replace("\n", " ").strip()
        self.from_address = formataddr((name, sender)) if name else sender

    def deliver(self, event: object, request_id: str) -> Delivery:
        """Send the email of one ``SignInLinkMinted`` event invoked directly (not through the queue),
        at most once per token. Raises ``service_unavailable`` when nothing was sent and a retry may
        succeed (SES refused it for now, or another invocation holds a fresh claim on it)."""
        try:
            prepared = self.prepare(event, request_id)
        except MalformedEvent as exc:
            return self._ignore(exc)
        if isinstance(prepared, Delivery):
            return self._finished(prepared)
        (claimed,) = self.claim([prepared])
        if isinstance(claimed, Delivery):
            return self._finished(claimed)
        try:
            delivery = self.send(claimed)
        except Deferred:
            self.release([claimed])
            raise unavailable("Amazon SES") from None
        if delivery.outcome == "sent":
            self.settle([(claimed, delivery.message_id or "")])
        return delivery

    @staticmethod
    def _finished(delivery: Delivery) -> Delivery:
        if delivery.outcome == "in_progress":  # look again later: the claimer may have died
            raise unavailable("the email's claim")
        return delivery

    def base_url(self) -> str:
        """Where this stack's links point: the configured URL, else the one the stack publishes (as
        mint_link reads it). ``service_unavailable`` if that cannot be read (Lambda retries)."""
        url = self.settings.accept_base_url
        if not url and self.published_base_url is not None:
            url = self.published_base_url().rstrip("/")
        if not url:
            raise ConfigError("the stack publishes no accept base URL (ACCEPT_BASE_URL_PARAMETER is empty)")
        return url

    # -- the steps --------------------------------------------------------------------------------

    def prepare(self, event: object, claimer: str) -> Outbound | Delivery:
        """Check the event and get its email ready; a :class:`Delivery` when there is nothing to
        send: "ignored" (not a link of this stack), "failed" (recorded and published: no address,
        an address SES cannot take, an expired link), or what stands when a marker is there.
        :class:`MalformedEvent` for an event that is not a well-formed ``SignInLinkMinted``;
        ``service_unavailable`` when the keyring, the base URL or EventBridge cannot be reached."""
        try:
            link = self._verified(parse_minted(event, self.base_url()))
        except MalformedEvent:
            raise
        except IgnoredEvent as exc:
            return self._ignore(exc)
        try:
            if link.expires_at_ms <= self._now_ms() - self.settings.ticket_leeway_seconds * 1000:
                raise PermanentFailure(LINK_EXPIRED)
            if link.renewal_of:
                link = self._on_record(link)
            address = recipient(link.metadata)
        except PermanentFailure as failure:
            return self._fail_before_sending(link, claimer, failure)
        # Rendered before the claim: nothing may fail between claiming and sending.
        return Outbound(link, address, self.templates.render(link), claimer)

    def claim(self, outbound: Sequence[Outbound]) -> list[Outbound | Delivery]:
        """Claim each email (distinct tokens): the claimed :class:`Outbound` where this claimer now
        holds it, else what stands ("duplicate", "in_progress", "unknown" or "failed"; see
        :meth:`_held`). Several go in one transaction; if it is cancelled (one is held), one at a time."""
        now_ms = self._now_ms()
        claimed = [replace(item, claimed_at=now_ms) for item in outbound]
        if len(outbound) > 1 and self.markers.claim_emails(
            [(item.link.token_id, item.claimer, self._ttl(item.link)) for item in outbound], now_ms
        ):
            return list(claimed)
        results: list[Outbound | Delivery] = []
        for item in claimed:
            held = self.markers.claim_email(item.link.token_id, item.claimer, now_ms, self._ttl(item.link))
            results.append(item if held is None else self._held(item.link, held, item.claimer))
        return results

    def send(self, outbound: Outbound) -> Delivery:
        """One ``SendEmail`` call for a claimed email (never repeated: the client does not retry).
        "sent" with SES's message id (:meth:`settle` records it); "failed" when SES rejects the
        message and "unknown" when it may have reached SES without an answer (both recorded and
        published). :class:`Deferred` when SES did not take it: the claim is still held."""
        link = outbound.link
        try:
            response = self.ses.send_email(**self._request(outbound))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REJECTING_CODES:
                return self._settle_failed(outbound, PermanentFailure(REJECTED, code))
            throttled = code in THROTTLING_CODES
            count("LinkEmailsThrottled" if throttled else "LinkEmailsDeferred")
            logger.warning(
                "SES did not take the link email for now",
                extra={"sign_in_token_id": link.token_id, "ses_error": code or "ClientError"},
            )
            raise Deferred(code or type(exc).__name__, throttled=throttled) from None
        except HTTPClientError as exc:  # the request may have reached SES: never send it again
            return self._settle_unknown(outbound, type(exc).__name__)
        except BotoCoreError as exc:  # no connection: nothing was sent
            count("LinkEmailsDeferred")
            logger.warning("SES unreachable", extra={"sign_in_token_id": link.token_id, "error": type(exc).__name__})
            raise Deferred(type(exc).__name__, throttled=False) from None
        message_id = str(response.get("MessageId", ""))
        logger.info("link email sent", extra={"sign_in_token_id": link.token_id, "message_id": message_id})
        count("LinkEmailsSent")
        return Delivery("sent", link.token_id, message_id=message_id)

    def settle(self, sent: Sequence[tuple[Outbound, str]]) -> None:
        """Record "sent" (with SES's message id) on the markers of claimed emails SES took, all in
        one write (``EmailMarkers.record_sent``). Never raises: the emails went, and failing now
        would only have them reported "unknown" later; a marker left "sending" is logged."""
        if not sent:
            return
        now_ms = self._now_ms()
        markers = [
            (
                EmailMarker(
                    item.link.token_id,
                    EMAIL_SENT,
                    item.claimer,
                    item.claimed_at,
                    now_ms,
                    message_id=message_id,
                    address=item.address,
                    language=i18n.for_locale(item.link.metadata.get("locale"), self.templates.default_language),
                    name=display_name(item.link.metadata.get("first_name")),
                ),
                self._ttl(item.link),
            )
            for item, message_id in sent
        ]
        try:
            self.markers.record_sent(markers)
        except SignInLinksError:
            logger.warning(
                "emails sent, but their markers could not be set to sent",
                extra={"sign_in_token_ids": [item.link.token_id for item, _ in sent]},
            )

    def release(self, outbound: Sequence[Outbound]) -> None:
        """Give back claims on emails SES did not take (or that were never tried): a later delivery
        may claim them again. ``service_unavailable`` if DynamoDB cannot be reached (the claims then
        time out, and their emails are reported "unknown", never sent twice)."""
        for item in outbound:
            self.markers.release_email(item.link.token_id, item.claimer)

    # -- inside the steps -------------------------------------------------------------------------

    @staticmethod
    def _ignore(exc: IgnoredEvent) -> Delivery:
        logger.warning("event ignored: not a link this stack minted", extra={"reason": str(exc)})
        count("LinkEmailEventsIgnored")
        return Delivery("ignored", reason=str(exc))

    def _verified(self, link: MintedLink) -> MintedLink:
        """``link`` once its token verifies and names it, with the token's own expiry (an expired
        token verifies here; :meth:`prepare` reports it)."""
        try:
            # now=0: expiry is judged by prepare() (a permanent failure, not a foreign event), so only
            # the signature, the kid and the claims decide here.
            ticket = verify_ticket(link.token, self.ticket_keyring(), now=0, leeway=0)
        except SignInLinksError as exc:
            if exc.code is ErrorCode.TICKET_INVALID:
                raise IgnoredEvent("the link's token does not verify") from None
            raise  # the keyring could not be read: the message is kept for later
        if ticket.sid != link.token_id:
            raise IgnoredEvent("the link's token is not the event's sign_in_token_id")
        return replace(link, expires_at_ms=ticket.expires_at * 1000)

    def _on_record(self, link: MintedLink) -> MintedLink:
        """A renewed link addressed as its dead link's email was: the address, language and name on
        that email's marker (never an address from an event); ``no_address`` if there is none."""
        assert link.renewal_of is not None
        sent = self.markers.sent_to(link.renewal_of)
        if sent is None:
            raise PermanentFailure(NO_ADDRESS)
        return replace(link, metadata={"email": sent.address, "locale": sent.language, "first_name": sent.name})

    def _fail_before_sending(self, link: MintedLink, claimer: str, failure: PermanentFailure) -> Delivery:
        held = self.markers.record_email_failure(
            link.token_id, claimer, failure.reason, self._now_ms(), self._ttl(link)
        )
        if held is not None:
            return self._held(link, held, claimer)
        self._announce(link, failure.reason, failure.error_code)
        return Delivery("failed", link.token_id, reason=failure.reason)

    def _held(self, link: MintedLink, marker: EmailMarker, claimer: str) -> Delivery:
        """The token's email is already someone's: say what stands, and finish what is unfinished.

        A "sending" marker is a claim: fresh ones are "in_progress" (look again later), and one older
        than ``EMAIL_CLAIM_TIMEOUT_SECONDS`` (longer than any invocation lives) outlived its claimer,
        which may or may not have sent the email: it becomes "unknown", announced, never resent."""
        if marker.status in (EMAIL_FAILED, EMAIL_UNKNOWN) and not marker.announced:
            self._announce(link, marker.reason or OUTCOME_UNKNOWN, None)  # an earlier run could not publish it
            return Delivery(
                "failed" if marker.status == EMAIL_FAILED else "unknown", link.token_id, reason=marker.reason
            )
        if marker.status != EMAIL_SENDING:
            logger.info("email already handled", extra={"sign_in_token_id": link.token_id, "status": marker.status})
            count("LinkEmailDuplicates")
            return Delivery("duplicate", link.token_id, reason=marker.status)
        if self._now_ms() - marker.claimed_at <= self.settings.email_claim_timeout_seconds * 1000:
            logger.info("email claimed by another delivery", extra={"sign_in_token_id": link.token_id})
            return Delivery("in_progress", link.token_id)
        if not self.markers.take_over_email(link.token_id, marker.request_id, claimer, self._now_ms()):
            return Delivery("duplicate", link.token_id, reason="taken over by another delivery")
        logger.warning(
            "an earlier delivery died while sending: whether the email went is unknown, so it is not resent",
            extra={"sign_in_token_id": link.token_id},
        )
        self._announce(link, OUTCOME_UNKNOWN, None)
        return Delivery("unknown", link.token_id, reason=OUTCOME_UNKNOWN)

    def _request(self, outbound: Outbound) -> dict[str, Any]:
        email = outbound.email
        request: dict[str, Any] = {
            "FromEmailAddress": self.from_address,
            "Destination": {"ToAddresses": [outbound.address]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                }
            },
            # Bounce and complaint events of the configuration set carry it (mail.tags).
            "EmailTags": [{"Name": "sign_in_token_id", "Value": outbound.link.token_id}],
        }
        if self.settings.email_configuration_set:
            request["ConfigurationSetName"] = self.settings.email_configuration_set
        return request

    def _settle_failed(self, outbound: Outbound, failure: PermanentFailure) -> Delivery:
        link = outbound.link
        self.markers.settle_email(link.token_id, outbound.claimer, EMAIL_FAILED, self._now_ms(), reason=failure.reason)
        logger.warning(
            "SES rejected the link email",
            extra={"sign_in_token_id": link.token_id, "ses_error": failure.error_code},
        )
        self._announce(link, failure.reason, failure.error_code)
        return Delivery("failed", link.token_id, reason=failure.reason)

    def _settle_unknown(self, outbound: Outbound, error: str) -> Delivery:
        link = outbound.link
        self.markers.settle_email(
            link.token_id, outbound.claimer, EMAIL_UNKNOWN, self._now_ms(), reason=OUTCOME_UNKNOWN
        )
        logger.warning(
            "SES did not answer: whether the email went is unknown, so it is not resent",
            extra={"sign_in_token_id": link.token_id, "error": error},
        )
        self._announce(link, OUTCOME_UNKNOWN, error)
        return Delivery("unknown", link.token_id, reason=OUTCOME_UNKNOWN)

    def _announce(self, link: MintedLink, reason: str, error_code: str | None) -> None:
        """Publish ``SignInLinkEmailFailed`` (ids and the reason; never the address or the link)."""
        detail = {
            "sign_in_token_id": link.token_id,
            "user_id": link.user_id,
            "batch_id": link.batch_id,
            "reason": reason,
            "error_code": error_code,
        }
        count("LinkEmailsFailed")
        logger.warning("link email not sent", extra={"sign_in_token_id": link.token_id, "reason": reason})
        if not self.publisher.publish_one(FAILED_DETAIL_TYPE, detail):
            raise unavailable("EventBridge")  # the marker stays unannounced: the retry publishes it
        self.markers.mark_email_announced(link.token_id)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _ttl(self, link: MintedLink) -> int:
        return max(int(self.clock()), link.expires_at_ms // 1000) + self.settings.token_retention_seconds
