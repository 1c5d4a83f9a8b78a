"""Audit events through the emulated AuditPipe (``local/pipes.py``): the local stack reads the table's
stream and puts the same events on the local bus as the pipe does in AWS. N accepts give N events,
also when EventBridge is briefly unavailable to the pipe; attempts that write nothing give none (a
refused accept is a cancelled transaction: no session, no SessionCreated)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import LocalStackHandle, running_stack

ACCEPTS = 12


def subscribe(stack: LocalStackHandle, name: str) -> Callable[[], list[dict[str, Any]]]:
    """An SQS queue on the stack's moto receiving every ``signin-links`` event of its bus."""
    sqs, events = stack.aws("sqs"), stack.aws("events")
    bus = stack.state["event_buses"]["EventBus"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["signin-links"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    found: list[dict[str, Any]] = []

    def received() -> list[dict[str, Any]]:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return list(found)
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    return received


def wait_for(
    received: Callable[[], list[dict[str, Any]]],
    count: int,
    timeout: float = 60,
    until: Callable[[list[dict[str, Any]]], bool] = lambda got: True,
) -> list[dict[str, Any]]:
    """What arrived once at least ``count`` events did and ``until`` holds (or at the timeout)."""
    deadline = time.monotonic() + timeout
    events = received()
    while not (len(events) >= count and until(events)) and time.monotonic() < deadline:
        time.sleep(0.3)
        events = received()
    return events


def accept(stack: LocalStackHandle, token: str, cookie: str | None = None) -> int:
    headers = {"Accept": "application/json", **({"Cookie": f"__session={cookie}"} if cookie else {})}
    with stack.client() as api:
        return api.post("/accept-token", json={"token": token}, headers=headers).status_code


def test_n_accepts_give_n_events_even_when_eventbridge_is_briefly_unavailable(tmp_path: Path) -> None:
    with running_stack(tmp_path, env={"LOCAL_PIPE_PUT_EVENTS_FAILURES": "3"}) as stack:
        received = subscribe(stack, "audit-e2e")
        minted = [stack.mint(f"user_audit_{n}") for n in range(ACCEPTS + 1)]
        sentinel = stack.mint("user_audit_sentinel")
        with stack.client(headers={"Accept": "application/json"}) as api:
            first = api.post("/accept-token", json={"token": minted[0]["token"]})
        assert first.status_code == 200
        session = first.json()["session_token"]
        for item in minted[1:ACCEPTS]:
            assert accept(stack, item["token"]) == 200
        assert accept(stack, minted[0]["token"], cookie=session) == 200  # same-browser retry: no write
        assert accept(stack, minted[0]["token"]) == 400  # already used: no write
        with stack.client() as api:
            assert api.post(f"/v1/sign_in_tokens/{minted[ACCEPTS]['id']}/revoke").status_code == 200
        assert accept(stack, minted[ACCEPTS]["token"]) == 400  # revoked: no write

        # Each accept is one transaction, two changes: its token accepted and its session created.
        events = wait_for(received, 2 * ACCEPTS + 1)
        # A sentinel: one more change, after all of them. The pipe reads the stream in order and
        # finishes a batch (its retries included) before the next, so once the sentinel's event
        # arrived, a duplicate of an earlier one would have arrived before it.
        with stack.client() as api:
            assert api.post(f"/v1/sign_in_tokens/{sentinel['id']}/revoke").status_code == 200
        everything = wait_for(
            received,
            len(events) + 1,
            until=lambda got: any(e["detail"].get("sign_in_token_id") == sentinel["id"] for e in got),
        )
        events = [event for event in everything if event["detail"].get("sign_in_token_id") != sentinel["id"]]
        output = stack.output()

    accepted = [event for event in events if event["detail-type"] == "SignInTokenAccepted"]
    revoked = [event for event in events if event["detail-type"] == "SignInTokenRevoked"]
    created = [event for event in events if event["detail-type"] == "SessionCreated"]
    assert len(events) == 2 * ACCEPTS + 1, [event["detail-type"] for event in events]
    assert sorted(event["detail"]["sign_in_token_id"] for event in accepted) == sorted(
        item["id"] for item in minted[:ACCEPTS]
    )
    assert all(event["detail"]["session_id"].startswith("sess_") for event in accepted)
    # One session per accept; the retry and the refused attempts (cancelled transactions) made none.
    assert sorted(event["detail"]["session_id"] for event in created) == sorted(
        event["detail"]["session_id"] for event in accepted
    )
    assert not any(event["detail"]["retried"] for event in accepted)
    assert [event["detail"] for event in revoked] == [
        {"sign_in_token_id": minted[ACCEPTS]["id"], "user_id": minted[ACCEPTS]["user_id"]}
    ]
    assert all(event["source"] == "signin-links" for event in events)
    assert "PutEvents failed: ServiceUnavailable" in output, "the outage was not injected"
    assert "gave up" not in output
    assert "left out" not in output
    assert all(item["token"] not in json.dumps(events) for item in minted)
