"""AWS clients: created lazily, once per execution environment, with deliberate timeouts.

The endpoint follows boto3's own ``AWS_ENDPOINT_URL`` setting, which is how the local stack points
every client at the emulator. Tests hand clients bound to moto straight to the store/publisher.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

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
    config = _CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=10))
    return session().client(service, config=config)  # type: ignore[call-overload]


def fetch_parameter(name: str, max_age: int) -> str:
    """An SSM parameter's value through Powertools Parameters (cached for ``max_age`` seconds); an
    unreadable or missing parameter is :func:`~signin_links.errors.unavailable` (503, or a retried
    batch)."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    from signin_links.errors import unavailable
    from signin_links.observability import logger

    if "ssm" not in DEFAULT_PROVIDERS:  # our shared client, as for secrets (keyring.fetch_secret)
        DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=client("ssm"))
    try:
        value = parameters.get_parameter(name, max_age=max_age)
    except parameters.exceptions.GetParameterError as exc:
        logger.warning("parameter read failed", extra={"parameter": name, "error": str(exc)[:300]})
        raise unavailable("SSM Parameter Store") from None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints call this)."""
    client.cache_clear()
    client_without_retries.cache_clear()
    session.cache_clear()
