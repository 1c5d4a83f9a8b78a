"""Throughput of the local stack over loopback, with concurrent clients (httpx, one per thread).

Starts ``python -m local.stack`` on a free port (its own state file and log under a temp dir),
warms each function up, then runs, each bounded in count and in time:

* baseline: a request to a route that does not exist (the stack's HTTP server and API Gateway
  emulation only, no handler, no AWS): what any request costs here;
* mint: ``POST /v1/sign_in_tokens``;
* accept: ``POST /accept-token`` (JSON) of each token minted, once.

Reported: p50 and p99 latency and requests per second, each against the baseline of the same run.
Every AWS call goes to moto's server, which serves one request at a time (``local.emulator``): the
figures say what the local stack sustains, not what Lambda and DynamoDB would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT, Figure, Options, benchmark, median, percentile

START_TIMEOUT_S = 120.0
CAP_S = 60.0  # the whole benchmark, all phases


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    results: list[Any] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class RunningStack:
    url: str
    secret_key: str
    process: subprocess.Popen[bytes]


def start_stack(workdir: Path) -> RunningStack:
    state_path = workdir / "state.json"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))},
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOCAL_STACK_STATE": str(state_path),
        "PYTHONUNBUFFERED": "1",
    }
    with (workdir / "stack.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited: {(workdir / 'stack.log').read_text()[-3000:]}")
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
                httpx.get(state["url"] + "/", timeout=2)
                return RunningStack(url=state["url"], secret_key=state["secret_key"], process=process)
            except (ValueError, KeyError, httpx.HTTPError):
                pass
        time.sleep(0.2)
    stop_stack(process)
    raise RuntimeError("the local stack did not start in time")


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


Request = Callable[[Any, int], tuple[int, Any]]


def run_phase(name: str, base_url: str, headers: dict[str, str], request: Request, count: int, clients: int,
              budget_s: float) -> Phase:  # fmt: skip
    """``count`` requests over ``clients`` threads, each with its own keep-alive client; no new
    request starts after ``budget_s``."""
    import httpx

    phase = Phase(name)
    lock = threading.Lock()
    next_index = iter(range(count))
    deadline = time.monotonic() + budget_s

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                started = time.perf_counter()
                status, result = request(client, index)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    phase.latencies_ms.append(elapsed)
                    phase.statuses[status] = phase.statuses.get(status, 0) + 1
                    if result is not None:
                        phase.results.append(result)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - began
    return phase


def _figures(phase: Phase, baseline: Phase, clients: int) -> list[Figure]:
    detail = {"requests": phase.requests, "clients": clients, "statuses": phase.statuses,
              "seconds": round(phase.seconds, 2), "baseline_requests": baseline.requests}  # fmt: skip
    base = "no-route request"
    ok = all(status < 400 for status in phase.statuses)
    note = f"{phase.requests} req, {clients} clients" + ("" if ok else f"; statuses {phase.statuses}")
    return [
        Figure("throughput", f"{phase.name}: p50 latency", percentile(phase.latencies_ms, 0.5), "ms", base,
               percentile(baseline.latencies_ms, 0.5), note=note, detail=detail),
        Figure("throughput", f"{phase.name}: p99 latency", percentile(phase.latencies_ms, 0.99), "ms", base,
               percentile(baseline.latencies_ms, 0.99), note=note, detail=detail),
        Figure("throughput", f"{phase.name}: requests per second", phase.per_second, "req/s", base,
               baseline.per_second, note=note, detail=detail),
    ]  # fmt: skip


@benchmark("throughput", order=40)
def throughput(options: Options) -> list[Figure]:
    count = options.runs(full=500, quick=100)
    clients = 8
    budget = CAP_S / 4  # baseline, mint, accept, and the rest for start-up and warm-up
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            auth = {"Authorization": f"Bearer {stack.secret_key}"}
            mint_body = json.dumps({"user_id": "user_bench"})

            def no_route(client: Any, index: int) -> tuple[int, Any]:
                return client.get("/v1/bench-no-such-route").status_code, None

            def mint(client: Any, index: int) -> tuple[int, Any]:
                response = client.post("/v1/sign_in_tokens", content=mint_body,
                                       headers={"Content-Type": "application/json"})  # fmt: skip
                token = response.json().get("token") if response.status_code == 200 else None
                return response.status_code, token

            # warm-up: each function's first (cold) request, outside the measured phases
            warm = run_phase("warm-up", stack.url, auth, mint, 4, 2, budget)
            tokens_for_warmup = list(warm.results)

            def accept_from(tokens: list[str]) -> Request:
                def accept(client: Any, index: int) -> tuple[int, Any]:
                    response = client.post("/accept-token", json={"token": tokens[index]},
                                           headers={"Accept": "application/json"})  # fmt: skip
                    return response.status_code, None

                return accept

            run_phase("warm-up", stack.url, {}, accept_from(tokens_for_warmup), len(tokens_for_warmup), 2, budget)
            baseline = run_phase("baseline", stack.url, auth, no_route, count, clients, budget)
            minted = run_phase("mint", stack.url, auth, mint, count, clients, budget)
            tokens = [token for token in minted.results if token]
            accepted = run_phase("accept", stack.url, {}, accept_from(tokens), len(tokens), clients, budget)
        finally:
            stop_stack(stack.process)
    figures = _figures(minted, baseline, clients) + _figures(accepted, baseline, clients)
    for figure in figures:
        figure.detail["baseline_p50_ms"] = round(median(baseline.latencies_ms), 2)
    return figures
