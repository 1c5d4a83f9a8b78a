"""Shared fixtures. moto is activated before any project module creates a boto3 client."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from hypothesis import settings
from moto import mock_aws

from local.moto_patches import atomic_transactions
from local.ses_quota import ses_quota

# moto in this process writes a cancelled TransactWriteItems to nothing, as DynamoDB does, and its SES
# v2 answers GetAccount and throttles SendEmail at the account's quota, as SES does (the local stack's
# moto server does the same; see local/moto_patches.py and local/ses_quota.py).
atomic_transactions()
ses_quota()

# Hypothesis profiles: how many examples every property test draws, chosen with HYPOTHESIS_PROFILE
# (or pytest's --hypothesis-profile); no test sets its own max_examples. Draws stay random (fresh
# inputs on every run find what the last one missed); a failure prints the blob that reproduces it.
#   ci          100 examples (the default: make test, CI)
#   thorough    1,000 examples (before a release, or after touching a parser: HYPOTHESIS_PROFILE=thorough)
#   second-pass 10 examples (make test's run on Lambda's Python 3.13: the inputs were explored on the
#               first pass; this one checks the same code behaves the same on the other interpreter)
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("thorough", settings.get_profile("ci"), max_examples=1000)
settings.register_profile("second-pass", settings.get_profile("ci"), max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Every test's logs are scanned for tokens, secret keys and accept URLs (see tests/logscan.py).
pytest_plugins = ["tests.logscan"]

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
REGION = "us-east-1"
SECRET_KEY = "sk_test_local_signin_links_0001"  # the local stack's default key, as in events/*.json

# Never reach real AWS from the tests, whatever the developer's shell holds.
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
    AWS_REGION=REGION,
    POWERTOOLS_SERVICE_NAME="signin-links",
    POWERTOOLS_METRICS_NAMESPACE="SigninLinks",
    POWERTOOLS_DEV="false",
)


# Tests of the repository's tools rather than of the code Lambda runs: template.yaml as CloudFormation
# and SAM CLI read it, the import contracts, `make invoke`, the local stack's EventBridge and Pipes
# emulation, the benchmarks and `make capacity`, the translation catalogues, and the checks that read
# the repository's own text (README's layout, use-case docstrings, comments, the tests' imports). They
# give the same answer on any Python, so make test's second pass, on Lambda's Python 3.13, leaves them
# out (-m "not tooling").
TOOLING = {
    "tests/unit/test_bench.py",
    "tests/unit/test_capacity.py",
    "tests/unit/test_catalogues.py",
    "tests/unit/test_comments_without_history.py",
    "tests/unit/test_layout_docs.py",
    "tests/unit/test_pipe_emulation.py",
    "tests/unit/test_rules.py",
    "tests/unit/test_suite_imports.py",
    "tests/unit/test_use_case_docs.py",
    "tests/integration/test_deploy_template.py",
    "tests/integration/test_email_template.py",
    "tests/integration/test_import_contracts.py",
    "tests/integration/test_rotation_invoke.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).relative_to(ROOT).as_posix() in TOOLING:
            item.add_marker(pytest.mark.tooling)


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def load_function(directory: str) -> ModuleType:
    """Import ``functions/<directory>/app.py`` under a unique module name (no sys.path edits)."""
    name = f"functions_{directory}_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / directory / "app.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Stack:
    """The template's resources, created in moto, and the environment the functions see."""

    env: dict[str, str]
    table_name: str
    dynamodb: Any
    secretsmanager: Any
    events: Any
    secret_key: str = SECRET_KEY

    def item(self, token_id: str) -> dict[str, Any] | None:
        response = self.dynamodb.get_item(TableName=self.table_name, Key={"pk": {"S": token_id}})
        item: dict[str, Any] | None = response.get("Item")
        return item


@cache
def _shared_loader(*args: Any, **kwargs: Any) -> botocore.loaders.Loader:
    return _create_loader(*args, **kwargs)


# Every boto3 session the tests make (the ``stack`` fixture's clients; ``signin_links.aws``'s, which
# each test's ``reset_caches`` drops) reads botocore's service models and endpoint data through one
# loader, which caches what it parsed: a new session would otherwise parse them again (a quarter of
# a second per client). The data is read-only; what a session holds of its own (credentials, region,
# events) stays per session.
_create_loader = botocore.loaders.create_loader
botocore.session.create_loader = _shared_loader  # type: ignore[attr-defined]


@cache
def session_keyring_json() -> str:
    """An RSA session keyring, generated once per test process (RSA-2048 generation is the costliest
    step of the ``stack`` fixture); each test's moto holds its own copy. Tests of rotation make
    their own keys."""
    from signin_links.keyring import RSA, new_keyring_json

    return new_keyring_json(RSA)


def reset_caches() -> None:
    from signin_links import aws
    from signin_links.config import get_settings
    from signin_links.keyring import forget_secrets

    get_settings.cache_clear()
    forget_secrets()
    aws.reset_clients()  # with the secrets and SSM providers: their clients belong to the previous moto session
    for name, module in list(sys.modules.items()):
        if name.startswith("functions_"):  # the handlers' cached composition roots
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto with the template's tables, secrets and bus; env vars set as the template sets them."""
    with mock_aws():
        from local.resources import create_tables
        from signin_links.keyring import new_ticket_keyrings_json

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        tables = create_tables(dynamodb)
        api = secrets.create_secret(Name="api-keys", SecretString=json.dumps({"secret_key": SECRET_KEY}))
        signing, public = new_ticket_keyrings_json()
        tickets = secrets.create_secret(Name="ticket-signing-keyring", SecretString=signing)
        verification = secrets.create_secret(Name="ticket-verification-keyring", SecretString=public)
        sessions = secrets.create_secret(Name="session-keyring", SecretString=session_keyring_json())
        bus = events.create_event_bus(Name="signin-links-test")
        env = {
            "TABLE_NAME": tables["TokensTable"],
            "API_KEYS_SECRET_ID": api["ARN"],
            "TICKET_SIGNING_KEYRING_SECRET_ID": tickets["ARN"],
            "TICKET_VERIFICATION_KEYRING_SECRET_ID": verification["ARN"],
            "SESSION_KEYRING_SECRET_ID": sessions["ARN"],
            "EVENT_BUS_NAME": "signin-links-test",
            "ALLOWED_REDIRECT_ORIGINS": "https://app.example.com,http://127.0.0.1:3000",
            "ACCEPT_BASE_URL": "https://links.example.com",
        }
        assert bus["EventBusArn"]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_caches()
        yield Stack(env=env, table_name=tables["TokensTable"], dynamodb=dynamodb, secretsmanager=secrets, events=events)
        reset_caches()


class LambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id = "test-request-id"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
