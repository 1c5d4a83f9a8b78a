from __future__ import annotations

import pytest

from signin_links.config import THIRTY_DAYS, ConfigError, parse_settings


def test_defaults_follow_the_contract() -> None:
    settings = parse_settings({"TABLE_NAME": "t"})
    assert settings.default_expires_in_seconds == THIRTY_DAYS == settings.max_expires_in_seconds
    assert settings.secrets_max_age_seconds >= 300
    assert settings.allowed_redirect_origins == ()
    assert settings.accept_auto_submit is True


def test_a_smaller_maximum_caps_the_default() -> None:
    settings = parse_settings({"TABLE_NAME": "t", "MAX_EXPIRES_IN_SECONDS": "3600"})
    assert settings.default_expires_in_seconds == 3600 == settings.max_expires_in_seconds


def test_missing_table_is_named() -> None:
    with pytest.raises(ConfigError, match="TABLE_NAME"):
        parse_settings({})


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"MAX_EXPIRES_IN_SECONDS": "soon"}, "MAX_EXPIRES_IN_SECONDS"),
        ({"MAX_EXPIRES_IN_SECONDS": "0"}, "MAX_EXPIRES_IN_SECONDS"),
        ({"ACCEPT_AUTO_SUBMIT": "maybe"}, "ACCEPT_AUTO_SUBMIT"),
        ({"ALLOWED_REDIRECT_ORIGINS": "ftp://x"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"ACCEPT_BASE_URL": "not a url"}, "ACCEPT_BASE_URL"),
        ({"DEFAULT_REDIRECT_URL": "https://elsewhere.example/x"}, "DEFAULT_REDIRECT_URL"),
        ({"DEFAULT_EXPIRES_IN_SECONDS": "100", "MAX_EXPIRES_IN_SECONDS": "10"}, "DEFAULT_EXPIRES_IN_SECONDS"),
    ],
)
def test_malformed_settings_name_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        parse_settings({"TABLE_NAME": "t", **env})


def test_redirect_allow_list_compares_whole_origins() -> None:
    settings = parse_settings(
        {"TABLE_NAME": "t", "ALLOWED_REDIRECT_ORIGINS": "https://app.example.com, http://127.0.0.1:3000"}
    )
    assert settings.redirect_allowed("https://app.example.com/welcome?x=1")
    assert settings.redirect_allowed("https://APP.example.com/")
    assert settings.redirect_allowed("http://127.0.0.1:3000/")
    assert not settings.redirect_allowed("http://app.example.com/")  # scheme differs
    assert not settings.redirect_allowed("https://app.example.com.evil.io/")
    assert not settings.redirect_allowed("https://evil.io@app.example.com/")  # userinfo
    assert not settings.redirect_allowed("https://app.example.com:8443/")
    assert not settings.redirect_allowed("//app.example.com/")
    assert not settings.redirect_allowed("javascript:alert(1)")


def test_session_settings_default_to_clerks_and_are_bounded() -> None:
    settings = parse_settings({"TABLE_NAME": "t"})
    assert settings.session_token_lifetime_seconds == 60
    assert settings.session_lifetime_seconds == 7 * 24 * 3600
    assert settings.session_inactivity_seconds == 0
    custom = parse_settings(
        {"TABLE_NAME": "t", "SESSION_TOKEN_LIFETIME_SECONDS": "12", "SESSION_INACTIVITY_SECONDS": "1800"}
    )
    assert custom.session_token_lifetime_seconds == 12
    assert custom.session_inactivity_seconds == 1800
    for env, var in (
        ({"SESSION_TOKEN_LIFETIME_SECONDS": "4"}, "SESSION_TOKEN_LIFETIME_SECONDS"),
        ({"SESSION_TOKEN_LIFETIME_SECONDS": "7200", "SESSION_LIFETIME_SECONDS": "3600"}, "SESSION_TOKEN_LIFETIME"),
        ({"SESSION_INACTIVITY_SECONDS": "120"}, "SESSION_INACTIVITY_SECONDS"),
        ({"SESSION_INACTIVITY_SECONDS": "x"}, "SESSION_INACTIVITY_SECONDS"),
    ):
        with pytest.raises(ConfigError, match=var):
            parse_settings({"TABLE_NAME": "t", **env})


def test_a_deployed_stack_gives_a_margin_over_the_secrets_max_age() -> None:
    settings = parse_settings(
        {"TABLE_NAME": "t", "SECRETS_MAX_AGE_SECONDS": "300", "KEY_ACTIVATION_MARGIN_SECONDS": "60"}
    )
    assert settings.key_activation_delay_seconds == 360
    assert parse_settings({"TABLE_NAME": "t"}).key_activation_delay_seconds == 600  # no margin: the delay itself


@pytest.mark.parametrize(
    "env",
    [
        {"KEY_ACTIVATION_MARGIN_SECONDS": "59"},
        {"KEY_ACTIVATION_MARGIN_SECONDS": "0"},
        {"KEY_ACTIVATION_MARGIN_SECONDS": "soon"},
        {"KEY_ACTIVATION_MARGIN_SECONDS": "120", "KEY_ACTIVATION_DELAY_SECONDS": "900"},
    ],
)
def test_a_margin_below_sixty_seconds_or_beside_a_delay_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="KEY_ACTIVATION_MARGIN_SECONDS"):
        parse_settings({"TABLE_NAME": "t", **env})
