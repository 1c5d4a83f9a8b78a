"""EventBridge Pipes, emulated: each ``AWS::Pipes::Pipe`` of ``template.yaml`` whose source is a
DynamoDB stream, run against moto (which has DynamoDB Streams but no Pipes).

Everything comes from the template (its resolved properties, no second list):

* **Source**: the table's stream, read shard by shard with ``GetShardIterator`` (``StartingPosition``)
  and ``GetRecords``, every ``poll_interval`` seconds. Records are handed on in the shape Pipes
  gives them (``eventID``, ``eventName``, ``dynamodb`` with ``Keys``/``NewImage``/``OldImage``,
  ``ApproximateCreationDateTime`` in epoch seconds, ``eventSourceARN``).
* **Filters**: ``FilterCriteria.Filters[].Pattern``, matched with moto's EventBridge pattern matcher;
  a record matching any filter is kept, the others are dropped (and their place in the stream passed).
* **Batches** of ``BatchSize`` kept records, in stream order, one batch at a time per shard: the next
  batch waits until this one is delivered or given up (as Pipes keeps a shard's order).
* **Enrichment**: the function named by ``Enrichment`` (a function of the template) invoked with the
  batch (a JSON array); its answer (an array) is what the target receives.
* **Target** (an event bus): per element, ``InputTemplate`` rendered (placeholders ``<$.path>``,
  quoted or not, and the ``<aws.pipes.*>`` variables) into the event's detail; ``Source``,
  ``DetailType``, ``Time`` and ``Resources`` of ``EventBridgeEventBusParameters``, each either a
  value or a dynamic path (``$.path``) into the element; ``PutEvents`` in calls of 10.
* **Retries**: a failed enrichment, a failed ``PutEvents`` call, or failed entries (only those are
  sent again) are retried with exponential backoff up to ``MaximumRetryAttempts`` (-1: for ever);
  then the batch is described (shard, first and last sequence number, reason) in the
  ``DeadLetterConfig`` queue and the pipe moves on. A placeholder or dynamic path that finds nothing
  drops that one element with a message: AWS does not document what Pipes does then, so the
  emulation refuses rather than guess (a template that relies on it fails its tests).

Delivery is at least once and in order per shard; the delay is the poll interval plus the
enrichment and ``PutEvents``. ``faulty_put_events`` makes the first calls fail, to try the retries.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local.input_templates import TemplateError, dynamic, render_template

MAX_ENTRIES_PER_CALL = 10


@dataclass(frozen=True)
class PipeSpec:
    """The resolved properties of one pipe, as the emulation uses them."""

    logical_id: str
    name: str
    arn: str
    source_arn: str
    target_arn: str
    filters: tuple[str, ...] = ()
    batch_size: int = 10
    starting_position: str = "TRIM_HORIZON"
    max_retry_attempts: int = -1
    dead_letter_arn: str = ""
    enrichment_arn: str = ""
    enrichment_template: str = ""
    input_template: str = ""
    bus_parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, logical_id: str, name: str, arn: str, props: Mapping[str, Any]) -> PipeSpec:
        source = props.get("SourceParameters") or {}
        stream = source.get("DynamoDBStreamParameters") or {}
        filters = ((source.get("FilterCriteria") or {}).get("Filters")) or []
        target = props.get("TargetParameters") or {}
        return cls(
            logical_id=logical_id,
            name=name,
            arn=arn,
            source_arn=str(props["Source"]),
            target_arn=str(props["Target"]),
            filters=tuple(str(item["Pattern"]) for item in filters),
            batch_size=int(stream.get("BatchSize", 10)),
            starting_position=str(stream.get("StartingPosition", "TRIM_HORIZON")),
            max_retry_attempts=int(stream.get("MaximumRetryAttempts", -1)),
            dead_letter_arn=str((stream.get("DeadLetterConfig") or {}).get("Arn", "")),
            enrichment_arn=str(props.get("Enrichment") or ""),
            enrichment_template=str((props.get("EnrichmentParameters") or {}).get("InputTemplate") or ""),
            input_template=str(target.get("InputTemplate") or ""),
            bus_parameters=dict(target.get("EventBridgeEventBusParameters") or {}),
        )

    @property
    def is_stream_to_bus(self) -> bool:
        return ":dynamodb:" in self.source_arn and "/stream/" in self.source_arn and ":events:" in self.target_arn


def faulty_put_events(events: Any, failures: int) -> Any:
    """An events client whose first ``failures`` PutEvents calls fail as an unavailable EventBridge."""
    return _FaultyEvents(events, failures)


class _FaultyEvents:
    def __init__(self, client: Any, failures: int) -> None:
        self._client = client
        self.failures_left = failures
        self._lock = threading.Lock()

    def put_events(self, **kwargs: Any) -> Any:
        with self._lock:
            fail = self.failures_left > 0
            self.failures_left -= int(fail)
        if fail:
            error = {"Error": {"Code": "ServiceUnavailable", "Message": "injected by LOCAL_PIPE_PUT_EVENTS_FAILURES"}}
            raise ClientError(error, "PutEvents")  # type: ignore[arg-type]
        return self._client.put_events(**kwargs)


Enrich = Callable[[str, list[dict[str, Any]]], Any]


@dataclass
class PipeStats:
    delivered: int = 0
    filtered_out: int = 0
    dropped: int = 0  # elements a template or dynamic path could not be applied to
    dead_lettered_batches: int = 0
    retries: int = 0


class PipeEmulator:
    """One pipe from a DynamoDB stream on moto to an event bus on moto (see the module's docstring)."""

    def __init__(
        self,
        spec: PipeSpec,
        *,
        streams: Any,
        events: Any,
        sqs: Any = None,
        enrich: Enrich | None = None,
        poll_interval: float = 0.2,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ) -> None:
        from moto.events.models import EventPattern

        self.spec = spec
        self._streams = streams
        self._events = events
        self._sqs = sqs
        self._enrich = enrich
        self._patterns = [EventPattern.load(pattern) for pattern in spec.filters]
        self.poll_interval = poll_interval
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._iterators: dict[str, str | None] = {}
        self.stats = PipeStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> PipeEmulator:
        self._thread = threading.Thread(target=self._run, name=f"pipe-{self.spec.logical_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (ClientError, BotoCoreError) as exc:  # the emulator itself is unreachable: try again
                self._log(f"!! {self.spec.logical_id}: reading the stream failed ({type(exc).__name__}); retrying")
            except Exception as exc:  # a bug in the emulation: report it, keep the stack up
                self._log(f"!! {self.spec.logical_id}: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_interval)

    def drain(self, *, timeout: float = 30.0) -> int:
        """Poll until the stream has nothing new (tests, in process); the number of events delivered."""
        before = self.stats.delivered
        deadline = time.monotonic() + timeout
        while self.poll_once() and time.monotonic() < deadline:
            pass
        return self.stats.delivered - before

    # -- reading the stream ---------------------------------------------------------------------

    def poll_once(self) -> int:
        """Read each shard once and deliver what its filters keep; the number of records read."""
        read = 0
        for shard in self._shards():
            iterator = self._iterators.get(shard)
            if iterator is None:
                continue
            response = self._streams.get_records(ShardIterator=iterator)
            self._iterators[shard] = response.get("NextShardIterator")
            records = [self._as_pipe_record(record) for record in response.get("Records", [])]
            read += len(records)
            kept = [record for record in records if self._kept(record)]
            self.stats.filtered_out += len(records) - len(kept)
            for start in range(0, len(kept), max(1, self.spec.batch_size)):
                if self._stop.is_set():
                    return read
                self._deliver(shard, kept[start : start + self.spec.batch_size])
        return read

    def _shards(self) -> list[str]:
        description = self._streams.describe_stream(StreamArn=self.spec.source_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self.spec.source_arn, ShardId=shard_id, ShardIteratorType=self.spec.starting_position
                )["ShardIterator"]
        return list(self._iterators)

    def _as_pipe_record(self, record: dict[str, Any]) -> dict[str, Any]:
        data = dict(record.get("dynamodb") or {})
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            data["ApproximateCreationDateTime"] = int(created.timestamp())
        return {**record, "dynamodb": data, "eventSourceARN": self.spec.source_arn}

    def _kept(self, record: dict[str, Any]) -> bool:
        event: Any = record  # moto's matcher takes any JSON object (typed as an EventBridge event)
        return not self._patterns or any(pattern.matches_event(event) for pattern in self._patterns)

    # -- delivering one batch -------------------------------------------------------------------

    def _deliver(self, shard: str, batch: list[dict[str, Any]]) -> None:
        attempts = self.spec.max_retry_attempts
        pending: list[dict[str, Any]] | None = None  # entries still to put, once the batch is built
        attempt = 0
        reason = ""
        while not self._stop.is_set():
            if attempt:
                self.stats.retries += 1
                self._sleep(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
            try:
                if pending is None:
                    pending = self._entries(self._enriched(batch))
                pending = self._put(pending)
                if not pending:
                    return
                reason = f"{len(pending)} entries failed"
            except _EnrichmentFailed as exc:
                reason = f"enrichment failed: {exc}"
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                reason = f"PutEvents failed: {code or type(exc).__name__}"
            attempt += 1
            self._log(f"{self.spec.logical_id}: {reason}; attempt {attempt} of the batch, retrying")
            if 0 <= attempts < attempt:
                self._dead_letter(shard, batch, reason)
                return

    def _enriched(self, batch: list[dict[str, Any]]) -> list[Any]:
        if not self.spec.enrichment_arn or self._enrich is None:
            return list(batch)
        payload = batch
        if self.spec.enrichment_template:
            template = self.spec.enrichment_template
            payload = [render_template(template, record, self._reserved(record)) for record in batch]
        try:
            answer = self._enrich(self.spec.enrichment_arn, payload)
        except Exception as exc:  # the function failed: Pipes retries the batch
            raise _EnrichmentFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if answer is None or answer == []:
            return []
        return answer if isinstance(answer, list) else [answer]

    def _entries(self, elements: Sequence[Any]) -> list[dict[str, Any]]:
        entries = []
        params = self.spec.bus_parameters
        for element in elements:
            try:
                detail = render_template(self.spec.input_template, element, self._reserved(element))
                if not isinstance(detail, dict):
                    raise TemplateError("the rendered detail is not a JSON object")
                entry: dict[str, Any] = {
                    "Source": str(dynamic(params.get("Source", "Amazon EventBridge Pipes"), element)),
                    "DetailType": str(dynamic(params.get("DetailType", "Event from aws:dynamodb"), element)),
                    "Detail": json.dumps(detail, separators=(",", ":")),
                    "EventBusName": self.spec.target_arn,
                }
                if params.get("Time"):
                    entry["Time"] = datetime.fromisoformat(str(dynamic(params["Time"], element)).replace("Z", "+00:00"))
                if params.get("Resources"):
                    entry["Resources"] = [str(dynamic(item, element)) for item in params["Resources"]]
            except (TemplateError, ValueError) as exc:
                self.stats.dropped += 1
                self._log(f"!! {self.spec.logical_id}: an event left out: {exc}")
                continue
            entries.append(entry)
        return entries

    def _put(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put ``entries``; returns those that failed (to be sent again)."""
        failed: list[dict[str, Any]] = []
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            chunk = entries[start : start + MAX_ENTRIES_PER_CALL]
            try:
                results = self._events.put_events(Entries=chunk).get("Entries", [])
            except (ClientError, BotoCoreError):
                if start == 0:
                    raise
                return failed + entries[start:]  # a later call failed: what was delivered stays delivered
            for entry, result in zip(chunk, results, strict=False):
                if result.get("ErrorCode"):
                    failed.append(entry)
                else:
                    self.stats.delivered += 1
            failed.extend(chunk[len(results) :])
        return failed

    def _dead_letter(self, shard: str, batch: list[dict[str, Any]], reason: str) -> None:
        self.stats.dead_lettered_batches += 1
        numbers = [record.get("dynamodb", {}).get("SequenceNumber") for record in batch]
        message = {
            "pipe": self.spec.arn,
            "source": self.spec.source_arn,
            "shardId": shard,
            "firstSequenceNumber": numbers[0] if numbers else None,
            "lastSequenceNumber": numbers[-1] if numbers else None,
            "batchSize": len(batch),
            "reason": reason,
        }
        self._log(f"!! {self.spec.logical_id}: gave up on a batch of {len(batch)} ({reason})")
        if self.spec.dead_letter_arn and self._sqs is not None:
            name = self.spec.dead_letter_arn.rsplit(":", 1)[-1]
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))

    def _reserved(self, event: Any) -> dict[str, Any]:
        return {
            "aws.pipes.pipe-arn": self.spec.arn,
            "aws.pipes.pipe-name": self.spec.name,
            "aws.pipes.source-arn": self.spec.source_arn,
            "aws.pipes.enrichment-arn": self.spec.enrichment_arn,
            "aws.pipes.target-arn": self.spec.target_arn,
            "aws.pipes.event.ingestion-time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "aws.pipes.event": event,
            "aws.pipes.event.json": event,
        }


class _EnrichmentFailed(Exception):
    pass
