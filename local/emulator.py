"""moto's server on loopback, with requests serialised so conditional writes are atomic.

moto's DynamoDB evaluates a ``ConditionExpression`` and then writes, in plain Python with no lock:
two requests served by two threads can both pass the check. Real DynamoDB applies a conditional
write to an item atomically, and this project's single-use guarantee rests on that. So the WSGI
app is wrapped in :class:`SerialisedApp`: one request at a time, each one complete (response body
included) before the next starts. Throughput is not the point of an emulator; correctness is.

One more difference is mended here (:func:`atomic_transactions`): moto's ``TransactWriteItems`` goes
on applying a transaction's items after one fails its condition, then "rolls back" by putting back a
deep copy of every table it touches, taken before the transaction. DynamoDB writes nothing for a
cancelled transaction and publishes no stream record of it; moto's rollback leaves the records of
the items it applied in the stream shard that readers hold (so the local AuditPipe saw a
``SessionCreated`` for a session that was never stored), and copying the whole table, its stream
included, on every transaction made each accept cost as much as the table is large (a suite that
had minted 10,000 links timed out). The mended version backs up only the items the transaction
names and the length of each touched table's stream, and on any failure puts those items back and
drops the stream records the transaction added: what DynamoDB does, at the cost of what it touches.

And one thing moto lacks is added (:func:`ses_quota`): SES v2 ``GetAccount``, with the sending quota
of a new production account (14 emails/s, 50,000 a day) unless set otherwise, and SES's throttle:
a ``SendEmail`` beyond the rate (a token bucket: a second's burst, refilled at the rate) or the
daily quota is refused with ``TooManyRequestsException``, as SES refuses it.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def atomic_transactions() -> None:
    """Make moto's ``TransactWriteItems`` all-or-nothing without copying tables (see the module's
    docstring). Idempotent; the local stack's moto server and the tests' in-process moto call it."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "atomic", False):
        return
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        saved: dict[tuple[str, Any], Any] = {}  # (table, hash value) -> the items under it, copied
        streams: dict[str, tuple[Any, int]] = {}  # table -> (its stream shard, its length)
        for entry in transact_items:
            for operation in entry.values():
                if not isinstance(operation, dict) or operation.get("TableName") not in self.tables:
                    continue  # moto's own checks answer it
                table = self.tables[operation["TableName"]]
                key = operation.get("Key") or operation.get("Item") or {}
                if table.hash_key_attr not in key:
                    continue
                hash_value = DynamoType(key[table.hash_key_attr])
                if (table.name, hash_value) not in saved:
                    present = hash_value in table.items
                    saved[(table.name, hash_value)] = copy.deepcopy(table.items[hash_value]) if present else None
                if table.stream_shard is not None and table.name not in streams:
                    streams[table.name] = (table.stream_shard, len(table.stream_shard.items))
        try:
            with _no_table_copies():
                original(self, transact_items)
        except Exception:
            for (table_name, hash_value), items in saved.items():
                table = self.tables[table_name]
                if items is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = items
            for shard, length in streams.values():
                del shard.items[length:]
            raise

    transact_write_items.atomic = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


@contextmanager
def _no_table_copies() -> Iterator[None]:
    """moto's transaction copies every table it touches (``copy.deepcopy``) to roll back with: the
    mended transaction rolls back itself, so those copies become the tables themselves (a table
    object put back in its own place)."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    setattr(models, "copy", _CopyModule(deepcopy))  # noqa: B010 - the module moto's transaction reads
    try:
        yield
    finally:
        setattr(models, "copy", copy)  # noqa: B010


class _CopyModule:
    """``copy`` as moto's transaction sees it while :func:`_no_table_copies` runs."""

    def __init__(self, deepcopy: Any) -> None:
        self.deepcopy = deepcopy
        self.copy = copy.copy


@dataclass
class SesQuota:
    """The sending quota moto's SES v2 answers and enforces (see :func:`ses_quota`): a token bucket
    of ``max_send_rate`` sends, refilled at ``max_send_rate`` a second (a second's burst, no more),
    and ``max_24_hour_send`` sends in all (the emulator's life stands for the 24 hours)."""

    max_send_rate: float = 14.0
    max_24_hour_send: float = 50_000.0
    sent_total: int = 0
    throttled: int = 0  # SendEmail calls refused
    _tokens: float | None = None  # None: full
    _refilled_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> str | None:
        """Count one SendEmail, or say why SES refuses it."""
        now = time.monotonic()
        with self.lock:
            tokens = self.max_send_rate if self._tokens is None else self._tokens
            tokens = min(self.max_send_rate, tokens + (now - self._refilled_at) * self.max_send_rate)
            self._refilled_at = now
            if 0 <= self.max_24_hour_send <= self.sent_total:
                reason = "Daily message quota exceeded."
            elif tokens < 1:
                reason = "Maximum sending rate exceeded."
            else:
                self._tokens = tokens - 1
                self.sent_total += 1
                return None
            self._tokens = tokens
            self.throttled += 1
            return reason

    def reset(self) -> None:
        with self.lock:
            self._tokens, self.sent_total, self.throttled = None, 0, 0


SES_QUOTA = SesQuota()


def ses_quota(max_send_rate: float | None = None, max_24_hour_send: float | None = None) -> SesQuota:
    """Give moto's SES v2 ``GetAccount`` and SES's sending throttle (idempotent), with this quota
    (``None``: as it is; the defaults are a new production account's). Returns the quota, whose
    ``throttled`` counts the refusals."""
    from moto.core.exceptions import JsonRESTError
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    if max_send_rate is not None:
        SES_QUOTA.max_send_rate = max_send_rate
    if max_24_hour_send is not None:
        SES_QUOTA.max_24_hour_send = max_24_hour_send
    SES_QUOTA.reset()
    if getattr(SESV2Response.send_email, "throttled", False):
        return SES_QUOTA
    send_email = SESV2Response.send_email

    def throttled_send_email(self: Any) -> str:
        refused = SES_QUOTA.admit()
        if refused is not None:
            error = JsonRESTError("TooManyRequestsException", refused)
            error.code = 429
            raise error
        return send_email(self)

    def get_account(self: Any) -> str:
        quota = {
            "Max24HourSend": SES_QUOTA.max_24_hour_send,
            "MaxSendRate": SES_QUOTA.max_send_rate,
            "SentLast24Hours": float(SES_QUOTA.sent_total),
        }
        return json.dumps(
            {
                "SendQuota": quota,
                "SendingEnabled": True,
                "ProductionAccessEnabled": True,
                "EnforcementStatus": "HEALTHY",
            }
        )

    urls.url_paths["{0}/v2/email/account$"] = SESV2Response.dispatch
    throttled_send_email.throttled = True  # type: ignore[attr-defined]
    SESV2Response.send_email = throttled_send_email  # type: ignore[method-assign]
    SESV2Response.get_account = get_account  # type: ignore[attr-defined]
    return SES_QUOTA


class SerialisedApp:
    """A WSGI app that lets one request at a time through ``app`` (the body is read out under the lock)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


class MotoServer:
    """moto's server (every service) on ``host`` and a free port, in a daemon thread.

    Use as a context manager, or ``start()`` / ``stop()``. ``endpoint`` is what boto3 takes as
    ``endpoint_url`` (and ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()  # held while a request is served (SerialisedApp)

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the moto server is not running")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> MotoServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines from moto
        cache_jsonpath_parser()
        cache_moto_modules()
        fast_sqs_clock()
        lean_sqs_sends()
        atomic_transactions()
        ses_quota()
        cache_action_names()  # after ses_quota(), which adds an action
        app = SerialisedApp(DomainDispatcherApplication(create_backend_app))
        app.lock = self.lock  # whoever changes moto's backend directly takes it too (local.rotation)
        self._server = make_server(self.host, self.port, app, threaded=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def cache_moto_modules() -> None:
    """List moto's service packages once. Its server's dispatcher asks whether a request's host
    names one by listing moto's directory and testing each entry (about 150 ``stat`` calls), for
    every request: a few milliseconds each, in a server that serves one request at a time. The
    installed packages do not change while it runs, so a cache changes nothing but the time."""
    from moto import backends

    if hasattr(backends.list_of_moto_modules, "cache_info"):
        return
    original = backends.list_of_moto_modules
    listed = functools.lru_cache(maxsize=1)(lambda: tuple(original()))
    setattr(backends, "list_of_moto_modules", listed)  # noqa: B010 - the module moto's server reads


def cache_action_names() -> None:
    """Find each moto response class's actions once. moto lists a response class's functions with
    ``inspect.getmembers`` on every request it dispatches (about a millisecond each); the classes
    do not change once the emulator's own additions (:func:`ses_quota`) are made, which happen
    before the first request."""
    from moto.core import responses

    original = getattr(responses, "method_names_from_class")  # noqa: B009 - not re-exported, for mypy
    if hasattr(original, "cache_info"):
        return
    listed = functools.lru_cache(maxsize=None)(original)
    setattr(responses, "method_names_from_class", listed)  # noqa: B010 - the name moto's dispatch reads


def fast_sqs_clock() -> None:
    """Read the clock once per call in moto's SQS. moto computes every queue attribute, the
    approximate message counts among them, on each ``SendMessage`` (to read one setting), and each
    count checks every message's visibility with ``unix_time_millis()``, which builds two datetimes:
    ~4 ms a message on a queue of 100, so filling a queue cost time quadratic in its length (the
    email queue holds a whole batch). The same instant from ``time.time()`` changes nothing but the
    time (moto's SQS takes no frozen clock here)."""
    from moto.sqs import models

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    original_unix_time = getattr(models, "unix_time")  # noqa: B009 - not re-exported, for mypy
    if getattr(original_unix_time, "fast", False):
        return
    unix_time.fast = True  # type: ignore[attr-defined]
    setattr(models, "unix_time", unix_time)  # noqa: B010
    setattr(models, "unix_time_millis", unix_time_millis)  # noqa: B010


_SQS_SENDING = threading.local()


def lean_sqs_sends() -> None:
    """Let moto's ``SendMessage`` read the one queue setting it needs without computing the rest.
    moto reads ``ContentBasedDeduplication`` through ``Queue.attributes``, which computes every
    attribute, the approximate message counts among them (each a pass over every message in the
    queue): filling a queue took time quadratic in its length (an email queue holding a batch of
    10,000 links: 50 million visibility checks). The setting exists on FIFO queues only, so during a
    send the attributes are that setting alone; everywhere else (``GetQueueAttributes``) they are
    moto's own."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.send_message, "lean", False):
        return
    full = Queue.attributes
    send_message = SQSBackend.send_message

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(_SQS_SENDING, "active", False):
            return full.fget(self)  # type: ignore[attr-defined,no-any-return]
        if not self.fifo_queue:
            return {}
        return {"ContentBasedDeduplication": "true" if self.content_based_deduplication else "false"}

    def lean_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _SQS_SENDING.active = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            _SQS_SENDING.active = False

    lean_send_message.lean = True  # type: ignore[attr-defined]
    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]
    SQSBackend.send_message = lean_send_message  # type: ignore[method-assign]


def cache_jsonpath_parser() -> None:
    """Parse each JSONPath expression once. moto's EventBridge parses the same eight expressions
    (its default input template) again for every event it delivers to a target, with a PLY parser
    built each time: about 10 ms an event per matching rule, in a server that serves one request
    at a time. The parsed expressions are immutable, so a cache changes nothing but the time."""
    import jsonpath_ng.ext

    parse = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - not re-exported, for mypy
    if not hasattr(parse, "cache_info"):
        setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=1024)(parse))  # noqa: B010


def aws_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client bound to the emulator at ``endpoint``, with fake credentials."""
    import boto3

    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
