"""The runbook for an AuditPipe outage longer than the stream's 24 hours (``ops/audit_rebuild.py``,
docs/operations.md): the events rebuilt from the table are the events the pipe delivered.

Real handlers make real changes on moto (mints, accepts that create sessions, a revoke, a session
revoked through the API); ``AuditPipe`` (the template's, emulated: ``tests/pipes.py``) delivers their
events to the bus; then the tool rebuilds the same window from the table alone and puts its events on
the bus with its own source. Both lists must be equal, detail for detail.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from ops import audit_rebuild
from tests.conftest import REGION, Stack, load_event
from tests.handlers import accept, invoke, mint, revoke_event
from tests.pipes import audit_pipe, bus_queue


def shape(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["detail-type"], json.dumps(event["detail"], sort_keys=True), second(event["time"])


def second(rfc3339: str) -> str:
    """An event's time to the second: EventBridge keeps no more (the pipe's Time has milliseconds)."""
    return rfc3339[:19] + "Z"


def test_the_rebuilt_events_are_the_ones_the_pipe_delivered(
    stack: Stack, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = audit_pipe(stack)
    delivered = bus_queue(stack)
    since = int(time.time() * 1000) - 1000
    accepted = [accept(context, mint(context, f"user_{n}")["token"]).json() for n in range(3)]
    revoked = mint(context, "user_revoked")
    assert invoke("mint_link", revoke_event(revoked["id"]), context).status == 200
    session = accepted[0]["created_session_id"]
    event = load_event("revoke_session.json")
    event["pathParameters"] = {"session_id": session}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sessions/{session}/revoke"
    assert invoke("sessions", event, context).status == 200
    assert pipe.drain() > 0
    by_pipe = sorted(shape(item) for item in delivered())
    # 3 accepted, 3 sessions created, 1 token revoked, 1 session revoked
    assert sorted(kind for kind, _, _ in by_pipe) == sorted(
        ["SignInTokenAccepted"] * 3 + ["SessionCreated"] * 3 + ["SignInTokenRevoked", "SessionRevoked"]
    )
    until = int(time.time() * 1000) + 1000
    window = ["--table", stack.table_name, "--since", iso(since), "--until", iso(until)]

    # Printed (no bus): JSON lines in commit order.
    session_client = boto3.session.Session(region_name=REGION)
    capsys.readouterr()  # the handlers' log lines so far
    assert audit_rebuild.main(window, session=session_client) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((e["detail_type"], json.dumps(e["detail"], sort_keys=True), second(e["time"])) for e in printed) == (
        by_pipe
    )
    assert [e["time"] for e in printed] == sorted(e["time"] for e in printed)

    # Put on the bus, with the tool's source: what a consumer receives is what the pipe sent.
    rebuilt = capture(stack, audit_rebuild.DEFAULT_SOURCE)
    assert audit_rebuild.main([*window, "--bus", stack.env["EVENT_BUS_NAME"]], session=session_client) == 0
    assert sorted(shape(item) for item in rebuilt()) == by_pipe

    # A window that ends before the first change rebuilds nothing.
    capsys.readouterr()
    assert audit_rebuild.main([*window[:4], "--until", iso(since + 1)], session=session_client) == 0
    assert capsys.readouterr().out == ""


def iso(milliseconds: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat(timespec="milliseconds")


def capture(stack: Stack, source: str) -> Any:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="rebuilt")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(Name="rebuilt", EventBusName=bus, EventPattern=json.dumps({"source": [source]}))
    stack.events.put_targets(Rule="rebuilt", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        found = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    return received


def test_window_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        audit_rebuild.main(["--table", "t", "--since", "2026-12-02T00:00Z", "--until", "2026-12-01T00:00Z"])
    assert audit_rebuild.epoch_ms("2026-12-01T00:00Z") == audit_rebuild.epoch_ms("2026-12-01T01:00+01:00")
    assert audit_rebuild.epoch_ms("2026-12-01T00:00") == 1_796_083_200_000  # no offset: UTC
