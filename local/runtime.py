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

Environment: every function's variables are set ONCE, as the union of all functions' resolved
environments, in the stack's process before any handler is imported or any worker started
(workers inherit ``os.environ`` when they are spawned). Two functions that give one variable
different values cannot share it: :func:`union_environment` refuses with the variable's name.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from local.emulator import FAKE_CREDENTIALS, REGION
from local.template import ACCOUNT_ID, FunctionSpec

Handler = Callable[[Any, Any], Any]

# What every local function sees besides its template environment.
BASE_ENVIRONMENT = {
    **FAKE_CREDENTIALS,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}
# Never let a local function reach real AWS through the developer's own credentials.
SCRUBBED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")

DEFAULT_CONCURRENCY = 4
# A worker's cold start (a fresh interpreter importing Powertools and boto3) on a busy 2-core
# machine: far more generous than Lambda's 10 s init limit, which this does not model.
INIT_TIMEOUT_S = 120.0
STOP_GRACE_S = 3.0


class EnvironmentConflict(ValueError):
    """Two functions set one variable to different values; they cannot share a process."""


def function_env(template_env: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """The full environment of one function: its template variables plus the local AWS settings."""
    return {**BASE_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, **template_env}


def union_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function, env in environments.items():
        for name, value in env.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflict(
                    f"{name} is {merged[name]!r} for {owner[name]} but {value!r} for {function}: "
                    "the local stack gives every function one environment and needs one value"
                )
            merged[name] = value
            owner.setdefault(name, function)
    return merged


def apply_environment(env: Mapping[str, str]) -> None:
    """Set ``env`` in this process (and so in every worker spawned after this call)."""
    for name in SCRUBBED:
        os.environ.pop(name, None)
    os.environ.update(env)


@dataclass
class LambdaContext:
    """The attributes and method of Lambda's context object that handlers and Powertools use."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]local", time.gmtime())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_handler(spec: FunctionSpec) -> Handler:
    """Import the handler's file by path, under a module name unique to the function."""
    path = spec.module_path
    name = f"local_function_{spec.logical_id}"
    module = sys.modules.get(name)
    if module is None:
        if not path.is_file():
            raise FileNotFoundError(f"{spec.logical_id}: handler file {path} does not exist")
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"{spec.logical_id}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    handler = getattr(module, spec.handler_attribute, None)
    if not callable(handler):
        raise AttributeError(f"{spec.logical_id}: {path} has no callable {spec.handler_attribute!r}")
    return handler  # type: ignore[no-any-return]


def error_object(exc: BaseException) -> dict[str, Any]:
    """An exception as Lambda reports a failed invocation."""
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class InvocationError(Exception):
    """An invocation that failed in a worker process, as Lambda reports it.

    ``str()`` holds the message, which may quote input (a token): log ``error_type`` and
    ``stack_trace`` only. ``fatal``: the environment did not survive (it exited or timed out).
    """

    def __init__(self, error_type: str, error_message: str, stack_trace: list[str], *, fatal: bool = False) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace
        self.fatal = fatal

    @classmethod
    def from_object(cls, error: dict[str, Any], *, fatal: bool = False) -> InvocationError:
        return cls(str(error["errorType"]), str(error["errorMessage"]), list(error["stackTrace"]), fatal=fatal)

    def error_object(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.error_message, "stackTrace": self.stack_trace}


# -- the worker process ------------------------------------------------------------------------


def _send(connection: Connection, message: Any) -> None:
    connection.send_bytes(json.dumps(message).encode("utf-8"))


def _worker_main(spec: FunctionSpec, function_name: str, connection: Connection) -> None:
    """One execution environment: import the handler (init), then run invocations one at a time
    until the stack closes the pipe. stdout and stderr are the stack's (inherited), so the
    function's logs land where the stack's do."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the stack stops us
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    try:
        handler = import_handler(spec)
    except Exception as exc:
        _send(connection, {"init_error": error_object(exc)})
        return
    _send(connection, {"ready": True})
    while True:
        try:
            message = json.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return  # the stack closed the pipe (or is gone): this environment ends
        context = LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            aws_request_id=message["request_id"],
        )
        try:
            result = handler(message["event"], context)
        except Exception as exc:
            reply = {"error": error_object(exc)}
        else:
            try:
                _send(connection, {"result": result})
                continue
            except (TypeError, ValueError) as exc:  # Lambda's runtime cannot serialise it either
                reply = {
                    "error": {
                        "errorType": "Runtime.MarshalError",
                        "errorMessage": f"Unable to marshal response: {exc}",
                        "stackTrace": [],
                    }
                }
        _send(connection, reply)


# -- the stack's side --------------------------------------------------------------------------


class _Worker:
    """A worker process and the stack's end of its pipe."""

    def __init__(self, spec: FunctionSpec, function_name: str, number: int) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main,
            args=(spec, function_name, theirs),
            name=f"{spec.logical_id}-env{number}",
            daemon=True,  # never outlives the stack, even if it exits without closing us
        )
        self.process.start()
        theirs.close()  # only the child holds it now: it sees EOF when we close ours or exit
        self.connection = ours

    def _receive(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            ready = self.connection.poll(timeout_s)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self.stop(graceful=False)
            raise InvocationError("Sandbox.Timedout", f"Task timed out after {timeout_s:.2f} seconds", [], fatal=True)
        try:
            reply: dict[str, Any] = json.loads(self.connection.recv_bytes())
        except (EOFError, OSError):
            self.process.join(STOP_GRACE_S)
            raise InvocationError(
                "Runtime.ExitError",
                f"Runtime exited during {what} with exit status {self.process.exitcode}",
                [],
                fatal=True,
            ) from None
        return reply

    def wait_ready(self) -> None:
        reply = self._receive(INIT_TIMEOUT_S, "init")
        if "init_error" in reply:
            raise InvocationError.from_object(reply["init_error"], fatal=True)

    def invoke(self, payload: bytes, timeout_s: float) -> Any:
        try:
            self.connection.send_bytes(payload)
        except OSError:
            raise InvocationError("Runtime.ExitError", "Runtime exited before the invocation", [], fatal=True) from None
        reply = self._receive(timeout_s, "the invocation")
        if "error" in reply:
            raise InvocationError.from_object(reply["error"])
        return reply["result"]

    def stop(self, *, graceful: bool = True) -> None:
        """End the process: closing the pipe lets an idle worker exit on its own; then SIGTERM, SIGKILL."""
        if graceful:
            self.connection.close()
        _end(self.process, grace_s=STOP_GRACE_S if graceful else 0.0)
        self.connection.close()


def _end(process: multiprocessing.process.BaseProcess, grace_s: float) -> None:
    """Wait ``grace_s`` for ``process`` to exit, then SIGTERM it, then SIGKILL it; reaped either way."""
    process.join(grace_s)
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(STOP_GRACE_S)


class WorkerPool:
    """Up to ``size`` worker processes of one function, each serving one invocation at a time."""

    def __init__(self, spec: FunctionSpec, function_name: str, size: int) -> None:
        self.spec = spec
        self.function_name = function_name
        self.size = max(1, size)
        self._changed = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._started = 0
        self._closed = False

    def acquire(self) -> _Worker:
        """A free, initialised worker: an idle one, else a new one while there are fewer than
        ``size``, else the next one to be released."""
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.spec.logical_id}: the function's workers are stopped")
                if self._idle:
                    return self._idle.pop()  # the most recently used: the warmest
                if len(self._workers) < self.size:
                    self._started += 1
                    worker = _Worker(self.spec, self.function_name, self._started)
                    self._workers.add(worker)
                    break
                self._changed.wait()
        try:
            worker.wait_ready()
        except BaseException:
            self.release(worker, healthy=False)
            raise
        return worker

    def release(self, worker: _Worker, *, healthy: bool) -> None:
        with self._changed:
            keep = healthy and not self._closed and worker in self._workers
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._changed.notify()
        if not keep:
            worker.stop(graceful=healthy)

    def close(self) -> None:
        """Stop every worker, idle or busy (a busy one's invocation fails), and refuse new work."""
        with self._changed:
            self._closed = True
            idle, busy = list(self._idle), self._workers - set(self._idle)
            self._idle.clear()
            self._workers.clear()
            self._changed.notify_all()
        for worker in idle:
            worker.connection.close()  # an idle worker exits on its own when its pipe closes
        for worker in idle:
            _end(worker.process, grace_s=STOP_GRACE_S)
        for worker in busy:  # its invoking thread owns the pipe (and then fails): end the process only
            _end(worker.process, grace_s=0.0)

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        with self._changed:
            return [worker.process for worker in self._workers]


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
