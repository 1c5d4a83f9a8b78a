"""The brand settings: a colour white text can be read on (WCAG AA), https logos and help pages, a
name without markup; each refused at init naming the variable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signin_links import branding
from signin_links.branding import Brand, BrandError, contrast_with_white
from signin_links.config import ConfigError, parse_settings
from tests.strategies import redirect_urls, tricky_text


@pytest.mark.parametrize(
    ("color", "ratio"),
    [("#ffffff", 1.0), ("#000000", 21.0), ("#767676", 4.54), ("#777777", 4.48), ("#2563eb", 5.17), ("#FFFF00", 1.07)],
)
def test_contrast_is_wcag_s(color: str, ratio: float) -> None:
    assert contrast_with_white(color) == pytest.approx(ratio, abs=0.005)


def test_the_default_colour_passes_its_own_check() -> None:
    assert branding.color(branding.DEFAULT_COLOR) == branding.DEFAULT_COLOR


@given(rgb=st.integers(min_value=0, max_value=0xFFFFFF), upper=st.booleans())
def test_a_colour_is_taken_exactly_when_white_text_on_it_reaches_aa(rgb: int, upper: bool) -> None:
    value = f"#{rgb:06x}"
    value = value.upper() if upper else value
    if contrast_with_white(value) >= 4.5:
        assert branding.color(value) == value.lower()
    else:
        with pytest.raises(BrandError, match=r"contrast of \d+\.\d\d:1 with white; WCAG AA needs at least 4.5:1"):
            branding.color(value)


@given(value=tricky_text | st.text(max_size=10) | st.sampled_from(["#fff", "#12345g", "123456", "#1234567", "blue"]))
def test_anything_but_rrggbb_is_not_a_colour(value: str) -> None:
    if len(value) == 7 and value[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in value[1:]):
        return
    with pytest.raises(BrandError, match="is not a colour of the form #rrggbb"):
        branding.color(value)


@pytest.mark.parametrize(
    "value",
    ["http://cdn.example.com/logo.png", "javascript:alert(1)", "data:image/png;base64,AAAA", "//cdn.example.com/x",
     "logo.png", "https://", "https://[::1", "ftp://example.com/logo.png"],
)  # fmt: skip
def test_a_logo_or_support_page_must_be_an_https_url(value: str) -> None:
    with pytest.raises(BrandError):
        branding.https_url(value)


@given(value=redirect_urls)
def test_an_accepted_url_is_canonical_https_ascii(value: str) -> None:
    try:
        url = branding.https_url(value)
    except BrandError:
        return
    assert url.startswith("https://")
    assert url.isascii()
    assert not any(c in url for c in " \"'<>\\\n\t")
    assert branding.https_url(url) == url


@pytest.mark.parametrize("value", ["A<b>", "Acme\u202eevil", "Acme\x00", "Ac\nme", "x" * 65])
def test_an_app_name_has_no_markup_or_controls_and_is_bounded(value: str) -> None:
    with pytest.raises(BrandError):
        branding.app_name(value)


def test_an_app_name_keeps_its_letters() -> None:
    assert branding.app_name("  Caf\u0065\u0301 \u00d6zil & Co.  ") == "Caf\u00e9 \u00d6zil & Co."
    assert branding.app_name("\u30a2\u30af\u30e1") == "\u30a2\u30af\u30e1"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("BRAND_COLOR", "#ffff00", "BRAND_COLOR: #ffff00 has a contrast of 1.07:1"),
        ("BRAND_COLOR", "red", "BRAND_COLOR: 'red' is not a colour"),
        ("LOGO_URL", "http://cdn.example.com/l.png", "LOGO_URL: .* is not an https URL"),
        ("SUPPORT_URL", "javascript:alert(1)", "SUPPORT_URL: "),
        ("SUPPORT_EMAIL", "help at example.com", "SUPPORT_EMAIL: .* is not an email address"),
        ("APP_NAME", "<script>", "APP_NAME: must not contain <"),
        ("DEFAULT_LANGUAGE", "klingon", "DEFAULT_LANGUAGE: 'klingon' is not one of the shipped languages"),
    ],
)
def test_a_bad_brand_setting_is_a_config_error_naming_it(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings({"TABLE_NAME": "t", var: value})


def test_the_brand_settings_are_optional_with_sane_defaults() -> None:
    settings = parse_settings({"TABLE_NAME": "t"})
    assert settings.brand == Brand()
    assert settings.brand.color == "#2563eb"
    assert settings.default_language == "en"
    branded = parse_settings(
        {
            "TABLE_NAME": "t",
            "APP_NAME": " Acme ",
            "BRAND_COLOR": "#0B5FFF",
            "LOGO_URL": "https://CDN.example.com/logo.svg",
            "SUPPORT_URL": "https://acme.example/help",
            "SUPPORT_EMAIL": "help@acme.example",
            "DEFAULT_LANGUAGE": "pt-br",
        }
    )
    assert branded.brand == Brand(
        app_name="Acme",
        color="#0b5fff",
        logo_url="https://cdn.example.com/logo.svg",
        support_url="https://acme.example/help",
        support_email="help@acme.example",
    )
    assert branded.brand.logo_origin == "https://cdn.example.com"
    assert branded.default_language == "pt-BR"
