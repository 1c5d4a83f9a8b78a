"""Warm CPU per request, against the floor handler doing the same work in the same kind of process.

In the same Lambda-like child as the cold start (``bench/cold_start.py``: the package ``make build-*``
ships, Lambda's Python 3.13 when found, ``-S -s -B``): after the first request, ``N`` more requests
through ``lambda_handler`` with AWS answered in memory at botocore's HTTP layer (so request
serialisation, SigV4 signing and response parsing are counted; the network is not), CPU time
(``time.process_time``) per request. The baseline is the floor handler (``bench/floors/``) measured
the same way: what botocore and the cryptography alone cost for one request of this design. The aim
is <= 1.5x.

Variants, each a child of its own: the function as shipped, its floor, the function with the Logger at
WARNING (no per-request line) and with Metrics disabled (no EMF blob), which show those two shares;
while a package still ships the X-Ray SDK, also with Powertools' Tracer disabled. Every round runs
every variant once, in turn, so all see the same machine; each figure is the variant's least
disturbed round (its minimum, as ``timeit`` advises: other work on a shared machine only ever adds
CPU time to a process, through caches and frequency), every round's value in ``detail``.

The earlier baseline is kept in rows of its own: the same cryptography alone in the same process
(mint: one Ed25519-signed compact JWS; accept: one EdDSA decode with PyJWT plus one RS256 encode,
keys parsed once).
"""

from __future__ import annotations

from typing import Any

from bench import Figure, Options, benchmark
from bench._envs import FunctionEnv, floor_package, lambda_package
from bench._scenarios import FLOORS, SCENARIOS, Scenario, child_env, handler_spec, run_child
from bench.cold_start import _interpreter

TARGET = "<= 1.5x"
QUIET = {
    "Logger at WARNING": {"POWERTOOLS_LOG_LEVEL": "WARNING"},
    "Metrics off": {"POWERTOOLS_METRICS_DISABLED": "true"},
}


def _least(runs: list[dict[str, Any]], key: str = "warm_cpu_us") -> float:
    return min(run[key] for run in runs)


def _rounds(
    scenario: Scenario, variants: dict[str, tuple[FunctionEnv, dict[str, str]]], warm: int, repeats: int
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, (environment, env) in variants.items():
            results[label].append(run_child(environment, handler_spec(scenario, warm=warm), env))
    return results


@benchmark("warm cpu", order=20)
def warm_cpu(options: Options) -> list[Figure]:
    warm = options.runs(full=1500, quick=300)
    repeats = options.runs(full=5, quick=1)
    python, about = _interpreter()
    figures = []
    for name, make in SCENARIOS.items():
        scenario = make()
        environment = lambda_package(name, python, compiled=True)
        floor_env = floor_package(FLOORS[name], python)
        env = child_env(scenario, environment)
        variants = {
            "function": (environment, env),
            "floor": (floor_env, child_env(scenario, floor_env)),
            **{label: (environment, {**env, **extra}) for label, extra in QUIET.items()},
        }
        if environment.has("aws_xray_sdk"):
            variants["X-Ray tracer off"] = (environment, {**env, "POWERTOOLS_TRACE_DISABLED": "true"})
        results = _rounds(scenario, variants, warm, repeats)
        runs, floors = results["function"], results["floor"]
        crypto = "Ed25519 JWS sign" if name == "mint_link" else "PyJWT EdDSA decode + RS256 encode"
        floor_name = f"{FLOORS[name]} floor"
        floor_base = f"{floor_name} handler"
        rounds = {label: [round(run["warm_cpu_us"], 1) for run in samples] for label, samples in results.items()}
        detail = {
            "requests": warm,
            "repeats": repeats,
            "interpreter": about,
            "statuses": runs[0]["warm_statuses"],
            "floor_statuses": floors[0]["warm_statuses"],
            "aws_calls_per_warm_request": runs[0]["warm_calls_per_request"],
            "floor_aws_calls_per_warm_request": floors[0]["warm_calls_per_request"],
            "rounds_us": rounds,
        }
        figures.append(
            Figure("warm cpu", f"{name}: CPU per warm request", _least(runs), "us", floor_base, _least(floors),
                   target=TARGET, note="AWS answered in memory", detail=detail)
        )  # fmt: skip
        figures.append(
            Figure("warm cpu", f"{name}: CPU per warm request, vs the cryptography alone", _least(runs), "us", crypto,
                   _least(runs, "floor_cpu_us"), note="the earlier baseline", detail={"rounds_us": rounds})
        )  # fmt: skip
        figures.append(
            Figure("warm cpu", f"{floor_name}: CPU per warm request, vs the cryptography alone", _least(floors),
                   "us", crypto, _least(floors, "floor_cpu_us"), note="what botocore adds to the cryptography",
                   detail={"rounds_us": rounds})
        )  # fmt: skip
        for label in variants:
            if label in ("function", "floor"):
                continue
            extra = QUIET.get(label, {"POWERTOOLS_TRACE_DISABLED": "true"})
            figures.append(
                Figure("warm cpu", f"{name}: CPU per warm request, {label}", _least(results[label]), "us",
                       floor_base, _least(floors), note=f"{', '.join(f'{k}={v}' for k, v in extra.items())}: its share",
                       detail={"rounds_us": rounds})
            )  # fmt: skip
    return figures
