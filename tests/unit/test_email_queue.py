"""The email queue's pure parts (``signin_links.email_queue``): how long a returned message waits, how
long a refused one survives before the dead-letter queue, and the SQS event's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signin_links.email_queue import (
    MAX_RECEIVE_COUNT,
    RETURN_DELAY_BASE_S,
    RETURN_DELAY_CAP_S,
    QueueMessage,
    is_queue_event,
    message_event,
    queue_messages,
    return_delay,
    survival_seconds,
)
from signin_links.link_email import MalformedEvent

HIGH = lambda low, high: high  # noqa: E731 - the jitter's top
LOW = lambda low, high: low  # noqa: E731


def test_returns_wait_30_s_doubling_to_an_hour_less_their_jitter() -> None:
    assert [return_delay(n, HIGH) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert return_delay(1, LOW) == 24
    assert return_delay(10**9, HIGH) == RETURN_DELAY_CAP_S
    assert return_delay(0, HIGH) == RETURN_DELAY_BASE_S  # a missing or odd receive count: the first
    assert return_delay(-5, HIGH) == RETURN_DELAY_BASE_S


def test_a_refused_message_survives_about_a_day_before_the_dead_letter_queue() -> None:
    """The arithmetic behind the template's maxReceiveCount: a message comes back only when SES
    refused it (the pace sends each batch within its invocation), and each return waits longer; to
    reach the DLQ a message must be refused on all MAX_RECEIVE_COUNT receives, which takes at least
    19 hours (every delay at its jitter's low end). A 1,000,000-user batch at 14 emails/s is in the
    queue ~20 h in all, so a backlog alone never sends a message there."""
    least = survival_seconds(MAX_RECEIVE_COUNT)
    assert least == pytest.approx(0.8 * (30 + 60 + 120 + 240 + 480 + 960 + 1920 + 23 * 3600))
    assert least >= 19 * 3600
    # Each of those receives was a refusal: at most one SendEmail each, spaced by its delay.
    assert sum(return_delay(n, LOW) for n in range(1, MAX_RECEIVE_COUNT + 1)) == pytest.approx(least, abs=30)
    assert survival_seconds(MAX_RECEIVE_COUNT - 1) < least


def record(message_id: str = "m-1", body: str = "{}", count: Any = "1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": count},
        "eventSource": "aws:sqs",
    }


def test_queue_messages_reads_lambdas_sqs_records() -> None:
    event = {"Records": [record("a", "x", "3"), record("b", "y", "1")]}
    assert is_queue_event(event)
    assert queue_messages(event) == [QueueMessage("a", "rh-a", "x", 3), QueueMessage("b", "rh-b", "y", 1)]


@pytest.mark.parametrize("count", ["", "x", "-1", "1e3", "\u0661", "9" * 40, None, 5])
def test_an_odd_receive_count_counts_as_a_first_receive(count: Any) -> None:
    (message,) = queue_messages({"Records": [record(count=count)]})
    assert message.receive_count == (5 if count == 5 else 1)


def test_a_record_without_a_body_has_an_empty_one_and_without_an_id_fails_the_batch() -> None:
    (message,) = queue_messages({"Records": [{"messageId": "m", "body": 42}]})
    assert message.body == ""
    assert message.receipt_handle == ""
    for bad in ({"messageId": ""}, {"messageId": 7}, "text", {}):
        with pytest.raises(ValueError, match="messageId"):
            queue_messages({"Records": [record(), bad]})


def test_events_invoked_directly_are_not_queue_events() -> None:
    assert not is_queue_event({"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": {}})
    assert not is_queue_event({"Records": "none"})
    assert not is_queue_event([])


def test_message_event_is_the_body_or_the_event_a_destination_record_carries() -> None:
    event = {"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": {"user_id": "u"}}
    assert message_event(json.dumps(event)) == event
    record_body = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
    assert message_event(json.dumps(record_body)) == event
    assert message_event("[1, 2]") == [1, 2]  # JSON, but no event: prepare() calls it malformed


@pytest.mark.parametrize("body", ["", "not json", "{", "\ud800", "[" * 100_000])
def test_a_body_that_is_not_json_is_malformed(body: str) -> None:
    with pytest.raises(MalformedEvent):
        message_event(body)
