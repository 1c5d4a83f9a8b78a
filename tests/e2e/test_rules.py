"""EventBridge rules on the local stack (``local.rules``): an event put on a local bus by any client
reaches the function the template's rule targets, as Lambda's asynchronous invoke runs it: retried
on failure, then sent to the function's on-failure destination.

The first tests drive :class:`local.rules.RuleEngine` on a private emulator with small handlers
(in-process functions); the last ones put events on the running local stack's bus, with boto3 and
with the AWS CLI, and watch the template's ``MintBatch`` rule mint through ``MintLinkFunction``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local.async_invoke import AsyncConfig, AsyncInvoker
from local.emulator import MotoServer, aws_client
from local.rules import RuleEngine, RuleSpec, TargetSpec
from local.runtime import LocalFunction
from local.template import FunctionSpec
from signin_links.batch.plan import token_id_for
from tests.e2e.batch_events import put_batch
from tests.e2e.conftest import LocalStackHandle
from tests.e2e.polling import wait_for

HANDLER = """
import json
from pathlib import Path

def handler(event, context):
    log = Path(event["detail"]["log"]) if isinstance(event, dict) and "detail" in event else Path(event["log"])
    with log.open("a") as out:
        out.write(json.dumps({"request_id": context.aws_request_id, "event": event}) + "\\n")
    fail = event["detail"].get("fail", 0) if "detail" in event else event.get("fail", 0)
    ours = [line for line in log.read_text().splitlines() if json.loads(line)["request_id"] == context.aws_request_id]
    attempts = len(ours)
    if attempts <= fail:
        raise RuntimeError(f"attempt {attempts} fails")
    return {"attempts": attempts}
"""


class Harness:
    """A private emulator with a bus, a failure queue, a dead-letter queue and one in-process function."""

    def __init__(self, moto: MotoServer, tmp_path: Path) -> None:
        self.endpoint = moto.endpoint
        self.tmp_path = tmp_path
        self.events = aws_client("events", moto.endpoint)
        self.sqs = aws_client("sqs", moto.endpoint)
        self.bus = f"bus-{uuid.uuid4().hex[:8]}"
        self.events.create_event_bus(Name=self.bus)
        self.queues = {name: self._queue(name) for name in ("failures", "dead-letters")}
        (tmp_path / "app.py").write_text(HANDLER)
        self.log: list[str] = []
        self.engine: RuleEngine | None = None

    def _queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def start(self, config: AsyncConfig, *, target: TargetSpec | None = None) -> RuleEngine:
        logical_id = f"Fn{uuid.uuid4().hex[:8]}"
        spec = FunctionSpec(logical_id, self.tmp_path, "app.handler", 128, 10, {}, {})
        target = target or TargetSpec("t", f"arn:aws:lambda:us-east-1:123456789012:function:{logical_id}")
        rule = RuleSpec(
            logical_id=f"{logical_id}Ping",
            origin=f"{logical_id}.Events.Ping",
            bus=self.bus,
            pattern={"source": ["test"]},
            targets=(replace(target, function=logical_id),),
        )
        invoker = AsyncInvoker(
            functions={logical_id: LocalFunction(spec=spec, name=logical_id, concurrency=2)},
            async_configs={logical_id: config},
            endpoint=self.endpoint,
            names={arn: name for name, (_, arn) in self.queues.items()},
            retry_delay_s=0.05,
            log=self.log.append,
        )
        self.engine = RuleEngine(rules=[rule], invoker=invoker)
        self.engine.install()
        self.engine.start()
        return self.engine

    def put(self, detail: dict[str, Any]) -> str:
        result = self.events.put_events(
            Entries=[{"Source": "test", "DetailType": "Ping", "Detail": json.dumps(detail), "EventBusName": self.bus}]
        )
        return str(result["Entries"][0]["EventId"])

    def calls(self) -> list[dict[str, Any]]:
        path = self.tmp_path / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def received(self, queue: str) -> list[dict[str, Any]]:
        url = self.queues[queue][0]
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return messages.get("Messages") or []


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with MotoServer() as moto:
        harness = Harness(moto, tmp_path)
        try:
            yield harness
        finally:
            if harness.engine is not None:
                harness.engine.close()


def test_an_event_reaches_the_function_whole(harness: Harness) -> None:
    harness.start(AsyncConfig())
    event_id = harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "note": "<source> <id> <detail-type>"})
    (call,) = wait_for(harness.calls)
    event = call["event"]
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert event["id"] == event_id
    assert event["source"] == "test"
    assert event["detail-type"] == "Ping"
    assert event["account"] == "123456789012"
    assert event["time"].endswith("Z")
    # moto's default input template would rewrite these inside the detail; the whole event is passed as it is
    assert event["detail"]["note"] == "<source> <id> <detail-type>"
    wait_for(lambda: any("-> ok" in line for line in harness.log))


def test_a_failed_invocation_is_retried_with_the_same_request_id(harness: Harness) -> None:
    harness.start(AsyncConfig(maximum_retry_attempts=2, on_failure_arn=harness.queues["failures"][1]))
    harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "fail": 2})
    calls = wait_for(lambda: len(harness.calls()) == 3 and harness.calls())
    assert len({call["request_id"] for call in calls}) == 1
    wait_for(lambda: any("-> ok" in line for line in harness.log))
    assert [line.split("; ")[-1] for line in harness.log if "retry" in line] == [
        "retry 1 of 2 in 0.05 s",
        "retry 2 of 2 in 0.1 s",
    ]
    # A sentinel after it: an event that fails every attempt. Its failure record is the first and
    # only one the queue holds: the event that succeeded on its third attempt sent none.
    sentinel = harness.put({"log": str(harness.tmp_path / "sentinel.jsonl"), "fail": 99})
    (record,) = wait_for(lambda: harness.received("failures"))
    assert json.loads(record["Body"])["requestPayload"]["id"] == sentinel


def test_retries_exhausted_go_to_the_on_failure_destination_as_lambdas_record(harness: Harness) -> None:
    harness.start(AsyncConfig(maximum_retry_attempts=1, on_failure_arn=harness.queues["failures"][1]))
    event_id = harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "fail": 99})
    (message,) = wait_for(lambda: harness.received("failures"))
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["id"] == event_id
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "attempt 2 fails"
    assert message["MessageAttributes"]["RequestID"]["StringValue"] == record["requestContext"]["requestId"]
    assert len(harness.calls()) == 2
    wait_for(lambda: any("sent to failures (RetriesExhausted)" in line for line in harness.log))


def test_without_on_failure_the_dead_letter_queue_gets_the_event_itself(harness: Harness) -> None:
    harness.start(AsyncConfig(maximum_retry_attempts=0, dead_letter_arn=harness.queues["dead-letters"][1]))
    event_id = harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "fail": 99})
    (message,) = wait_for(lambda: harness.received("dead-letters"))
    assert json.loads(message["Body"])["id"] == event_id
    assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "RuntimeError"


def test_an_event_too_old_is_not_retried(harness: Harness) -> None:
    harness.start(
        AsyncConfig(maximum_retry_attempts=2, maximum_event_age_s=0, on_failure_arn=harness.queues["failures"][1])
    )
    harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "fail": 99})
    (message,) = wait_for(lambda: harness.received("failures"))
    assert json.loads(message["Body"])["requestContext"]["condition"] == "EventAgeExceeded"
    assert len(harness.calls()) == 1


def test_with_no_destination_a_failed_event_is_dropped_and_said_so(harness: Harness) -> None:
    harness.start(AsyncConfig(maximum_retry_attempts=0))
    harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "fail": 99})
    line = wait_for(lambda: next((line for line in harness.log if "dropped" in line), None))
    assert "no OnFailure destination or DeadLetterQueue" in line


def test_input_path_hands_the_function_a_part_of_the_event(harness: Harness) -> None:
    harness.start(AsyncConfig(), target=TargetSpec("t", "arn", input_path="$.detail"))
    harness.put({"log": str(harness.tmp_path / "calls.jsonl"), "n": 1})
    (call,) = wait_for(harness.calls)
    assert call["event"] == {"log": str(harness.tmp_path / "calls.jsonl"), "n": 1}


# --- The running local stack -------------------------------------------------------------------------


def completed_queue(stack: LocalStackHandle, batch_id: str) -> str:
    """A queue that receives the SignInLinkBatchCompleted event of ``batch_id`` from the stack's bus."""
    return stack.capture(
        {"source": ["signin-links"], "detail-type": ["SignInLinkBatchCompleted"], "detail": {"batch_id": [batch_id]}}
    )


def test_a_batch_event_put_on_the_bus_mints_through_the_templates_rule(local_stack: LocalStackHandle) -> None:
    batch_id = f"e2e-bus-{uuid.uuid4().hex[:8]}"
    users = ["user_bus_1", "user_bus_2", "user_bus_3"]
    queue = completed_queue(local_stack, batch_id)
    put_batch(local_stack, {"batch_id": batch_id, "user_ids": users})

    def summary() -> dict[str, Any] | None:
        messages = local_stack.aws("sqs").receive_message(QueueUrl=queue).get("Messages") or []
        return json.loads(messages[0]["Body"])["detail"] if messages else None

    completed = wait_for(summary, timeout=60, interval=0.3)
    assert completed["counts"]["minted"] == 3
    assert completed["status"] == "completed"
    for user in users:
        assert local_stack.status(token_id_for(batch_id, user)) == "pending"
    assert "EventBridge MintLinkFunctionMintBatch -> MintLinkFunction (request " in local_stack.output()


def test_a_rejected_batch_is_retried_then_lands_in_the_batch_dead_letter_queue(local_stack: LocalStackHandle) -> None:
    event_id = put_batch(local_stack, {"batch_id": f"e2e-bad-{uuid.uuid4().hex[:8]}", "users": "not a list"})
    sqs, url = local_stack.aws("sqs"), local_stack.state["queues"]["BatchDeadLetterQueue"]

    def ours() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []:
            record = json.loads(message["Body"])
            if record.get("requestPayload", {}).get("id") == event_id:
                return dict(record)
        return None

    record = wait_for(ours, timeout=60, interval=0.3)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3  # the template's MaximumRetryAttempts: 2
    assert record["responsePayload"]["errorType"] == "BatchRejected"
    request = record["requestContext"]["requestId"]
    lines = [line for line in local_stack.output().splitlines() if f"(request {request})" in line]
    assert [line.rsplit("; ", 1)[-1] for line in lines[:2]] == ["retry 1 of 2 in 1 s", "retry 2 of 2 in 2 s"]
    assert lines[2].endswith("after 3 attempt(s): sent to BatchDeadLetterQueue (RetriesExhausted)")


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_an_event_put_with_the_aws_cli_reaches_the_rule(local_stack: LocalStackHandle, tmp_path: Path) -> None:
    batch_id = f"e2e-cli-{uuid.uuid4().hex[:8]}"
    entries = [
        {
            "Source": "signin-links.batches",
            "DetailType": "MintSignInLinks",
            "Detail": json.dumps({"batch_id": batch_id, "user_ids": ["user_cli"]}),
            "EventBusName": local_stack.env("MintLinkFunction")["EVENT_BUS_NAME"],
        }
    ]
    (tmp_path / "entries.json").write_text(json.dumps(entries))
    env = {
        "PATH": "/usr/bin:/bin:" + str(Path(shutil.which("aws") or "").parent),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        ["aws", "events", "put-events", "--endpoint-url", local_stack.moto_endpoint, "--entries",
         f"file://{tmp_path / 'entries.json'}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: local_stack.item(token_id_for(batch_id, "user_cli")), timeout=60, interval=0.3)


def test_the_rules_that_cannot_run_locally_are_named(local_stack: LocalStackHandle) -> None:
    rules = {rule["origin"]: rule for rule in local_stack.state["rules"]}
    (mint,) = rules["MintLinkFunction.Events.MintBatch"]["targets"]
    assert mint["local"]
    assert mint["on_failure"] == "BatchDeadLetterQueue"
    assert mint["retries"] == 2
    (distributed,) = rules["MintBatchStateMachine.Events.DistributedBatch"]["targets"]
    assert not distributed["local"]
    assert "Step Functions" in distributed["not_local"]
    banner = local_stack.output()
    assert "MintBatchStateMachine.Events.DistributedBatch" in banner
    assert "NOT RUN LOCALLY" in banner
