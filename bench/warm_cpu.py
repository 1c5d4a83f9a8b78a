"""Warm CPU per request, against the floor handler doing the same work in the same kind of process.

In the same Lambda-like child as the cold start (``bench/cold_start.py``: the package ``make build-*``
ships, Lambda's Python 3.13 when found, ``-S -s -B``): after the first request, ``N`` more requests
through ``lambda_handler`` with AWS answered in memory at botocore's HTTP layer (so request
serialisation, SigV4 signing and response parsing are counted; the network is not), CPU time
(``time.process_time``) per request. The baseline is the floor handler (``bench/floors/``) measured
the same way: what botocore and PyJWT alone cost for one request of this design. The aim is <= 1.5x.

The earlier baseline is kept in rows of its own: PyJWT alone doing the same cryptography in the same
process (mint: one HS256 encode; accept: one HS256 decode plus one RS256 encode, key parsed once).
The same requests again with the Logger at WARNING (no per-request line) and with Metrics disabled
show those two shares; while a package still ships the X-Ray SDK, a run with Powertools' Tracer
disabled shows its share.
"""

from __future__ import annotations

from typing import Any

from bench import Figure, Options, benchmark, median
from bench._envs import floor_package, lambda_package
from bench._scenarios import FLOORS, SCENARIOS, child_env, handler_spec, run_child
from bench.cold_start import _interpreter

TARGET = "<= 1.5x"


@benchmark("warm cpu", order=20)
def warm_cpu(options: Options) -> list[Figure]:
    warm = options.runs(full=2000, quick=300)
    repeats = options.runs(full=3, quick=1)
    python, about = _interpreter()
    figures = []
    for name, make in SCENARIOS.items():
        scenario = make()
        environment = lambda_package(name, python, compiled=True)
        floor_env = floor_package(FLOORS[name], python)
        env = child_env(scenario, environment)
        floor_child_env = child_env(scenario, floor_env)
        runs: list[dict[str, Any]] = []
        floors: list[dict[str, Any]] = []
        for _ in range(repeats):  # interleaved, so both see the same machine
            runs.append(run_child(environment, handler_spec(scenario, warm=warm), env))
            floors.append(run_child(floor_env, handler_spec(scenario, warm=warm), floor_child_env))
        crypto = "PyJWT HS256 encode" if name == "mint_link" else "PyJWT HS256 decode + RS256 encode"
        floor_name = f"{FLOORS[name]} floor"
        value = median([run["warm_cpu_us"] for run in runs])
        detail = {
            "requests": warm,
            "repeats": repeats,
            "interpreter": about,
            "statuses": runs[0]["warm_statuses"],
            "floor_statuses": floors[0]["warm_statuses"],
            "aws_calls_per_warm_request": runs[0]["warm_calls_per_request"],
            "floor_aws_calls_per_warm_request": floors[0]["warm_calls_per_request"],
            "samples_us": [round(run["warm_cpu_us"], 1) for run in runs],
            "floor_samples_us": [round(run["warm_cpu_us"], 1) for run in floors],
        }
        figures.append(
            Figure(
                "warm cpu",
                f"{name}: CPU per warm request",
                value,
                "us",
                f"{floor_name} handler",
                median([run["warm_cpu_us"] for run in floors]),
                target=TARGET,
                note="AWS answered in memory",
                detail=detail,
            )
        )
        figures.append(
            Figure(
                "warm cpu",
                f"{name}: CPU per warm request, vs PyJWT alone",
                value,
                "us",
                crypto,
                median([run["floor_cpu_us"] for run in runs]),
                note="the earlier baseline",
                detail={"requests": warm, "repeats": repeats},
            )
        )
        figures.append(
            Figure(
                "warm cpu",
                f"{floor_name}: CPU per warm request, vs PyJWT alone",
                median([run["warm_cpu_us"] for run in floors]),
                "us",
                crypto,
                median([run["floor_cpu_us"] for run in floors]),
                note="what botocore adds to the cryptography",
                detail={"requests": warm, "repeats": repeats},
            )
        )
        # The share of the per-request Logger line and EMF metrics: the same requests with each off.
        for label, off in (
            ("Logger at WARNING", {"POWERTOOLS_LOG_LEVEL": "WARNING"}),
            ("Metrics off", {"POWERTOOLS_METRICS_DISABLED": "true"}),
        ):
            quiet = [run_child(environment, handler_spec(scenario, warm=warm), {**env, **off}) for _ in range(repeats)]
            figures.append(
                Figure(
                    "warm cpu",
                    f"{name}: CPU per warm request, {label}",
                    median([run["warm_cpu_us"] for run in quiet]),
                    "us",
                    f"{floor_name} handler",
                    median([run["warm_cpu_us"] for run in floors]),
                    note=f"{', '.join(f'{k}={v}' for k, v in off.items())}: its share",
                    detail={"requests": warm, "repeats": repeats},
                )
            )
        if environment.has("aws_xray_sdk"):
            untraced_env = {**env, "POWERTOOLS_TRACE_DISABLED": "true"}
            untraced = [run_child(environment, handler_spec(scenario, warm=warm), untraced_env) for _ in range(repeats)]
            figures.append(
                Figure(
                    "warm cpu",
                    f"{name}: CPU per warm request, X-Ray tracer off",
                    median([run["warm_cpu_us"] for run in untraced]),
                    "us",
                    f"{floor_name} handler",
                    median([run["warm_cpu_us"] for run in floors]),
                    note="POWERTOOLS_TRACE_DISABLED=true: the tracer's share",
                    detail={"requests": warm, "repeats": repeats},
                )
            )
    return figures
