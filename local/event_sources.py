"""Lambda's SQS event source mappings, emulated: the template's queues feeding its functions.

moto has SQS but no event source mappings (it cannot invoke a function without Docker). For every
``AWS::Lambda::EventSourceMapping`` whose source is an SQS queue, and every SAM ``SQS`` event of a
function, the local stack polls the queue and invokes the function as Lambda does:

* **Batches**: ``ReceiveMessage`` (all attributes, no long polling: the emulator serves one request
  at a time) up to ``BatchSize`` messages, gathering for up to ``MaximumBatchingWindowInSeconds``
  when the batch is not full; the function gets Lambda's SQS event (``Records`` with ``messageId``,
  ``receiptHandle``, ``body``, ``attributes`` such as ``ApproximateReceiveCount``,
  ``messageAttributes``, ``md5OfBody``, ``eventSource``, ``eventSourceARN``, ``awsRegion``).
* **Concurrency**: up to ``ScalingConfig.MaximumConcurrency`` invocations at once (never more than
  the function's local execution environments, ``LOCAL_CONCURRENCY``). A poller that has no free
  invocation does not receive: messages are never read only to wait, as with the real setting.
* **Results**: a failed invocation deletes nothing (every message of the batch comes back when
  its visibility timeout runs out). A successful one deletes its messages, except, with
  ``FunctionResponseTypes: [ReportBatchItemFailures]``, those its ``batchItemFailures`` name. A
  response with an empty or null list (or no response) is a complete success; an item whose
  ``itemIdentifier`` is missing, empty, not a string or not one of the batch's message ids makes
  the whole batch a failure (Lambda's documented rules; the last one is the emulation's reading).
* **Redrive**: moto applies the queue's ``RedrivePolicy`` when it receives: a message received
  ``maxReceiveCount`` times moves to the dead-letter queue, as SQS does.

``FilterCriteria`` and non-SQS sources (streams, Kafka) are not emulated: the stack lists them, with
the reason, rather than run them differently from AWS. The stack's log shows each batch (mapping,
messages, failures, milliseconds), never a message body.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.account import REGION
from local.emulator import aws_client
from local.invocation import InvocationError, LambdaContext
from local.runtime import LocalFunction

DEFAULT_BATCH_SIZE = 10
MAX_RECEIVE = 10  # ReceiveMessage's own limit
POLL_IDLE_S = 0.1  # between polls of an empty queue


@dataclass(frozen=True)
class QueueSource:
    """One SQS event source mapping of the template, resolved."""

    logical_id: str
    origin: str  # where the template declares it, for people
    function: str | None  # logical id of the function it invokes (None: not a function of the template)
    source_arn: str
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    enabled: bool = True
    filtered: bool = False

    @property
    def queue_name(self) -> str:
        return self.source_arn.rsplit(":", 1)[-1]

    def not_local(self) -> str | None:
        """Why this mapping does not run locally (``None``: it does)."""
        if ":sqs:" not in self.source_arn:
            return "only SQS event sources are emulated locally"
        if self.function is None:
            return "its function is not one of the template's"
        if not self.enabled:
            return "disabled in the template"
        if self.filtered:
            return "FilterCriteria is not emulated locally"
        return None

    @classmethod
    def from_properties(
        cls, logical_id: str, origin: str, function: str | None, props: Mapping[str, Any]
    ) -> QueueSource:
        """From an ``AWS::Lambda::EventSourceMapping``'s properties (or a SAM ``SQS`` event's, whose
        ``Queue`` is the mapping's ``EventSourceArn``), resolved."""
        scaling = props.get("ScalingConfig") or {}
        maximum = scaling.get("MaximumConcurrency")
        return cls(
            logical_id=logical_id,
            origin=origin,
            function=function,
            source_arn=str(props.get("EventSourceArn") or props.get("Queue") or ""),
            batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
            batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            maximum_concurrency=int(maximum) if maximum is not None else None,
            enabled=str(props.get("Enabled", True)).lower() != "false",
            filtered=bool(props.get("FilterCriteria")),
        )


def template_queue_sources(
    template: Mapping[str, Any],
    resolve: Callable[[Any], Any],
    *,
    active: Callable[[str], bool],
    function_of: Callable[[str], str | None],
) -> list[QueueSource]:
    """Every event source mapping the template declares (resources, then SAM ``SQS`` events), in
    template order. ``function_of`` maps a ``FunctionName`` (a name, an ARN, an alias ARN) to the
    function's logical id."""
    found = []
    for logical_id, resource in template["Resources"].items():
        if not active(logical_id):
            continue
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            props = resolve(resource.get("Properties") or {})
            function = function_of(str(props.get("FunctionName", "")))
            found.append(QueueSource.from_properties(logical_id, logical_id, function, props))
        elif resource["Type"] == "AWS::Serverless::Function":
            for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
                if event.get("Type") == "SQS":
                    props = resolve(event.get("Properties") or {})
                    origin = f"{logical_id}.Events.{name}"
                    found.append(QueueSource.from_properties(f"{logical_id}{name}", origin, logical_id, props))
    return found


def lambda_record(message: Mapping[str, Any], source_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's SQS event carries it."""
    attributes = {key: str(value) for key, value in (message.get("Attributes") or {}).items()}
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    body = str(message.get("Body", ""))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": REGION,
    }


def failed_items(result: Any, message_ids: list[str]) -> list[str] | None:
    """The message ids a partial batch response names; ``None`` if it makes the whole batch a failure."""
    if result is None or result in ({}, ""):
        return []
    if not isinstance(result, Mapping):
        return None
    items = result.get("batchItemFailures")
    if items is None:
        return []
    if not isinstance(items, list):
        return None
    failed = []
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.append(identifier)
    return failed


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class MappingStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    returned: int = 0  # named in batchItemFailures
    failed_batches: int = 0  # invocation errors or invalid responses: every message comes back


@dataclass
class QueuePoller:
    """One SQS event source mapping, running (see the module's docstring)."""

    source: QueueSource
    function: LocalFunction
    endpoint: str
    log: Callable[[str], None] = _log
    stats: MappingStats = field(default_factory=MappingStats)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._sqs = aws_client("sqs", self.endpoint)
        self.queue_url = self._sqs.get_queue_url(QueueName=self.source.queue_name)["QueueUrl"]

    @property
    def concurrency(self) -> int:
        """Invocations at once: the mapping's MaximumConcurrency, within the function's environments."""
        local = self.function.concurrency
        return min(local, self.source.maximum_concurrency) if self.source.maximum_concurrency else local

    def start(self) -> QueuePoller:
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"sqs-{self.source.logical_id}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.receive()
                if batch:
                    self.invoke(batch)
                    continue
            except Exception as exc:  # the emulator is stopping, or unreachable for a moment: keep going
                if self._stop.is_set():
                    return
                self.log(f"!! SQS {self.source.logical_id}: polling failed ({type(exc).__name__})")
            self._stop.wait(POLL_IDLE_S)

    def receive(self) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages, gathered for up to the batching window."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.source.batching_window_s
        while len(messages) < self.source.batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(MAX_RECEIVE, self.source.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages") or []
            messages.extend(received)
            if (not received and time.monotonic() >= deadline) or self._stop.is_set():
                break
            if not received:
                self._stop.wait(min(POLL_IDLE_S, max(0.0, deadline - time.monotonic())))
        return messages

    def invoke(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function with one batch, then delete what it did not return."""
        request_id = str(uuid.uuid4())
        records = [lambda_record(message, self.source.source_arn) for message in messages]
        context = LambdaContext(
            function_name=self.function.name,
            memory_limit_in_mb=self.function.spec.memory_mb,
            timeout_s=self.function.spec.timeout_s,
            aws_request_id=request_id,
        )
        label = f"SQS {self.source.logical_id} -> {self.source.function} ({len(records)} messages)"
        started = time.perf_counter()
        try:
            result = self.function.invoke({"Records": records}, context)
        except InvocationError as exc:
            failed: list[str] | None = None
            outcome = exc.error_type
        except Exception as exc:  # in-process functions raise what the handler raised
            failed, outcome = None, type(exc).__name__
        else:
            ids = [record["messageId"] for record in records]
            failed = failed_items(result, ids) if self.source.report_batch_item_failures else []
            outcome = "invalid partial batch response" if failed is None else f"{len(failed)} returned"
        elapsed = f"{(time.perf_counter() - started) * 1000:.0f} ms"
        with self._lock:
            self.stats.invocations += 1
            self.stats.messages += len(records)
        if failed is None:
            with self._lock:
                self.stats.failed_batches += 1
            self.log(f"{label} -> {outcome} ({elapsed}): every message comes back after its visibility timeout")
            return
        done = [record for record in records if record["messageId"] not in set(failed)]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": record["receiptHandle"]}
                    for n, record in enumerate(done[start : start + 10])
                ],
            )
        with self._lock:
            self.stats.deleted += len(done)
            self.stats.returned += len(failed)
        self.log(f"{label} -> ok, {outcome} ({elapsed})")

    def describe(self) -> dict[str, Any]:
        return {
            "mapping": self.source.logical_id,
            "origin": self.source.origin,
            "queue": self.source.queue_name,
            "function": self.source.function,
            "batch_size": self.source.batch_size,
            "maximum_concurrency": self.source.maximum_concurrency,
            "local_concurrency": self.concurrency,
            "report_batch_item_failures": self.source.report_batch_item_failures,
        }


def describe_sources(sources: list[QueueSource], pollers: list[QueuePoller]) -> list[dict[str, Any]]:
    """Every SQS event source mapping: what runs locally and what does not (state file, banner)."""
    running = {poller.source.logical_id: poller for poller in pollers}
    described = []
    for source in sources:
        poller = running.get(source.logical_id)
        item: dict[str, Any] = poller.describe() if poller else {"mapping": source.logical_id, "origin": source.origin}
        reason = source.not_local()
        if reason is None and poller is None:
            reason = "not started (its function is not running, or start_event_sources() was not called)"
        if reason is not None:
            item["not_local"] = reason
        described.append(item)
    return described
