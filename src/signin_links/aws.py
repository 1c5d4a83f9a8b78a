"""AWS clients: created lazily, once per execution environment, with deliberate timeouts.

The endpoint follows boto3's own ``AWS_ENDPOINT_URL`` setting, which is how the local stack points
every client at the emulator. Tests hand clients bound to moto straight to the store/publisher.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=16,
)


@cache
def session() -> boto3.session.Session:
    """One boto3 session for every client: each session loads its own copy of botocore's endpoint
    and model data, which a second session pays for again on the cold start."""
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """The shared client for ``service`` (``dynamodb``, ``events``, ``s3``, ...)."""
    return session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def client_without_retries(service: str) -> Any:
    """A client that makes each call once: for calls that must not be repeated blindly (SES's
    SendEmail, where a retry after a timeout could send a second email); the caller decides."""
    config = _CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=10))
    return session().client(service, config=config)  # type: ignore[call-overload]


@cache
def secrets_provider() -> SecretsProvider:
    """Powertools' Secrets Manager provider on the shared client (a provider of its own would build
    a second boto3 session: botocore's data loaded twice, ~35 ms of cold start); it caches values."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client("secretsmanager"))


@cache
def parameters_provider() -> SSMProvider:
    """Powertools' SSM Parameter Store provider on the shared client; it caches values."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto3_client=client("ssm"))


def fetch_parameter(name: str, max_age: int) -> str:
    """An SSM parameter's value through Powertools Parameters (cached for ``max_age`` seconds); an
    unreadable or missing parameter is :func:`~signin_links.errors.unavailable` (503, or a retried
    batch)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from signin_links.errors import unavailable
    from signin_links.observability import logger

    try:
        value = parameters_provider().get(name, max_age=max_age)
    except GetParameterError as exc:
        logger.warning("parameter read failed", extra={"parameter": name, "error": str(exc)[:300]})
        raise unavailable("SSM Parameter Store") from None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# The stack's published accept URL (the AcceptBaseUrlParameter, when AcceptBaseUrl is empty) changes
# only with a stack update that also changes the functions' environment (AcceptBaseUrl,
# CustomDomainName and EdgeProtection all do), hence new execution environments: an hour bounds how
# long an environment could hold a value replaced some other way. Read when first needed (a batch,
# an email, an HTTP mint behind CloudFront), never at init: a storm of cold starts must not meet
# SSM's GetParameter quota (40/s per account by default).
PUBLISHED_URL_MAX_AGE_SECONDS = 3600


def published_base_url_reader(parameter: str) -> Callable[[], str]:
    """A reader of the stack's published accept base URL (SSM ``parameter``, kept
    :data:`PUBLISHED_URL_MAX_AGE_SECONDS`); it reads "" when ``parameter`` is empty."""

    def read() -> str:
        return fetch_parameter(parameter, PUBLISHED_URL_MAX_AGE_SECONDS) if parameter else ""

    return read


def clear_provider_caches() -> None:
    """Drop the values the providers cached, through each provider's own ``clear_cache`` (one not
    created yet is left alone: clearing it would create its client): the next read goes to AWS."""
    for provider in (secrets_provider, parameters_provider):
        if provider.cache_info().currsize:
            provider().clear_cache()  # type: ignore[no-untyped-call]


def reset_clients() -> None:
    """Forget cached clients and the providers holding them (tests that switch endpoints call this)."""
    secrets_provider.cache_clear()
    parameters_provider.cache_clear()
    client.cache_clear()
    client_without_retries.cache_clear()
    session.cache_clear()
