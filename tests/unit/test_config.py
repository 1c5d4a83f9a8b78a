from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from signin_links import config
from signin_links.config import THIRTY_DAYS, ConfigError, parse_settings
from tests.strategies import tricky_text


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
        ({"ACCEPT_CONFIRMATION": "sometimes"}, "ACCEPT_CONFIRMATION"),
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


INTEGER_SETTINGS = sorted(set(re.findall(r'_int\(env, "([A-Z_]+)"', Path(config.__file__).read_text())))
EVERY_SETTING = sorted(set(re.findall(r'"([A-Z][A-Z_]{3,})"', Path(config.__file__).read_text())))
hostile_values = (
    tricky_text
    | st.text(max_size=30)
    | st.integers(min_value=-(10**40), max_value=10**40).map(str)
    | st.sampled_from(["\uff11\uff12\uff10", "\u0663", "1_000", "+5", " 7 ", "1e3", "0x10", "10000000001", "-0"])
)


@settings(deadline=None)
@given(var=st.sampled_from(EVERY_SETTING), value=hostile_values)
def test_any_value_of_any_setting_parses_or_is_a_config_error_naming_it(var: str, value: str) -> None:
    try:
        parse_settings({"TABLE_NAME": "t", var: value})
    except ConfigError as error:
        assert var in str(error), (var, value, str(error))


@settings(deadline=None)
@given(var=st.sampled_from(INTEGER_SETTINGS), value=hostile_values)
@example(var="MAX_EXPIRES_IN_SECONDS", value="\uff11\uff12\uff10")  # int() takes fullwidth digits
@example(var="SESSION_LIFETIME_SECONDS", value=str(10**40))  # DynamoDB numbers have at most 38 digits
def test_an_integer_setting_is_ascii_digits_and_bounded(var: str, value: str) -> None:
    try:
        parse_settings({"TABLE_NAME": "t", var: value})
    except ConfigError as error:
        assert var in str(error), (var, value, str(error))
        return
    raw = value.strip()
    assert raw == "" or re.fullmatch(r"-?[0-9]+", raw), (var, value)
    assert raw == "" or int(raw) <= config.MAX_SETTING, (var, value)
