"""Run a template's function in this process, as Lambda would: the handler file imported by path,
a context object, the event and the result passed through JSON.

Environment: every function's variables are set ONCE, as the union of all functions' resolved
environments, before any handler is imported (``os.environ`` is process-wide, and swapping it per
invocation would serialise concurrent requests). Two functions that give one variable different
values cannot share a process: :func:`union_environment` refuses with the variable's name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.emulator import FAKE_CREDENTIALS, REGION
from local.template import ACCOUNT_ID, FunctionSpec

Handler = Callable[[Any, Any], Any]

# What every local function sees besides its template environment.
BASE_ENVIRONMENT = {
    **FAKE_CREDENTIALS,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
}
# Never let a local function reach real AWS through the developer's own credentials.
SCRUBBED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")


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
                    "the local stack runs every function in one process and needs one value"
                )
            merged[name] = value
            owner.setdefault(name, function)
    return merged


def apply_environment(env: Mapping[str, str]) -> None:
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


def import_handler(spec: FunctionSpec, environment: int = 0) -> Handler:
    """Import the handler's file by path, under a module name unique to the function and to the
    execution environment (each environment has its own module globals, as each Lambda sandbox does)."""
    path = spec.module_path
    name = f"local_function_{spec.logical_id}" + (f"_env{environment}" if environment else "")
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


DEFAULT_CONCURRENCY = 4

# Powertools keeps the event being handled on the resolver *class* (``BaseRouter.current_event``),
# so every copy of a handler module in this process shares it: two invocations in flight at once
# would read each other's requests (one browser got another user's session; tests/e2e/
# test_request_isolation.py). Lambda never runs two invocations in one process, so neither does
# this: handlers run one at a time, each in its own environment's module copy.
_ONE_INVOCATION_AT_A_TIME = threading.Lock()


@dataclass
class LocalFunction:
    """One function, ready to invoke: ``invoke(event)`` returns what Lambda would return to the caller.

    Like Lambda, a function scales out over execution environments, each running one invocation
    at a time: up to ``concurrency`` copies of the handler module (own globals, so Powertools'
    module-level resolver). The handler calls themselves run one at a time in this process (see
    ``_ONE_INVOCATION_AT_A_TIME``): concurrent requests queue for it, so the local stack does not
    show handler-level parallelism; the single-use guarantee rests on DynamoDB's conditional write,
    which the emulator makes atomic (``emulator.py``) and the emulator tests exercise directly.
    """

    spec: FunctionSpec
    name: str
    concurrency: int = DEFAULT_CONCURRENCY
    _idle: queue.SimpleQueue[Handler] = field(default_factory=queue.SimpleQueue, repr=False)
    _created: int = 0
    _grow: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handler(self) -> Handler:
        """The first environment's handler (created on first use): a warm-up, or a direct call."""
        with self._grow:
            if self._created == 0:
                self._idle.put(import_handler(self.spec, 0))
                self._created = 1
        handler = self._idle.get()
        self._idle.put(handler)
        return handler

    def _acquire(self) -> Handler:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._grow:
            if self._created < max(1, self.concurrency):
                environment = self._created
                self._created += 1
                return import_handler(self.spec, environment)
        return self._idle.get()  # every environment is busy: wait for one, as a throttled Lambda would

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name, memory_limit_in_mb=self.spec.memory_mb, timeout_s=self.spec.timeout_s
        )

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Any:
        """Run the handler on a JSON copy of ``event`` in a free execution environment; the result
        comes back through JSON too (a result Lambda could not serialise raises ``TypeError`` here as well)."""
        handler = self._acquire()
        try:
            with _ONE_INVOCATION_AT_A_TIME:
                result = handler(json.loads(json.dumps(event)), context or self.context())
        finally:
            self._idle.put(handler)
        return json.loads(json.dumps(result))
