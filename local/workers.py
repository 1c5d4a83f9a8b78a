"""Execution environments as worker processes: each is its own OS process (``multiprocessing``,
"spawn" start method) that imports the handler once, then runs one invocation at a time, as a Lambda
sandbox does. A :class:`WorkerPool` holds up to ``size`` of one function's, starting a new one only
when every existing one is busy; an environment that dies or runs past the function's ``Timeout``
is discarded, and the next invocation that needs one starts another."""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from local.invocation import InvocationError, LambdaContext, error_object, import_handler
from local.template import FunctionSpec

# A worker's cold start (a fresh interpreter importing Powertools and boto3) on a busy 2-core
# machine: far more generous than Lambda's 10 s init limit, which this does not model.
INIT_TIMEOUT_S = 120.0
STOP_GRACE_S = 3.0


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
