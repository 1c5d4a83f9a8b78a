"""One invocation as Lambda's runtime makes it: the handler file imported by path, the context
object handlers and Powertools use, and a failed invocation reported as Lambda reports it
(``errorType``, ``errorMessage``, ``stackTrace``)."""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.account import ACCOUNT_ID, REGION
from local.template import FunctionSpec

Handler = Callable[[Any, Any], Any]


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
