"""Redirect URLs: a malformed one is a 422 on redirect_url (never a ValueError), a non-ASCII one is
turned into the ASCII URL that is checked, signed and sent, and the allow-list is checked on that."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from signin_links.config import ConfigError, parse_settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.mint_request import MAX_URL_LENGTH, MintRequest, check_mint_request
from signin_links.redirects import UrlError, canonical_url, origin_of
from tests.strategies import redirect_urls

SETTINGS = parse_settings(
    {
        "TABLE_NAME": "t",
        "ALLOWED_REDIRECT_ORIGINS": "https://app.example.com, http://127.0.0.1:3000, https://café.example, http://[::1]:8080",
    }
)

# URLs that urlsplit refuses or misreads (ValueError, a port that is not one...): each must be the
# caller's clear error, never an exception escaping as a 500.
MALFORMED = [
    "https://[x/",
    "https://app.example.com]/",
    "http://[::1",
    "https://app.example.com\uff0fevil.com/",  # fullwidth solidus: NFKC makes it a "/" in the host
    "https://app.example.com\uff20evil.com/",  # fullwidth commercial at
    "https://app.example.com:99999/",
    "https://app.example.com:abc/",
    "https://app.example.com:\u0661/",  # an Arabic-Indic digit as the port
    "https://app.example.com:443:443/",
    "https://[::1]:x/",
    "https://[v1.x]/",
    "https://[fe80::1%25eth0]/",
    "https://a[::1]/",
]


def redirect_error(url: object) -> SignInLinksError:
    with pytest.raises(SignInLinksError) as caught:
        check_mint_request(MintRequest(user_id="u", redirect_url=url), SETTINGS)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_redirect_is_a_422_on_redirect_url(url: str) -> None:
    error = redirect_error(url)
    assert error.code is ErrorCode.FORM_PARAM_VALUE_INVALID
    assert error.status == 422
    assert error.param == "redirect_url"
    assert not SETTINGS.redirect_allowed(url)


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://app.example.com/café", "https://app.example.com/caf%C3%A9"),
        ("https://app.example.com/caf%C3%A9", "https://app.example.com/caf%C3%A9"),  # never encoded twice
        ("https://app.example.com/100%?q=5%&r=%zz", "https://app.example.com/100%25?q=5%25&r=%25zz"),
        (
            "https://app.example.com/日本?名=値#節",
            "https://app.example.com/%E6%97%A5%E6%9C%AC?%E5%90%8D=%E5%80%A4#%E7%AF%80",
        ),
        ('https://app.example.com/a"<>`{|}^\\[]', "https://app.example.com/a%22%3C%3E%60%7B%7C%7D%5E%5C%5B%5D"),
        ("https://APP.Example.COM:443/Keep/Case", "https://app.example.com/Keep/Case"),
        ("https://\uff41\uff50\uff50.example.com/x", "https://app.example.com/x"),  # fullwidth letters
        ("https://app\u3002example\u3002com/x", "https://app.example.com/x"),  # ideographic full stops
        ("https://CAFÉ.example/menu", "https://xn--caf-dma.example/menu"),
        ("https://xn--caf-dma.example/menu", "https://xn--caf-dma.example/menu"),
        ("http://[0:0::1]:8080/ipv6", "http://[::1]:8080/ipv6"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
    ],
)
def test_an_allowed_redirect_is_minted_as_its_ascii_form(url: str, sent: str) -> None:
    settled = check_mint_request(MintRequest(user_id="u", redirect_url=url), SETTINGS)
    assert settled.redirect_url == sent
    assert sent.isascii()
    assert canonical_url(sent) == sent


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com\u3002evil.com/",  # the full stop makes it another host
        "https://app.example.com.evil.com/",
        "https://evil.com\\@app.example.com/",
        "https://@app.example.com/",  # empty user info: a browser goes to app.example.com, but no
        "https://user:pw@app.example.com/",
        "https://app.example.com:8443/",
        "https://app.example.com./",
        "https://app_example.com/",
        "https://café.example.evil/",
        "//app.example.com/",
        "javascript:alert(1)",
        "https://app.example.com/\u00a0",  # a no-break space
        "https://app.example.com/\ud800",  # an unpaired surrogate
        "https://app.example.com/" + "x" * MAX_URL_LENGTH,
        "https://app.example.com/" + "é" * 700,  # short enough raw, too long once encoded
    ],
)
def test_a_redirect_off_the_list_or_unsendable_is_refused(url: str) -> None:
    error = redirect_error(url)
    assert error.code is ErrorCode.FORM_PARAM_VALUE_INVALID
    assert error.param == "redirect_url"


def test_the_allow_list_is_read_into_ascii_origins() -> None:
    assert SETTINGS.allowed_redirect_origins == (
        "https://app.example.com",
        "http://127.0.0.1:3000",
        "https://xn--caf-dma.example",
        "http://[::1]:8080",
    )


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"ALLOWED_REDIRECT_ORIGINS": "https://[x"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"ALLOWED_REDIRECT_ORIGINS": "https://app.example.com:99999"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"ALLOWED_REDIRECT_ORIGINS": "https://app.example.com\uff0fx"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"ALLOWED_REDIRECT_ORIGINS": "https://user@app.example.com"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"ACCEPT_BASE_URL": "https://links.example.com]"}, "ACCEPT_BASE_URL"),
        ({"ACCEPT_BASE_URL": "https://links.example.com:x"}, "ACCEPT_BASE_URL"),
        ({"ACCEPT_BASE_URL": "https://links.example.com/?a=b"}, "ACCEPT_BASE_URL"),
        ({"ACCEPT_BASE_URL": "https://links.example.com/#a"}, "ACCEPT_BASE_URL"),
        (
            {"ALLOWED_REDIRECT_ORIGINS": "https://app.example.com", "DEFAULT_REDIRECT_URL": "https://[app.example.com"},
            "DEFAULT_REDIRECT_URL",
        ),
    ],
)
def test_a_malformed_url_setting_names_its_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        parse_settings({"TABLE_NAME": "t", **env})


def test_url_settings_are_read_into_their_ascii_form() -> None:
    parsed = parse_settings(
        {
            "TABLE_NAME": "t",
            "ACCEPT_BASE_URL": "https://Links.Example.com:443/",
            "ALLOWED_REDIRECT_ORIGINS": "https://café.example",
            "DEFAULT_REDIRECT_URL": "https://CAFÉ.example/bienvenue/à",
        }
    )
    assert parsed.accept_base_url == "https://links.example.com"
    assert parsed.default_redirect_url == "https://xn--caf-dma.example/bienvenue/%C3%A0"


@settings(deadline=None)
@given(redirect_urls)
@example("https://[x/")
@example("https://app.example.com\uff0fevil.com/")
def test_any_redirect_is_a_clean_answer(url: str) -> None:
    """Whatever the URL: a 422 on redirect_url, or an ASCII URL on an allowed origin that reads
    back to itself."""
    try:
        settled = check_mint_request(MintRequest(user_id="u", redirect_url=url), SETTINGS)
    except SignInLinksError as error:
        assert error.code is ErrorCode.FORM_PARAM_VALUE_INVALID
        assert error.param == "redirect_url"
        assert not SETTINGS.redirect_allowed(url)
        return
    sent = settled.redirect_url
    assert sent is not None
    assert sent.isascii()
    assert len(sent) <= MAX_URL_LENGTH
    assert canonical_url(sent) == sent
    assert origin_of(sent) in SETTINGS.allowed_redirect_origins
    assert SETTINGS.redirect_allowed(url)
    assert SETTINGS.redirect_allowed(sent)


@settings(deadline=None)
@given(redirect_urls)
def test_canonical_urls_are_ascii_and_idempotent(url: str) -> None:
    try:
        sent = canonical_url(url)
    except UrlError:
        return
    assert sent.isascii()
    assert sent.isprintable()
    assert " " not in sent
    assert canonical_url(sent) == sent
    assert sent.startswith(origin_of(url))
