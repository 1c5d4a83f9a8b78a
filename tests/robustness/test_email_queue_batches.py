"""Property tests of the email queue (``signin_links.email_queue``): batches of SQS records of any shape
(minted links, duplicates of them, events of any shape, bodies that are not JSON, odd receive counts)
against any sequence of SES answers, delivered again and again as SQS would.

Invariants: a batch never fails as a whole (every message is answered on its own); a malformed
message goes back with no delay (to the dead-letter queue) and nothing else does; every other
message either finishes or goes back with a delay, its claim given back; across every redelivery
SES takes at most one email per token, no claim is left "sending", and no link of this stack with an
address is lost: once its messages are all done, its marker says sent, failed or unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from signin_links.email_queue import EmailQueue, QueueMessage, queue_messages
from signin_links.link_email import MalformedEvent, parse_minted
from signin_links.models import EMAIL_SENDING
from signin_links.send_pace import SendPace, SendQuota
from tests.email_world import BASE, PROPERTY, World, answers, event_of, minted_events, ses_exception, valid_detail


@dataclass
class FakeSqs:
    """ChangeMessageVisibilityBatch, recorded: receipt handle -> the delay set."""

    delays: dict[str, int] = field(default_factory=dict)

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10
        for entry in Entries:
            self.delays[entry["ReceiptHandle"]] = entry["VisibilityTimeout"]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def queue_for(world: World, sqs: FakeSqs, clock: Clock) -> EmailQueue:
    pace = SendPace(lambda: SendQuota(14, 50_000, 0), concurrency=2, clock=clock, sleep=clock.sleep)
    return EmailQueue(world.mailer(), pace, sqs=sqs, queue_url="https://sqs/queue", draw=lambda low, high: low)


TOKENS = [f"sit_{n:022d}" for n in range(4)]  # few, so that batches hold duplicates
ours = st.sampled_from(TOKENS).map(lambda token_id: event_of(valid_detail(token_id, {"email": "ada@example.com"})))
bodies = (
    ours.map(json.dumps)
    | minted_events().map(json.dumps)
    | st.sampled_from(["", "not json", "{", "[1, 2]", "null", '"text"', "\ud800", "{}", "[" * 3000])
    | st.text(max_size=40)
)
batches = st.lists(st.tuples(bodies, st.integers(min_value=0, max_value=40)), min_size=1, max_size=10)


def malformed(body: str) -> bool:
    try:
        parse_minted(json.loads(body), BASE)
    except MalformedEvent:
        return True
    except Exception:  # not JSON, or an ignored (foreign) event: the first is malformed too
        try:
            json.loads(body)
        except ValueError:
            return True
        except RecursionError:
            return True
    return False


def addressed_token(body: str) -> str | None:
    """The token of a well-formed, deliverable link of this stack, if the body is one."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return None
    detail = event["detail"]
    if event == event_of(valid_detail(str(detail.get("sign_in_token_id")), {"email": "ada@example.com"})):
        return str(detail["sign_in_token_id"])
    return None


@PROPERTY
@given(batch=batches, script=st.lists(answers, max_size=12))
@example(batch=[(json.dumps(event_of(valid_detail(TOKENS[0], {"email": "ada@example.com"}))), 1)] * 2, script=[])
@example(
    batch=[("not json", 1), (json.dumps(event_of(valid_detail(TOKENS[1], {"email": "a@example.com"}))), 3)], script=[]
)
def test_any_batch_is_answered_message_by_message_and_no_link_is_lost_or_mailed_twice(
    batch: list[tuple[str, int]], script: list[tuple[str, str]]
) -> None:
    world, sqs, clock = World(), FakeSqs(), Clock()
    world.ses.script = [ses_exception(kind, code) for kind, code in script]
    queue = queue_for(world, sqs, clock)
    pending = [QueueMessage(f"m-{n}", f"rh-{n}-0", body, count) for n, (body, count) in enumerate(batch)]
    done: list[QueueMessage] = []
    for round_ in range(1, 30):  # SQS delivers what came back, until nothing does (the script runs out)
        if not pending:
            break
        response = queue.handle(pending, lambda: 55_000)
        returned = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        ids = [message.message_id for message in pending]
        assert len(set(returned)) == len(returned)
        assert set(returned) <= set(ids)
        next_round = []
        for message in pending:
            if message.message_id not in returned:
                done.append(message)
                continue
            delay = sqs.delays[message.receipt_handle]
            assert (delay == 0) == malformed(message.body), message.body
            assert delay <= 3600
            if delay == 0:
                continue  # to the dead-letter queue, eventually: not redelivered here
            next_round.append(
                QueueMessage(
                    message.message_id, f"rh-{message.message_id}-{round_}", message.body, message.receive_count + 1
                )
            )
        pending = next_round
    assert not pending  # once SES answers, everything finishes
    # SES took at most one email per token, and no claim is left behind.
    accepted = [request["EmailTags"][0]["Value"] for request in world.ses.accepted]
    assert len(accepted) == len(set(accepted))
    assert all(marker.status != EMAIL_SENDING for marker in world.store.markers.values())
    # A deliverable link of this stack whose messages are all done has its outcome recorded.
    for message in done:
        token_id = addressed_token(message.body)
        if token_id is not None:
            marker = world.store.markers.get(token_id)
            assert marker is not None, token_id
            assert marker.status in ("sent", "failed", "unknown")
            assert (token_id in accepted) == (marker.status == "sent")


odd_values = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.lists(st.integers(), max_size=2)
records = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "messageId": st.text(max_size=12) | odd_values,
            "receiptHandle": odd_values,
            "body": bodies | odd_values,
            "attributes": st.dictionaries(st.sampled_from(["ApproximateReceiveCount", "SentTimestamp"]), odd_values)
            | odd_values,
        },
    )
    | odd_values,
    max_size=10,
)


@PROPERTY
@given(event_records=records)
def test_any_sqs_record_shape_is_read_or_refuses_the_whole_batch_by_name(event_records: list[Any]) -> None:
    """Lambda always gives a messageId; a record without one cannot be answered on its own, so the
    batch is refused (ValueError naming it) and every message comes back. Anything else is read,
    and its batch answered message by message."""
    try:
        messages = queue_messages({"Records": event_records})
    except ValueError as exc:
        assert "messageId" in str(exc)
        return
    assert all(isinstance(m.message_id, str) and m.message_id for m in messages)
    assert all(isinstance(m.body, str) and isinstance(m.receipt_handle, str) for m in messages)
    assert all(isinstance(m.receive_count, int) and m.receive_count >= 0 for m in messages)
    world, sqs, clock = World(), FakeSqs(), Clock()
    unique = list({m.message_id: m for m in messages}.values())
    response = queue_for(world, sqs, clock).handle(unique, lambda: 55_000)
    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} <= {m.message_id for m in unique}
