"""The local stack's execution environments are worker processes (``local.runtime``), as on Lambda.

Each environment is its own process that runs one invocation at a time; a function scales out to
its concurrency and no further; a handler that raises keeps its environment, one that crashes or
times out is replaced; a function whose init fails is reported at start and its routes answer 500;
and stopping the stack leaves no process behind.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.apigw import HttpRequest
from local.emulator import MotoServer
from local.invocation import InvocationError
from local.runtime import LocalFunction
from local.stack import LocalStack
from local.template import FunctionSpec, functions
from tests.e2e.conftest import running_stack

HANDLER = """
import json, os, sys, time
from pathlib import Path


def handler(event, context):
    started = time.monotonic()
    action = event.get("action")
    if action == "raise":
        raise ValueError("bad " + event["secret"])
    if action == "exit":
        os._exit(3)
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "unserialisable":
        return {"value": object()}
    if action == "meet":  # wait until `count` invocations have arrived: proof they run at once
        rendezvous = Path(event["dir"])
        (rendezvous / context.aws_request_id).touch()
        deadline = time.monotonic() + event["wait"]
        while len(list(rendezvous.iterdir())) < event["count"] and time.monotonic() < deadline:
            time.sleep(0.01)
        met = len(list(rendezvous.iterdir())) >= event["count"]
        return {"pid": os.getpid(), "met": met}
    if action == "log":
        print(json.dumps({"level": "INFO", "message": "hello from the worker"}))
    return {
        "pid": os.getpid(),
        "function": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "variable": os.environ.get("WORKER_TEST_VARIABLE"),
        "started": started,
        "ended": time.monotonic(),
    }


def http(event, context):
    if event["rawPath"] == "/boom":
        raise ValueError("the message may quote " + event["rawQueryString"])
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid()})}
"""


def alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry.name))
    return found


def wait_gone(pids: set[int], timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(HANDLER)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "app.py").write_text("raise RuntimeError('cannot start')\n")
    return tmp_path


def spec(source: Path, *, directory: str = "fn", handler: str = "app.handler", timeout_s: int = 60) -> FunctionSpec:
    return FunctionSpec(
        logical_id="Worker",
        source_dir=source / directory,
        handler=handler,
        memory_mb=256,
        timeout_s=timeout_s,
        environment={},
        properties={},
    )


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[LocalFunction] = []

    def make(function_spec: FunctionSpec, concurrency: int = 1) -> LocalFunction:
        function = LocalFunction(spec=function_spec, name="local-Worker", concurrency=concurrency, processes=True)
        made.append(function)
        return function

    yield make
    for function in made:
        function.close()


def test_an_environment_is_a_process_that_inherits_the_stacks_environment(
    source: Path, make: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_TEST_VARIABLE", "set by the stack")
    function = make(spec(source, timeout_s=30))
    result = function.invoke({"action": "echo"})
    assert result["pid"] != os.getpid()
    assert result["function"] == "local-Worker"
    assert result["variable"] == "set by the stack"
    assert 0 < result["remaining_ms"] <= 30_000
    function.invoke({"action": "log"})
    assert "hello from the worker" in capfd.readouterr().out  # its stdout is ours
    pids = set(function.worker_pids())
    assert pids == {result["pid"]}
    function.close()
    assert wait_gone(pids) == set()
    with pytest.raises(RuntimeError, match="stopped"):
        function.invoke({})


def test_invocations_run_at_once_up_to_the_concurrency_and_one_at_a_time_per_environment(
    source: Path, make: Any, tmp_path: Path
) -> None:
    function = make(spec(source), concurrency=3)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    meet = {"action": "meet", "dir": str(rendezvous), "count": 3, "wait": 45}
    with ThreadPoolExecutor(3) as pool:
        met = list(pool.map(function.invoke, [meet] * 3))
    assert all(result["met"] for result in met)  # three invocations were in flight together
    assert len({result["pid"] for result in met}) == 3

    with ThreadPoolExecutor(12) as pool:
        echoes = list(pool.map(function.invoke, [{"action": "echo"}] * 36))
    assert {result["pid"] for result in echoes} <= {result["pid"] for result in met}  # never a fourth
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for result in echoes:
        by_pid.setdefault(result["pid"], []).append((result["started"], result["ended"]))
    for intervals in by_pid.values():
        intervals.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in pairwise(intervals))


def test_a_raise_keeps_the_environment_a_crash_or_timeout_replaces_it(source: Path, make: Any) -> None:
    function = make(spec(source, timeout_s=2))
    first = function.invoke({"action": "echo"})["pid"]

    with pytest.raises(InvocationError) as raised:
        function.invoke({"action": "raise", "secret": "sit_123"})
    error = raised.value
    assert (error.error_type, error.error_message, error.fatal) == ("ValueError", "bad sit_123", False)
    assert any("handler" in frame for frame in error.stack_trace)
    assert function.invoke({"action": "echo"})["pid"] == first  # still warm

    with pytest.raises(InvocationError) as raised:
        function.invoke({"action": "unserialisable"})
    assert raised.value.error_type == "Runtime.MarshalError"

    with pytest.raises(InvocationError) as raised:
        function.invoke({"action": "exit"})
    assert raised.value.error_type == "Runtime.ExitError"
    assert "exit status 3" in raised.value.error_message
    assert not alive(first)
    second = function.invoke({"action": "echo"})["pid"]
    assert second != first

    with pytest.raises(InvocationError) as raised:
        function.invoke({"action": "sleep", "seconds": 30})
    assert raised.value.error_type == "Sandbox.Timedout"
    assert wait_gone({second}) == set()
    assert function.invoke({"action": "echo"})["pid"] not in (first, second)


def test_an_init_error_is_raised_at_start_and_by_every_invocation(source: Path, make: Any) -> None:
    function = make(spec(source, directory="broken"))
    with pytest.raises(InvocationError) as raised:
        function.initialise()
    assert (raised.value.error_type, raised.value.error_message) == ("RuntimeError", "cannot start")
    with pytest.raises(InvocationError, match="cannot start"):
        function.invoke({})
    assert function.worker_pids() == []  # the failed environments are gone


def test_the_stack_reports_a_failed_init_and_answers_500_for_a_failed_invocation(
    source: Path, restore_environ: None, capfd: pytest.CaptureFixture[str]
) -> None:
    def function(directory: str, handler: str, *paths: str) -> dict[str, Any]:
        events = {
            f"Get{n}": {"Type": "HttpApi", "Properties": {"Path": path, "Method": "GET"}}
            for n, path in enumerate(paths)
        }
        return {
            "Type": "AWS::Serverless::Function",
            "Metadata": {"SourceDir": directory},
            "Properties": {"Handler": handler, "Runtime": "python3.13", "Events": events},
        }

    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Http": function("fn", "app.http", "/echo", "/boom"),
            "Broken": function("broken", "app.handler", "/broken"),
        },
    }
    with MotoServer() as moto:
        stack = LocalStack.build(
            url="http://127.0.0.1:3999",
            endpoint=moto.endpoint,
            template=template,
            specs=functions(template, root=source),
            processes=True,
        )
        try:
            stack.activate()
            assert set(stack.init_errors) == {"Broken"}
            assert "cannot start" in stack.init_errors["Broken"]

            def get(target: str) -> int:
                response, _ = stack.call(HttpRequest(method="GET", target=target, headers=[]), "127.0.0.1:3999")
                return response.status

            assert get("/echo") == 200
            assert get("/broken") == 500
            assert get("/boom?sit_secret_in_the_query") == 500
            assert get("/echo") == 200  # the environment that raised still serves
            workers = {pid for function in stack.functions.values() for pid in function.worker_pids()}
            assert workers
            assert os.getpid() not in workers
        finally:
            stack.close()
    assert wait_gone(workers) == set()
    log = capfd.readouterr().err
    assert "!! Broken failed to initialise: RuntimeError: cannot start" in log
    assert "!! Http failed: ValueError" in log
    assert "sit_secret_in_the_query" not in log  # the message (it quotes the request) is never logged


def test_stopping_the_stack_ends_every_worker(tmp_path: Path) -> None:
    with running_stack(tmp_path, env={"LOCAL_CONCURRENCY": "3"}) as stack:
        with stack.client() as api, ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(lambda n: api.post("/v1/sign_in_tokens", json={"user_id": f"u{n}"}).status_code, range(12))
            )
        assert statuses == [200] * 12
        workers = children(stack.process.pid)
        assert len(workers) >= 3  # a worker per function at least (and multiprocessing's resource tracker)
        jwks = httpx.get(stack.base_url + "/.well-known/jwks.json", timeout=30)
        assert jwks.status_code == 200, jwks.text
        assert json.loads(jwks.text)["keys"]
        process = stack.process
    assert process.returncode == 0
    assert wait_gone(workers) == set()
