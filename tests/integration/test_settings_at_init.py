"""Each function checks at init what it needs from its environment: loading a handler module with
only the variables template.yaml gives that function works, and one it needs missing or malformed
fails the load (Lambda's init phase, the cold start) with a ConfigError naming the variable, rather
than the first request, email or batch."""

from __future__ import annotations

import pytest

from local.intrinsics import LOCAL_DEPLOY, Resolver, parameter_values
from local.template import function_environment, functions, load_template
from signin_links.config import ConfigError
from tests.conftest import Stack, reset_caches
from tests.integration.conftest import fresh_handler

# Handler directory -> the template's logical id.
FUNCTIONS = {
    "mint_link": "MintLinkFunction",
    "accept_token": "AcceptTokenFunction",
    "sessions": "SessionsFunction",
    "send_link_email": "SendLinkEmailFunction",
    "rotate_keys": "RotateKeysFunction",
}
SENDER = "links@example.com"

pytestmark = pytest.mark.usefixtures("hooks")  # the fresh modules' SnapStart hooks stay out of the others' way


def template_environments() -> dict[str, dict[str, str]]:
    """Each function's variables as the template gives them (the defaults, with a sender for email)."""
    template = load_template()
    kinds = {name: resource["Type"] for name, resource in template["Resources"].items()}
    resolver = Resolver(
        template,
        parameter_values(template, {**LOCAL_DEPLOY, "EmailSender": SENDER}),
        lambda name: f"{name}-local" if name in kinds else None,
        lambda name, attr: f"arn:aws:local:us-east-1:123456789012:{name}/{attr}" if name in kinds else None,
    )
    specs = functions(template)
    return {directory: function_environment(specs[logical_id], resolver) for directory, logical_id in FUNCTIONS.items()}


TEMPLATE_ENV = template_environments()
PROJECT_VARIABLES = {name for env in TEMPLATE_ENV.values() for name in env if not name.startswith("POWERTOOLS_")}


def use_function_env(directory: str, stack: Stack, monkeypatch: pytest.MonkeyPatch, **changes: str) -> None:
    """Only the function's own template variables (moto's resources where the stack has them), then ``changes``."""
    for name in PROJECT_VARIABLES | set(stack.env):
        monkeypatch.delenv(name, raising=False)
    env = {name: stack.env.get(name) or value for name, value in TEMPLATE_ENV[directory].items()}
    for name, value in {**env, **changes}.items():
        monkeypatch.setenv(name, value)
    reset_caches()  # the settings are parsed again


@pytest.mark.parametrize("directory", FUNCTIONS)
def test_the_template_s_environment_is_all_a_function_needs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, directory: str
) -> None:
    use_function_env(directory, stack, monkeypatch)
    fresh_handler(directory)  # does not raise


MISSING = [
    ("mint_link", "TABLE_NAME", {}),
    ("mint_link", "API_KEYS_SECRET_ID", {}),
    ("mint_link", "TICKET_SIGNING_KEYRING_SECRET_ID", {}),
    ("mint_link", "EVENT_BUS_NAME", {}),
    # A batch has no request host: the base URL or the parameter publishing it (both gone here).
    ("mint_link", "ACCEPT_BASE_URL or ACCEPT_BASE_URL_PARAMETER", {}),
    ("accept_token", "TABLE_NAME", {}),
    ("accept_token", "TICKET_VERIFICATION_KEYRING_SECRET_ID", {}),
    ("accept_token", "SESSION_KEYRING_SECRET_ID", {}),
    ("sessions", "TABLE_NAME", {}),
    ("sessions", "API_KEYS_SECRET_ID", {}),
    ("sessions", "SESSION_KEYRING_SECRET_ID", {}),
    ("send_link_email", "TABLE_NAME", {}),
    ("send_link_email", "TICKET_VERIFICATION_KEYRING_SECRET_ID", {}),
    ("send_link_email", "EVENT_BUS_NAME", {}),
    ("send_link_email", "EMAIL_SENDER", {}),
    ("send_link_email", "ACCEPT_BASE_URL_PARAMETER", {"ACCEPT_BASE_URL": ""}),
    ("rotate_keys", "TABLE_NAME", {}),
]


@pytest.mark.parametrize(("directory", "variable", "also"), MISSING, ids=[f"{d}-{v}" for d, v, _ in MISSING])
def test_a_missing_variable_fails_the_init_naming_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, directory: str, variable: str, also: dict[str, str]
) -> None:
    use_function_env(directory, stack, monkeypatch, **dict.fromkeys(variable.split(" or "), ""), **also)
    with pytest.raises(ConfigError, match=variable):
        fresh_handler(directory)


MALFORMED: list[tuple[str, str, str]] = [
    ("mint_link", "ACCEPT_BASE_URL", "links.example.com"),
    ("mint_link", "MAX_EXPIRES_IN_SECONDS", "a month"),
    ("accept_token", "ACCEPT_AUTO_SUBMIT", "maybe"),
    ("accept_token", "ACCEPT_CONFIRMATION", "sometimes"),
    ("accept_token", "SESSION_INACTIVITY_SECONDS", "60"),
    ("sessions", "SESSION_TOKEN_LIFETIME_SECONDS", "2"),
    ("send_link_email", "EMAIL_SENDER", "not an address"),
    ("send_link_email", "EMAIL_CLAIM_TIMEOUT_SECONDS", "0"),
    ("send_link_email", "ALLOWED_REDIRECT_ORIGINS", "https://[::1"),
    ("rotate_keys", "SESSION_LIFETIME_SECONDS", "1e400"),
    # What AllowedPattern cannot say (a colour's contrast) and what a team's templates may get wrong.
    ("accept_token", "BRAND_COLOR", "#ffff00"),
    ("send_link_email", "BRAND_COLOR", "#f0f0f0"),
    ("accept_token", "LOGO_URL", "https://[::1/logo.png"),
    ("accept_token", "DEFAULT_LANGUAGE", "tlh"),
    ("accept_token", "PAGE_TEMPLATE_DIR", "/nonexistent/templates"),
    ("accept_token", "LINK_RENEWAL", "auto"),  # the template resolves auto to email or off
]


@pytest.mark.parametrize(("directory", "variable", "value"), MALFORMED, ids=[f"{d}-{v}" for d, v, _ in MALFORMED])
def test_a_malformed_variable_fails_the_init_naming_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, directory: str, variable: str, value: str
) -> None:
    use_function_env(directory, stack, monkeypatch, **{variable: value})
    with pytest.raises(ConfigError, match=variable):
        fresh_handler(directory)
