"""The email of a minted link: the subject, text and HTML templates (:class:`EmailTemplates`),
checked when loaded, rendered in the reader's language and the brand."""

from __future__ import annotations

import html
import json
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signin_links import i18n, texts
from signin_links.branding import Brand
from signin_links.config import ConfigError
from signin_links.display import display_name, display_text
from signin_links.link_email.minted import MintedLink

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")
# The link's own fields; then the words of the default templates in the reader's language
# (texts.py) and the brand, so that a team's own templates stay translated and branded too.
LINK_FIELDS = frozenset({"url", "user_id", "sign_in_token_id", "batch_id", "expires_at"})
TEXT_FIELDS = frozenset({"subject", "greeting", "intro", "button", "paste", "expiry", "ignore"})
BRAND_FIELDS = frozenset({"lang", "dir", "align", "app_name", "brand_color", "logo"})
FIELDS = LINK_FIELDS | TEXT_FIELDS | BRAND_FIELDS
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SUBJECT_SPACE = re.compile(r"\s+")


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
