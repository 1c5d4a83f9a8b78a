"""Fault injection at the botocore boundary: every client (ours, Powertools Parameters' own) goes
through ``BaseClient._make_api_call``, so patching it reaches them all, moto or not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tests.conftest import Stack

ErrorFactory = Callable[[str], Exception]


def client_error(code: str, status: int = 400) -> ErrorFactory:
    def make(operation: str) -> Exception:
        return ClientError(
            {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}},
            operation,
        )

    make.__name__ = code
    return make


def connection_error(operation: str) -> Exception:
    return EndpointConnectionError(endpoint_url="https://injected.invalid/")


def connect_timeout(operation: str) -> Exception:
    return ConnectTimeoutError(endpoint_url="https://injected.invalid/")


def read_timeout(operation: str) -> Exception:
    return ReadTimeoutError(endpoint_url="https://injected.invalid/")


DYNAMODB_FAULTS: dict[str, ErrorFactory] = {
    "ThrottlingException": client_error("ThrottlingException"),
    "ProvisionedThroughputExceededException": client_error("ProvisionedThroughputExceededException"),
    "RequestLimitExceeded": client_error("RequestLimitExceeded"),
    "InternalServerError": client_error("InternalServerError", 500),
    "ServiceUnavailable": client_error("ServiceUnavailable", 503),
    "EndpointConnectionError": connection_error,
    "ConnectTimeoutError": connect_timeout,
    "ReadTimeoutError": read_timeout,
}
SECRETS_FAULTS: dict[str, ErrorFactory] = {
    "ThrottlingException": client_error("ThrottlingException"),
    "InternalServiceError": client_error("InternalServiceError", 500),
    "ResourceNotFoundException": client_error("ResourceNotFoundException"),
    "AccessDeniedException": client_error("AccessDeniedException"),
    "EndpointConnectionError": connection_error,
    "ReadTimeoutError": read_timeout,
}


# The operations that change a DynamoDB table (one call may write several items).
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


@dataclass
class Injector:
    """Which calls fail, and a record of every call made (service, operation, params) and of those
    that returned (``completed``: not failed by a rule, not refused by the service)."""

    rules: list[tuple[str, str | None, Callable[[dict[str, Any]], bool], ErrorFactory]] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    completed: list[tuple[str, str]] = field(default_factory=list)

    def fail(
        self,
        service: str,
        operation: str | None,
        error: ErrorFactory,
        when: Callable[[dict[str, Any]], bool] = lambda params: True,
    ) -> None:
        self.rules.append((service, operation, when, error))

    def clear(self) -> None:
        self.rules.clear()

    def count(self, service: str, operation: str | None = None) -> int:
        return sum(1 for s, o, _ in self.calls if s == service and (operation is None or o == operation))

    def table_writes(self) -> int:
        """DynamoDB write calls that succeeded: a write refused by its condition, or failed, is none."""
        return sum(1 for s, o in self.completed if s == "dynamodb" and o in DYNAMODB_WRITES)


@contextmanager
def injected(monkeypatch: pytest.MonkeyPatch) -> Iterator[Injector]:
    injector = Injector()
    original = BaseClient._make_api_call

    def make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        injector.calls.append((service, operation_name, api_params))
        for rule_service, rule_operation, when, error in injector.rules:
            if rule_service == service and rule_operation in (None, operation_name) and when(api_params):
                injector.failed.append((service, operation_name))
                raise error(operation_name)
        answer = original(self, operation_name, api_params)
        injector.completed.append((service, operation_name))
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    yield injector


def secret_is(stack: Stack, variable: str) -> Callable[[dict[str, Any]], bool]:
    """A ``when`` for :meth:`Injector.fail`: the call reads the secret named by the env var ``variable``."""
    return lambda params: params.get("SecretId") == stack.env[variable]
