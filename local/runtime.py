"""Run a template's function as Lambda would: the handler file imported by path, a context object,
the event and the result passed through JSON.

Two ways to run it (:class:`LocalFunction`):

* **Worker processes** (``processes=True``; what ``python -m local.stack`` uses). Each execution
  environment is its own OS process (``multiprocessing``, "spawn" start method) that imports the
  handler once, then runs one invocation at a time, as a Lambda sandbox does. A function scales
  out to ``concurrency`` environments (``LOCAL_CONCURRENCY``, default 4), a new one started only
  when every existing one is busy; a request beyond that waits for a free one, as a throttled
  invocation would. Invocations in flight share nothing (module globals, caches, Powertools'
  resolver class, which keeps the event being handled on ``BaseRouter.current_event``), so
  concurrent requests really run in parallel and race where deployed ones would: at DynamoDB's
  conditional writes. A handler that raises gives :class:`InvocationError` (``errorType``,
  ``errorMessage``, ``stackTrace``, as Lambda reports it) and its environment stays warm; an
  environment that dies or runs past the function's ``Timeout`` is discarded and replaced by
  the next invocation that needs one. :meth:`LocalFunction.close` stops them all.
* **In this process** (the default: ``local.invoke``, the benchmarks that count AWS calls in
  their own process, direct :meth:`LocalFunction.handler` calls). One copy of the handler module;
  invocations run one at a time, under a process-wide lock, because Powertools' resolver state
  lives on the class, shared by every handler of a process. Exceptions propagate as raised.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.invocation import Handler, InvocationError, LambdaContext, import_handler
from local.template import FunctionSpec
from local.workers import WorkerPool

DEFAULT_CONCURRENCY = 4

# Powertools keeps the event being handled on the resolver *class* (``BaseRouter.current_event``),
# shared by every handler in a process: in-process invocations run one at a time.
_IN_PROCESS = threading.Lock()


@dataclass
class LocalFunction:
    """One function, ready to invoke: ``invoke(event)`` returns what Lambda would return to the caller.

    ``processes=True``: each execution environment is a worker process (up to ``concurrency``,
    see the module's docstring) and a failed invocation raises :class:`InvocationError`.
    Otherwise the handler runs in this process, one invocation at a time, and raises as it raised.
    """

    spec: FunctionSpec
    name: str
    concurrency: int = DEFAULT_CONCURRENCY
    processes: bool = False
    _handler: Handler | None = field(default=None, repr=False)
    _pool: WorkerPool | None = field(default=None, repr=False)
    _import: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.processes:
            self._pool = WorkerPool(self.spec, self.name, self.concurrency)

    def handler(self) -> Handler:
        """The handler, imported in this process on first use (in-process mode only)."""
        if self._pool is not None:
            raise RuntimeError(f"{self.spec.logical_id} runs in worker processes: call invoke()")
        with self._import:
            if self._handler is None:
                self._handler = import_handler(self.spec)
            return self._handler

    def initialise(self) -> None:
        """Import the handler now (in-process), or start one worker and wait for its init: the
        import error of a function that cannot start is raised here, not at its first request."""
        if self._pool is None:
            self.handler()
            return
        self._pool.release(self._pool.acquire(), healthy=True)

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name, memory_limit_in_mb=self.spec.memory_mb, timeout_s=self.spec.timeout_s
        )

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Any:
        """Run the handler on a JSON copy of ``event``; the result comes back through JSON too (a
        result Lambda could not serialise fails here as well: ``TypeError`` in-process,
        ``Runtime.MarshalError`` from a worker). With workers, only ``context.aws_request_id`` is used."""
        if self._pool is None:
            handler = self.handler()
            with _IN_PROCESS:
                result = handler(json.loads(json.dumps(event)), context or self.context())
            return json.loads(json.dumps(result))
        request_id = context.aws_request_id if context is not None else str(uuid.uuid4())
        payload = json.dumps({"event": event, "request_id": request_id}).encode("utf-8")
        worker = self._pool.acquire()
        healthy = False
        try:
            result = worker.invoke(payload, float(self.spec.timeout_s))
            healthy = True
        except InvocationError as exc:
            healthy = not exc.fatal
            raise
        finally:
            self._pool.release(worker, healthy=healthy)
        return result

    def worker_pids(self) -> list[int]:
        """The process ids of the function's live environments (none in-process)."""
        return [pid for pid in (process.pid for process in self._pool.processes) if pid] if self._pool else []

    def close(self) -> None:
        """Stop the function's worker processes (nothing to do in-process)."""
        if self._pool is not None:
            self._pool.close()
