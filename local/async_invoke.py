"""Lambda's asynchronous invocation, emulated: what the local stack does with an event an
EventBridge rule hands to a function (``local.rules``).

The event runs in the function's execution environments (``local.runtime``), up to its concurrency
at once, with one request id across its attempts. A failed invocation is retried
``EventInvokeConfig.MaximumRetryAttempts`` times (default 2), after ``retry_delay_s`` (the stack's
``LOCAL_ASYNC_RETRY_SECONDS``, default 1 s), then twice that, ... (Lambda waits 1 and 2 minutes);
then, or once the event is older than ``MaximumEventAgeInSeconds``, the event goes to the function's
``OnFailure`` destination (SQS or EventBridge) as Lambda's invocation record
(``requestContext.condition`` RetriesExhausted or EventAgeExceeded, ``requestPayload``,
``responsePayload`` with the error), else to its ``DeadLetterQueue``, else it is dropped, as Lambda
drops it, and the log says so. Events still waiting (for a free environment or a retry) when the
stack stops are dropped.

The log shows each invocation (origin, function, request id, outcome, milliseconds), never the event.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.account import ACCOUNT_ID, REGION
from local.emulator import aws_client
from local.invocation import InvocationError, LambdaContext, error_object
from local.runtime import LocalFunction

# What Lambda does for an asynchronous invocation when EventInvokeConfig says nothing.
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2
DEFAULT_MAXIMUM_EVENT_AGE_S = 21600
DEFAULT_RETRY_DELAY_S = 1.0
# The properties of a function that say what happens to its failed asynchronous invocations.
ASYNC_PROPERTIES = ("EventInvokeConfig", "DeadLetterQueue")


@dataclass(frozen=True)
class AsyncConfig:
    """What Lambda does with a failed asynchronous invocation of one function (its EventInvokeConfig)."""

    maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
    maximum_event_age_s: int = DEFAULT_MAXIMUM_EVENT_AGE_S
    on_failure_arn: str | None = None
    dead_letter_arn: str | None = None  # the function's DeadLetterQueue (used when there is no OnFailure)

    @classmethod
    def of(cls, properties: Mapping[str, Any]) -> AsyncConfig:
        """From a function's resolved properties (``EventInvokeConfig``, ``DeadLetterQueue``)."""
        config = properties.get("EventInvokeConfig") or {}
        on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure")) or {}
        dead_letter = properties.get("DeadLetterQueue") or {}
        return cls(
            maximum_retry_attempts=int(config.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)),
            maximum_event_age_s=int(config.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE_S)),
            on_failure_arn=on_failure.get("Destination"),
            dead_letter_arn=dead_letter.get("TargetArn"),
        )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Pending:
    function: str  # logical id
    origin: str  # what handed the event over, for the log: "EventBridge <rule>"
    event: Any  # what the function receives
    request_id: str
    received_at: float
    attempt: int = 1


@dataclass
class AsyncInvoker:
    """Runs events on functions as Lambda's asynchronous invocation does (see the module's docstring)."""

    functions: dict[str, LocalFunction]  # logical id -> function (only those the stack runs)
    async_configs: dict[str, AsyncConfig]  # logical id -> its EventInvokeConfig
    endpoint: str
    names: dict[str, str] = field(default_factory=dict)  # ARN -> logical id (for the log)
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    log: Callable[[str], None] = _log
    _stop: threading.Event = field(default_factory=threading.Event)
    _pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    _timers: set[threading.Timer] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._events = aws_client("events", self.endpoint)
        self._sqs = aws_client("sqs", self.endpoint)

    def config(self, function: str) -> AsyncConfig:
        return self.async_configs.get(function, AsyncConfig())

    def submit(self, function: str, event: Any, *, origin: str) -> None:
        """Invoke ``function`` with ``event`` asynchronously (a new request id), as soon as one of its
        execution environments is free."""
        self._submit(_Pending(function, origin, event, str(uuid.uuid4()), time.time()))

    def close(self) -> None:
        """Drop what has not run yet (the stack is going away)."""
        self._stop.set()
        with self._lock:
            timers, self._timers = set(self._timers), set()
        for timer in timers:
            timer.cancel()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, pending: _Pending) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            pool = self._pools.get(pending.function)
            if pool is None:
                concurrency = self.functions[pending.function].concurrency
                pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"async-{pending.function}")
                self._pools[pending.function] = pool
        try:
            pool.submit(self._invoke, pending)
        except RuntimeError:  # the pool is shut down: the stack is stopping
            return

    def _invoke(self, pending: _Pending) -> None:
        function = self.functions[pending.function]
        label = f"{pending.origin} -> {pending.function} (request {pending.request_id})"
        context = LambdaContext(
            function_name=function.name,
            memory_limit_in_mb=function.spec.memory_mb,
            timeout_s=function.spec.timeout_s,
            aws_request_id=pending.request_id,
        )
        started = time.perf_counter()
        try:
            function.invoke(pending.event, context)
        except InvocationError as exc:
            error = exc.error_object()
        except Exception as exc:  # in-process functions raise what the handler raised
            error = error_object(exc)
        else:
            self.log(f"{label} -> ok ({(time.perf_counter() - started) * 1000:.0f} ms)")
            return
        if self._stop.is_set():
            return
        config = self.config(pending.function)
        elapsed = f"{(time.perf_counter() - started) * 1000:.0f} ms"
        too_old = time.time() - pending.received_at >= config.maximum_event_age_s
        if pending.attempt <= config.maximum_retry_attempts and not too_old:
            delay = self.retry_delay_s * 2 ** (pending.attempt - 1)
            self.log(
                f"{label} -> {error['errorType']} ({elapsed}); "
                f"retry {pending.attempt} of {config.maximum_retry_attempts} in {delay:g} s"
            )
            pending.attempt += 1
            self._later(delay, pending)
            return
        condition = "EventAgeExceeded" if too_old else "RetriesExhausted"
        where = self._on_failure(function, config, pending, error, condition)
        self.log(f"{label} -> {error['errorType']} ({elapsed}) after {pending.attempt} attempt(s): {where}")

    def _later(self, delay: float, pending: _Pending) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._submit(pending)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            if self._stop.is_set():
                return
            self._timers.add(timer)
        timer.start()

    def _on_failure(
        self, function: LocalFunction, config: AsyncConfig, pending: _Pending, error: dict[str, Any], condition: str
    ) -> str:
        """Send the failed event where Lambda would; returns what was done, for the log."""
        function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.name}:$LATEST"
        if config.on_failure_arn:
            record = {
                "version": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "requestContext": {
                    "requestId": pending.request_id,
                    "functionArn": function_arn,
                    "condition": condition,
                    "approximateInvokeCount": pending.attempt,
                },
                "requestPayload": pending.event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": error,
            }
            return self._deliver(config.on_failure_arn, record, error, pending.request_id, condition)
        if config.dead_letter_arn:
            return self._deliver(config.dead_letter_arn, pending.event, error, pending.request_id, condition)
        return f"dropped ({condition}; the function has no OnFailure destination or DeadLetterQueue)"

    def _deliver(self, arn: str, body: Any, error: dict[str, Any], request_id: str, condition: str) -> str:
        name = self.names.get(arn, arn)
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        try:
            if service == "sqs":
                url = self._sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
                self._sqs.send_message(
                    QueueUrl=url,
                    MessageBody=json.dumps(body),
                    MessageAttributes={
                        "RequestID": {"DataType": "String", "StringValue": request_id},
                        "ErrorCode": {"DataType": "String", "StringValue": str(error.get("errorType"))[:256]},
                    },
                )
            elif service == "events":
                self._events.put_events(
                    Entries=[
                        {
                            "Source": "lambda",
                            "DetailType": "Lambda Function Invocation Result - Failure",
                            "Detail": json.dumps(body),
                            "EventBusName": arn,
                        }
                    ]
                )
            else:
                return f"dropped (destination {name} is not emulated locally)"
        except Exception as exc:
            return f"dropped (sending to {name} failed: {type(exc).__name__})"
        return f"sent to {name} ({condition})"
