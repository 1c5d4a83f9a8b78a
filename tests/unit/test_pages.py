"""The accept function's pages: every state in every language, the brand, a team's own templates,
and a Content-Security-Policy whose hashes are computed from what the page really inlines."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aws_lambda_powertools.event_handler import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from signin_links import texts
from signin_links.branding import Brand
from signin_links.config import ConfigError
from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.i18n import LANGUAGES, language
from signin_links.pages import PLACEHOLDERS, Pages
from tests.strategies import tricky_text

TEMPLATES = Path(__file__).resolve().parents[2] / "functions" / "accept_token" / "templates"
BRAND = Brand(
    app_name="Acme & Co",
    color="#0b5fff",
    logo_url="https://cdn.example.com/acme/logo.svg",
    support_url="https://acme.example/help",
    support_email="help@acme.example",
)


def states(pages: Pages, tag: str, user_id: str = "user_123", token: str = "eyJ.tok.en") -> dict[str, Response[str]]:
    """One response of every page state (the accept function's routes render the same calls)."""
    lang = language(tag)
    rendered = {
        "no_token": pages.accept(None, lang),
        "accept": pages.accept(token, lang, csrf_token="1.salt.mac"),
        "confirm_sign_in": pages.accept(token, lang, csrf_token="1.salt.mac", confirm_as=user_id),
        "confirm_sign_in_fragment": pages.accept(None, lang, csrf_token="1.salt.mac", confirm_as=""),
        "signed_in": pages.signed_in(user_id, [], lang),
        "redirect": pages.redirect("https://app.example.com/welcome", [], lang),
        "confirm": pages.confirm_switch("user_other", user_id, token, lang),
        "sign_out": pages.sign_out("https://app.example.com/bye", lang),
        "signed_out": pages.signed_out([], None, lang),
        "signed_out_redirect": pages.signed_out([], "https://app.example.com/bye", lang),
        "unavailable": pages.error(unavailable("DynamoDB"), lang),
        "not_found": pages.error(SignInLinksError(ErrorCode.ROUTE_NOT_FOUND), lang),
        "refused": pages.error(SignInLinksError(ErrorCode.ORIGIN_INVALID), lang),
        "too_large": pages.error(SignInLinksError(ErrorCode.REQUEST_BODY_TOO_LARGE), lang),
    }
    for code in (
        ErrorCode.TICKET_INVALID,
        ErrorCode.TICKET_EXPIRED,
        ErrorCode.SIGN_IN_TOKEN_ALREADY_USED,
        ErrorCode.SIGN_IN_TOKEN_REVOKED,
    ):
        rendered[code.wire_code] = pages.error(SignInLinksError(code), lang)
    return rendered


def inline(body: str, element: str) -> str:
    match = re.search(rf"<{element}>(.*?)</{element}>", body, re.DOTALL)
    assert match, element
    return match.group(1)


def source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(body: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(body)
    return parser.tags


@pytest.mark.parametrize("tag", LANGUAGES)
def test_every_state_is_in_the_reader_s_language_with_its_direction(tag: str) -> None:
    pages = Pages(TEMPLATES, auto_submit=True)
    lang = language(tag)
    for name, answer in states(pages, tag).items():
        body = answer.body
        assert isinstance(body, str)
        assert f'<html lang="{tag}" dir="{lang.direction}">' in body, name
        assert "${" not in body and "{" not in inline(body, "main"), name
        assert answer.headers["Content-Language"] == tag, name
        assert answer.headers["Vary"] == "Accept-Language", name
    expected = {
        "accept": lang.text(texts.SIGN_IN),
        "signed_in": lang.text(texts.SIGNED_IN),
        "confirm": lang.text(texts.SWITCH_ACCOUNTS),
        "sign_out": lang.text(texts.SIGN_OUT),
        "signed_out": lang.text(texts.SIGNED_OUT),
        "ticket_expired_code": lang.text(texts.LINK_EXPIRED),
        "sign_in_token_already_used_code": lang.text(texts.LINK_USED),
        "unavailable": lang.text(texts.UNAVAILABLE),
    }
    rendered = states(pages, tag)
    for name, heading in expected.items():
        assert f"<h1>{heading}</h1>" in rendered[name].body, (name, heading)
    if tag != "en":  # nothing English is left on a page but ids and codes
        for name, answer in rendered.items():
            assert "Sign in" not in answer.body and "This sign-in link" not in answer.body, (tag, name)


def test_the_status_of_the_accept_page_is_announced_and_the_script_says_its_text_in_the_language() -> None:
    body = Pages(TEMPLATES, auto_submit=True).accept("t", language("ja")).body
    assert '<p id="status" role="status" aria-live="polite">' in body
    assert 'data-working="サインインしています…"' in body


@pytest.mark.parametrize("brand", [Brand(), BRAND], ids=["default", "brand"])
def test_the_csp_allows_exactly_the_inlined_script_and_style(brand: Brand) -> None:
    pages = Pages(TEMPLATES, auto_submit=True, brand=brand)
    for tag in ("en", "ar"):
        for name, answer in states(pages, tag).items():
            csp = answer.headers["Content-Security-Policy"]
            assert f"style-src {source(inline(answer.body, 'style'))};" in csp, name
            if "<script>" in answer.body:
                assert f"script-src {source(inline(answer.body, 'script'))};" in csp, name
            assert "unsafe-inline" not in csp
    assert f"--brand:{brand.color}" in pages.accept(None, language("en")).body


def test_the_brand_shows_in_titles_headers_buttons_and_error_pages() -> None:
    pages = Pages(TEMPLATES, auto_submit=True, brand=BRAND)
    rendered = states(pages, "de")
    accept = rendered["accept"].body
    assert "<title>Anmelden \u2013 Acme &amp; Co</title>" in accept
    assert '<img src="https://cdn.example.com/acme/logo.svg" alt="Acme &amp; Co">' in accept
    assert "img-src https://cdn.example.com;" in rendered["accept"].headers["Content-Security-Policy"]
    assert ":root{--brand:#0b5fff}" in accept
    support = (
        '<p class="support">Brauchen Sie Hilfe? <a href="https://acme.example/help">Support kontaktieren</a>'
        ' \u00b7 <a href="mailto:help@acme.example">help@acme.example</a></p>'
    )
    for name, answer in rendered.items():
        assert (support in answer.body) == (answer.status_code >= 400 and name != "confirm"), name


def test_without_a_brand_there_is_no_header_no_images_and_no_support_line() -> None:
    answer = Pages(TEMPLATES, auto_submit=True).error(SignInLinksError(ErrorCode.TICKET_EXPIRED), language("en"))
    assert "<header" not in answer.body and "<img" not in answer.body and 'class="support"' not in answer.body
    assert "img-src" not in answer.headers["Content-Security-Policy"]
    assert "<title>This sign-in link has expired</title>" in answer.body


def test_a_logo_without_a_name_gets_a_translated_alt_text_and_a_name_without_logo_is_text() -> None:
    logo_only = Pages(TEMPLATES, auto_submit=True, brand=Brand(logo_url="https://cdn.example.com/l.png"))
    assert 'alt="Logo"' in logo_only.accept(None, language("en")).body
    assert 'alt="الشعار"' in logo_only.accept(None, language("ar")).body
    name_only = Pages(TEMPLATES, auto_submit=True, brand=Brand(app_name="Acme"))
    assert '<header class="brand"><p class="app-name">Acme</p></header>' in name_only.accept(None, language("en")).body


def test_a_team_s_own_templates_replace_the_built_in_ones_and_keep_a_correct_csp(tmp_path: Path) -> None:
    (tmp_path / "accept.css").write_text("body{font-family:Georgia,serif}button{background:var(--brand)}")
    (tmp_path / "page.html").write_text(
        '<!doctype html><html lang="${lang}" dir="${dir}"><head><title>${title}</title><style>${style}</style>'
        '</head><body><p class="from-the-team">${app_name}</p><main>${content}</main>${script}</body></html>'
    )
    pages = Pages(TEMPLATES, auto_submit=True, brand=Brand(app_name="Acme"), override=tmp_path)
    answer = pages.accept("t", language("fr"))
    assert '<p class="from-the-team">Acme</p>' in answer.body
    assert "font-family:Georgia" in answer.body
    assert f"style-src {source(inline(answer.body, 'style'))};" in answer.headers["Content-Security-Policy"]
    assert "<h1>Se connecter</h1>" in answer.body  # the built-in fragment, still translated


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("error.html", "<h1>${title}</h1>", r"error.html: unknown placeholder\(s\) \['title'\]"),
        ("accept.html", "<p>${token} costs $5</p>", r"accept.html: a lone \$"),
        ("page.html", "${content} ${secret_key}", r"page.html: unknown placeholder\(s\) \['secret_key'\]"),
    ],
)
def test_a_template_with_an_unknown_placeholder_fails_the_init_naming_it(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        Pages(TEMPLATES, auto_submit=True, override=tmp_path)


def test_a_missing_template_fails_the_init_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"page template page\.html is in none of"):
        Pages(tmp_path, auto_submit=True)


@pytest.mark.parametrize("folder", ["missing", "empty", "file"])
def test_an_override_that_is_not_a_folder_of_templates_fails_the_init_naming_it(tmp_path: Path, folder: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("the templates are elsewhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"PAGE_TEMPLATE_DIR: .* is not a folder holding any of"):
        Pages(TEMPLATES, auto_submit=True, override=tmp_path / folder)


def test_every_built_in_template_uses_only_its_placeholders() -> None:
    for fragment in PLACEHOLDERS:
        text = (TEMPLATES / f"{fragment}.html").read_text()
        assert set(re.findall(r"\$\{(\w+)\}", text)) <= PLACEHOLDERS[fragment], fragment


EXPECTED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "img", "p", "h1", "form", "input",
                 "button", "script", "strong", "a", "code"}  # fmt: skip


@settings(deadline=None)
@given(
    user_id=tricky_text | st.text(max_size=40) | st.sampled_from(['<img src=x onerror="alert(1)">', "</p><script>"]),
    token=tricky_text | st.sampled_from(['"><script>alert(1)</script>', "a&b"]),
    tag=st.sampled_from(LANGUAGES),
)
def test_values_never_become_markup(user_id: str, token: str, tag: str) -> None:
    pages = Pages(TEMPLATES, auto_submit=True, brand=BRAND)
    for name, answer in states(pages, tag, user_id=user_id, token=token).items():
        found = tags_of(answer.body)
        assert {element for element, _ in found} <= EXPECTED_TAGS, name
        assert sum(element == "script" for element, _ in found) <= 1, name
        for element, attributes in found:
            assert not any(attribute.startswith("on") for attribute in attributes), (name, element)
