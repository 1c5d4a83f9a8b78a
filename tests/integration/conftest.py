"""What several integration test modules share: the batch world (``batches``: the mint function on
moto with its buckets and a log group capturing what it publishes), ``hooks`` (only the SnapStart hooks
registered during the test run at a restore) and ``fresh_handler`` (a handler module loaded anew)."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest

from signin_links import aws, snapstart
from tests.conftest import REGION, ROOT, Stack, load_event, load_function, reset_caches

RESULTS_BUCKET = "signin-links-results-test"
# What the mint publishes reaches this log group through a rule on its bus, as any rule target would.
# (A log group, not an SQS queue: moto's SQS reads every message's attributes for each one it sends
# or receives, so a 1,000-user batch cost a minute to capture; a log group costs milliseconds.)
CAPTURE_LOG_GROUP = "captured-events"
MANIFEST_BUCKET = "signin-links-manifests-test"


class Wrapped:
    """A boto3 client with some operations replaced (everything else passes through)."""

    def __init__(self, client: Any, **overrides: Callable[..., Any]) -> None:
        self._client = client
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._client, name)


@dataclass
class Batches:
    stack: Stack
    context: Any
    monkeypatch: pytest.MonkeyPatch
    s3: Any
    logs: Any

    def handler(self) -> Any:
        return load_function("mint_link").lambda_handler

    def event(self, detail: dict[str, Any]) -> dict[str, Any]:
        event = load_event("mint_batch.json")
        event["detail"] = copy.deepcopy(detail)
        return event

    def deliver(self, detail: dict[str, Any], context: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.handler()(self.event(detail), context or self.context)
        return result

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.handler()(copy.deepcopy(payload), self.context)
        return result

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event the bus delivered so far to the capture rule's log group."""
        delivered = [
            json.loads(event["message"])
            for page in self.logs.get_paginator("filter_log_events").paginate(logGroupName=CAPTURE_LOG_GROUP)
            for event in page["events"]
        ]
        return [e for e in delivered if detail_type is None or e["detail-type"] == detail_type]

    def minted(self) -> list[dict[str, Any]]:
        return [e["detail"] for e in self.events("SignInLinkMinted")]

    def summaries(self) -> list[dict[str, Any]]:
        return [e["detail"] for e in self.events("SignInLinkBatchCompleted")]

    def tokens(self, batch_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.stack.dynamodb.get_paginator("scan").paginate(
            TableName=self.stack.table_name,
            FilterExpression="batch_id = :b AND begins_with(pk, :sit)",
            ExpressionAttributeValues={":b": {"S": batch_id}, ":sit": {"S": "sit_"}},
        ):
            items.extend(page["Items"])
        return items

    def all_items(self, batch_id: str) -> list[dict[str, Any]]:
        response = self.stack.dynamodb.scan(
            TableName=self.stack.table_name,
            FilterExpression="batch_id = :b",
            ExpressionAttributeValues={":b": {"S": batch_id}},
        )
        items: list[dict[str, Any]] = response["Items"]
        return items

    def put_manifest(self, key: str, body: str | bytes, bucket: str = MANIFEST_BUCKET) -> str:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return f"s3://{bucket}/{key}"

    def results(self, uri: str) -> list[dict[str, Any]]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines()]

    def use_clients(self, **wrappers: Callable[[Any], Any]) -> None:
        """Make the handler use wrapped clients for some services (e.g. dynamodb=lambda c: Wrapped(c, ...))."""
        real = aws.client

        def client(service: str) -> Any:
            base = real(service)
            return wrappers[service](base) if service in wrappers else base

        client.cache_clear = real.cache_clear  # type: ignore[attr-defined]  # reset_caches() calls it
        self.monkeypatch.setattr(aws, "client", client)
        reset_caches()

    def healthy(self) -> None:
        self.monkeypatch.setattr(aws, "client", _REAL_CLIENT)
        reset_caches()

    def set_env(self, **env: str) -> None:
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        reset_caches()

    def reopen(self, batch_id: str) -> None:
        """What a crash just before the batch header was marked completed leaves behind."""
        header = next(i for i in self.all_items(batch_id) if i["pk"]["S"].startswith("batch_"))
        self.stack.dynamodb.update_item(
            TableName=self.stack.table_name,
            Key={"pk": header["pk"]},
            UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": {"S": "running"}},
        )

    def forget_idempotency(self) -> None:
        """What an hour does: the idempotency records expire (the header logic remains)."""
        for item in self.stack.dynamodb.scan(TableName=self.stack.table_name)["Items"]:
            if item["pk"]["S"].startswith("batch-idempotency#"):
                self.stack.dynamodb.delete_item(TableName=self.stack.table_name, Key={"pk": item["pk"]})


_REAL_CLIENT = aws.client


@pytest.fixture
def batches(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    s3 = boto3.client("s3", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    for bucket in (RESULTS_BUCKET, MANIFEST_BUCKET):
        s3.create_bucket(Bucket=bucket)
    logs.create_log_group(logGroupName=CAPTURE_LOG_GROUP)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=CAPTURE_LOG_GROUP)["logGroups"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(Name="capture", EventBusName=bus, EventPattern=json.dumps({"source": ["signin-links"]}))
    target = {"Id": "log-group", "Arn": group["arn"].removesuffix(":*")}
    stack.events.put_targets(Rule="capture", EventBusName=bus, Targets=[target])
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS_BUCKET)
    monkeypatch.setattr(aws, "client", _REAL_CLIENT)
    reset_caches()
    yield Batches(stack=stack, context=context, monkeypatch=monkeypatch, s3=s3, logs=logs)


@pytest.fixture
def hooks() -> Iterator[None]:
    """Only the hooks registered from here on (and the random reseed) run at ``snapstart.restored()``;
    afterwards the registry holds what it held before."""
    with snapstart.HOOKS.isolated(snapstart.reseed_random):
        yield


_fresh = itertools.count()


def fresh_handler(directory: str) -> ModuleType:
    """A new copy of ``functions/<directory>/app.py``, loaded as Lambda loads it in a new environment."""
    spec = importlib.util.spec_from_file_location(
        f"fresh_{directory}_{next(_fresh)}", ROOT / "functions" / directory / "app.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
