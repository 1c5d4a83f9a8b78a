"""The EventBridge Pipes emulation (``local/pipes.py``) on fake clients: input templates and dynamic
parameters, filters, order, retries of failed calls and of failed entries only, dead letters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from local.input_templates import MISSING, TemplateError, dynamic, json_path, render_template
from local.pipes import PipeEmulator, PipeSpec

RESERVED = {"aws.pipes.pipe-name": "audit", "aws.pipes.event": {"a": 1}}


def test_json_paths_follow_dots_and_indices_and_say_when_nothing_is_there() -> None:
    payload = {"a": {"b": [{"c": "x"}, {"c": "y"}]}, "d-e": 1}
    assert json_path(payload, "$") is payload
    assert json_path(payload, "$.a.b[1].c") == "y"
    assert json_path(payload, "$.d-e") == 1
    assert json_path(payload, "$.a.missing") is MISSING
    assert json_path(payload, "$.a.b[7]") is MISSING
    with pytest.raises(TemplateError):
        json_path(payload, "$.a.b[*].c")
    with pytest.raises(TemplateError):
        json_path(payload, "a.b")


def test_placeholders_insert_text_inside_quotes_and_json_outside() -> None:
    payload = {"id": 'sit_"1"', "n": 7, "detail": {"x": [1, 2]}}
    rendered = render_template('{"id": "<$.id>", "n": <$.n>, "n2": "<$.n>", "d": <$.detail>}', payload, RESERVED)
    assert rendered == {"id": 'sit_"1"', "n": 7, "n2": "7", "d": {"x": [1, 2]}}
    assert render_template("<$.detail>", payload, RESERVED) == {"x": [1, 2]}
    assert render_template('{"pipe": "<aws.pipes.pipe-name>", "e": <aws.pipes.event>}', payload, RESERVED) == {
        "pipe": "audit",
        "e": {"a": 1},
    }
    assert render_template("Hello, <$.id>!", {"id": "you"}, RESERVED) == "Hello, you!"
    assert render_template("", payload, RESERVED) is payload


def test_a_placeholder_that_finds_nothing_is_refused_rather_than_guessed() -> None:
    with pytest.raises(TemplateError, match="finds nothing"):
        render_template('{"s": "<$.session_id>"}', {"id": "x"}, RESERVED)
    with pytest.raises(TemplateError, match="outside quotes"):
        render_template('{"d": "<$.detail>"}', {"detail": {}}, RESERVED)
    with pytest.raises(TemplateError, match="finds nothing"):
        dynamic("$.detail_type", {})
    assert dynamic("signin-links", {}) == "signin-links"
    assert dynamic("$.t", {"t": "SignInTokenAccepted"}) == "SignInTokenAccepted"


# --- the emulator on fake clients -------------------------------------------------------------


class FakeStreams:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.position = 0

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ShardIteratorType"] == "TRIM_HORIZON"
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str) -> dict[str, Any]:
        start = int(ShardIterator)
        return {"Records": self.records[start:], "NextShardIterator": str(len(self.records))}


class FakeEvents:
    """Fails whole calls while ``outage`` > 0, and the entries whose detail id is in ``reject`` once."""

    def __init__(self, outage: int = 0, reject: set[str] | None = None) -> None:
        self.outage = outage
        self.reject = set(reject or ())
        self.delivered: list[dict[str, Any]] = []
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        assert len(Entries) <= 10
        if self.outage:
            self.outage -= 1
            raise EndpointConnectionError(endpoint_url="https://events.invalid")
        results = []
        for entry in Entries:
            key = json.loads(entry["Detail"])["id"]
            if key in self.reject:
                self.reject.discard(key)
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.delivered.append(entry)
                results.append({"EventId": key})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def stream_record(n: int, status: str = "accepted") -> dict[str, Any]:
    return {
        "eventID": f"e{n}",
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": f"sit_{n}"}},
            "OldImage": {"status": {"S": "pending"}},
            "NewImage": {"status": {"S": status}},
            "SequenceNumber": str(100 + n),
        },
    }


SPEC = PipeSpec(
    logical_id="AuditPipe",
    name="audit",
    arn="arn:aws:pipes:us-east-1:123456789012:pipe/audit",
    source_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1",
    target_arn="arn:aws:events:us-east-1:123456789012:event-bus/b",
    filters=('{"dynamodb": {"NewImage": {"status": {"S": ["accepted"]}}}}',),
    batch_size=10,
    max_retry_attempts=5,
    dead_letter_arn="arn:aws:sqs:us-east-1:123456789012:dlq",
    enrichment_arn="arn:aws:lambda:us-east-1:123456789012:function:enrich",
    input_template="<$.detail>",
    bus_parameters={"Source": "signin-links", "DetailType": "$.type", "Time": "$.time"},
)


def enrich(arn: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    time = "2026-11-24T14:00:00.000Z"
    return [{"type": "Accepted", "time": time, "detail": {"id": item["dynamodb"]["Keys"]["pk"]["S"]}} for item in batch]


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))


def emulator(events: FakeEvents, records: list[dict[str, Any]], **kwargs: Any) -> tuple[PipeEmulator, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("enrich", enrich)
    streams = FakeStreams(records)
    pipe = PipeEmulator(SPEC, streams=streams, events=events, sleep=sleeps.append, log=lambda _: None, **kwargs)
    return pipe, sleeps


def test_kept_records_become_events_in_stream_order_in_calls_of_ten() -> None:
    records = [stream_record(n, "accepted" if n % 3 else "revoked") for n in range(25)]
    events = FakeEvents()
    pipe, sleeps = emulator(events, records)
    assert pipe.drain() == 16
    assert [json.loads(entry["Detail"])["id"] for entry in events.delivered] == [f"sit_{n}" for n in range(25) if n % 3]
    entry = events.delivered[0]
    assert entry["Source"] == "signin-links"
    assert entry["DetailType"] == "Accepted"
    assert entry["EventBusName"] == SPEC.target_arn
    assert entry["Time"].isoformat() == "2026-11-24T14:00:00+00:00"
    assert pipe.stats.filtered_out == 9
    assert not sleeps
    assert pipe.drain() == 0


def test_an_outage_is_retried_with_backoff_and_loses_nothing() -> None:
    events = FakeEvents(outage=3)
    pipe, sleeps = emulator(events, [stream_record(n) for n in range(4)])
    assert pipe.drain() == 4
    assert len(events.delivered) == 4
    assert sleeps == [0.05, 0.1, 0.2]


def test_failed_entries_alone_are_sent_again_so_none_is_duplicated() -> None:
    events = FakeEvents(reject={"sit_1", "sit_3"})
    pipe, _ = emulator(events, [stream_record(n) for n in range(5)])
    assert pipe.drain() == 5
    ids = [json.loads(entry["Detail"])["id"] for entry in events.delivered]
    assert sorted(ids) == [f"sit_{n}" for n in range(5)]
    assert len(ids) == len(set(ids))
    assert events.calls == 2


def test_a_failing_enrichment_is_retried_then_the_batch_is_dead_lettered() -> None:
    def broken(arn: str, batch: list[dict[str, Any]]) -> Any:
        raise RuntimeError("boom")

    sqs = FakeSqs()
    events = FakeEvents()
    pipe, sleeps = emulator(events, [stream_record(1), stream_record(2)], enrich=broken, sqs=sqs)
    pipe.drain()
    assert events.delivered == []
    assert len(sleeps) == 5  # MaximumRetryAttempts: 5
    assert pipe.stats.dead_lettered_batches == 1
    assert sqs.sent == [
        {
            "pipe": SPEC.arn,
            "source": SPEC.source_arn,
            "shardId": "shard-1",
            "firstSequenceNumber": "101",
            "lastSequenceNumber": "102",
            "batchSize": 2,
            "reason": "enrichment failed: RuntimeError: boom",
        }
    ]


def test_an_element_the_template_cannot_render_is_left_out_and_the_rest_delivered() -> None:
    def partial(arn: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = enrich(arn, batch)
        del answer[0]["type"]
        return answer

    events = FakeEvents()
    pipe, _ = emulator(events, [stream_record(1), stream_record(2)], enrich=partial)
    assert pipe.drain() == 1
    assert pipe.stats.dropped == 1
    assert [json.loads(entry["Detail"])["id"] for entry in events.delivered] == ["sit_2"]


def test_a_whole_call_failing_after_an_earlier_one_resends_only_the_rest() -> None:
    class SecondCallFails(FakeEvents):
        failed = False

        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            if self.calls == 1 and not self.failed:
                self.failed = True
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "PutEvents")
            return super().put_events(Entries=Entries)

    events = SecondCallFails()
    pipe, _ = emulator(events, [stream_record(n) for n in range(15)])
    assert pipe.drain() == 15
    ids = [json.loads(entry["Detail"])["id"] for entry in events.delivered]
    assert ids == [f"sit_{n}" for n in range(15)]
