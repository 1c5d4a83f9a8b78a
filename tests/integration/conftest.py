"""What several integration test modules share: the batch world (``batches``: the mint function on
moto with its buckets and a queue capturing what it publishes), ``hooks`` (only the SnapStart hooks
registered during the test run at a restore) and ``fresh_handler`` (a handler module loaded anew)."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest

from signin_links import aws, snapstart
from tests.conftest import REGION, ROOT, Stack, load_event, load_function, reset_caches

RESULTS_BUCKET = "signin-links-results-test"
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
    sqs: Any
    queue_url: str
    received: list[dict[str, Any]] = field(default_factory=list)

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
        """Every event published so far (drains the capture queue)."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [e for e in self.received if detail_type is None or e["detail-type"] == detail_type]

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
    sqs = boto3.client("sqs", region_name=REGION)
    for bucket in (RESULTS_BUCKET, MANIFEST_BUCKET):
        s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(Name="capture", EventBusName=bus, EventPattern=json.dumps({"source": ["signin-links"]}))
    stack.events.put_targets(Rule="capture", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS_BUCKET)
    monkeypatch.setattr(aws, "client", _REAL_CLIENT)
    reset_caches()
    yield Batches(stack=stack, context=context, monkeypatch=monkeypatch, s3=s3, sqs=sqs, queue_url=queue_url)


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
