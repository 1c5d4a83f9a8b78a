"""What the local stack changes in moto's own code, each change made once (every function here is
idempotent) and each for a reason given in its docstring.

Correctness: moto's ``TransactWriteItems`` goes on applying a transaction's items after one fails
its condition, then "rolls back" by putting back a deep copy of every table it touches, taken before
the transaction. DynamoDB writes nothing for a cancelled transaction and publishes no stream record
of it; moto's rollback leaves the records of the items it applied in the stream shard that readers
hold (so the local AuditPipe saw a ``SessionCreated`` for a session that was never stored), and
copying the whole table, its stream included, on every transaction made each accept cost as much as
the table is large (a suite that had minted 10,000 links timed out). :func:`atomic_transactions`
backs up only the items the transaction names and the length of each touched table's stream, and on
any failure puts those items back and drops the stream records the transaction added: what DynamoDB
does, at the cost of what it touches.

Speed: moto's server redoes work on every request that cannot change while it runs (listing its
packages, each response class's actions, parsing the same JSONPath expressions, computing every SQS
queue attribute to read one). Each cache below changes nothing but the time, in a server that
serves one request at a time (``local.emulator``).
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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
    do not change once the emulator's own additions (``local.ses_quota``) are made, which happen
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
