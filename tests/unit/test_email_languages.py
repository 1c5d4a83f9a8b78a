"""The link email in the reader's language (metadata.locale, then DefaultLanguage), with the brand,
a plain-text part in every language, and metadata shown only as plain short text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from signin_links import texts
from signin_links.branding import Brand
from signin_links.config import Settings
from signin_links.i18n import LANGUAGES, language
from signin_links.link_email import EmailTemplates, LinkEmails, MintedLink

TEMPLATES = Path(__file__).resolve().parents[2] / "functions" / "send_link_email" / "templates"
URL = "https://links.example.com/accept-token?token=aaa.bbb.ccc"
EXPIRES_MS = 1_717_837_200_000  # 2024-06-08 09:00 UTC
BRAND = Brand(app_name="Acme", color="#0b5fff", logo_url="https://cdn.example.com/acme.png")


def link(metadata: dict[str, Any]) -> MintedLink:
    return MintedLink("sit_0000000000000000000001", "user_1", URL, "aaa.bbb.ccc", EXPIRES_MS, "wave-1", metadata)


def visible_text(html: str) -> str:
    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.skip = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.skip = tag in ("title", "style")

        def handle_endtag(self, tag: str) -> None:
            self.skip = False

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


@pytest.mark.parametrize("tag", LANGUAGES)
def test_the_email_is_in_the_locale_s_language_in_both_parts(tag: str) -> None:
    lang = language(tag)
    rendered = EmailTemplates.load(TEMPLATES).render(link({"locale": tag.replace("-", "_"), "first_name": "Ada"}))
    assert rendered.subject == lang.text(texts.EMAIL_SUBJECT)
    assert f'<html lang="{tag}" dir="{lang.direction}">' in rendered.html
    for part in (rendered.text, visible_text(rendered.html)):
        assert lang.text(texts.EMAIL_GREETING_NAME, name="Ada") in part
        assert lang.text(texts.EMAIL_INTRO) in part
        assert lang.text(texts.EMAIL_EXPIRY, expires_at="2024-06-08 09:00 UTC") in part
        assert lang.text(texts.EMAIL_IGNORE) in part
    assert rendered.text.count(URL) == 1
    assert "<" not in rendered.text and "&" not in rendered.text.replace(URL, "")  # plain text, not HTML
    assert f">{lang.text(texts.SIGN_IN)}</a>" in rendered.html
    if tag == "ar":
        assert 'align="right"' in rendered.html and "text-align:right" in rendered.html


@pytest.mark.parametrize(
    ("locale", "default", "expected"), [("fr-CA", "en", "fr"), ("tlh", "ja", "ja"), (7, "de", "de")]
)
def test_a_locale_no_language_ships_falls_back_to_the_default(locale: object, default: str, expected: str) -> None:
    rendered = EmailTemplates.load(TEMPLATES, default_language=default).render(link({"locale": locale}))
    assert f'<html lang="{expected}"' in rendered.html
    assert rendered.subject == language(expected).text(texts.EMAIL_SUBJECT)


def test_the_brand_names_the_subject_colours_the_button_and_shows_the_logo() -> None:
    rendered = EmailTemplates.load(TEMPLATES, brand=BRAND).render(link({"locale": "de"}))
    assert rendered.subject == "Ihr Anmeldelink für Acme"
    assert "background:#0b5fff" in rendered.html
    assert '<img src="https://cdn.example.com/acme.png" alt="Acme" height="40"' in rendered.html
    assert "Melden Sie sich mit einem Klick bei Acme an:" in rendered.text
    assert "cdn.example.com" not in rendered.text  # the text part has no logo
    name_only = EmailTemplates.load(TEMPLATES, brand=Brand(app_name="Acme")).render(link({}))
    assert '<p style="margin:0 0 24px;font-weight:600">Acme</p>' in name_only.html
    plain = EmailTemplates.load(TEMPLATES).render(link({}))
    assert "<img" not in plain.html and "24px;font-weight:600" not in plain.html
    assert "background:#2563eb" in plain.html


def test_the_sender_is_shown_with_the_app_name_unless_email_sender_name_is_set() -> None:
    def sender(**changes: Any) -> str:
        settings = Settings(table_name="t", accept_base_url="https://links.example.com", email_sender="l@example.com")
        mailer = LinkEmails(
            Settings(**{**settings.__dict__, **changes}),
            markers=Any,  # type: ignore[arg-type]
            ses=None,
            publisher=Any,  # type: ignore[arg-type]
            templates=EmailTemplates.load(TEMPLATES),
            ticket_keyring=lambda: None,  # type: ignore[arg-type,return-value]
        )
        return mailer.from_address

    assert sender() == "l@example.com"
    assert sender(brand=Brand(app_name="Acme Shop")) == "Acme Shop <l@example.com>"
    assert sender(brand=Brand(app_name="Acme Shop"), email_sender_name="Acme Support") == "Acme Support <l@example.com>"


SPOOFS = [
    "Your account is locked, visit https://evil.example",
    "Your account is locked, visit evil.example",
    "<a href=https://evil.example>Ada</a>",
    "Ada\u202e moc.elpmaxe.live",
    "A" * 200,
]


@pytest.mark.parametrize("first_name", SPOOFS)
def test_a_first_name_that_is_not_a_name_is_not_shown(first_name: str) -> None:
    rendered = EmailTemplates.load(TEMPLATES).render(link({"first_name": first_name, "locale": "en"}))
    assert rendered.text.startswith("Hello,\n")
    for part in (rendered.subject, rendered.text, visible_text(rendered.html)):
        assert "evil" not in part and "locked" not in part and "AAAA" not in part
        assert not re.search(r"https?://(?!links\.example\.com/)", part)
