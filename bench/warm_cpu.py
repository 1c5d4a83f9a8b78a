"""Warm CPU per request, against the bare cryptographic floor measured in the same process.

In the same Lambda-like child as the cold start (``bench/cold_start.py``): after the first request,
``N`` more requests through ``lambda_handler`` with AWS answered in memory at botocore's HTTP layer
(so request serialisation, SigV4 signing and response parsing are counted; the network is not),
CPU time (``time.process_time``) per request. Then, in the same process, the floor: what PyJWT alone
needs for the same cryptography (mint: one HS256 encode; accept: one HS256 decode plus one RS256
encode with the key already parsed). The same again with Powertools' Tracer disabled shows what
X-Ray's per-request work (subsegments, a UDP datagram each) costs.
"""

from __future__ import annotations

from bench import Figure, Options, benchmark, median
from bench._envs import function_env
from bench._scenarios import SCENARIOS, child_env, handler_spec, run_child


@benchmark("warm cpu", order=20)
def warm_cpu(options: Options) -> list[Figure]:
    warm = options.runs(full=2000, quick=300)
    repeats = options.runs(full=3, quick=1)
    figures = []
    for name, make in SCENARIOS.items():
        scenario = make()
        environment = function_env(name)
        runs = [
            run_child(environment, handler_spec(scenario, warm=warm), child_env(scenario, environment))
            for _ in range(repeats)
        ]
        floor = "PyJWT HS256 encode" if name == "mint_link" else "PyJWT HS256 decode + RS256 encode"
        untraced_env = {**child_env(scenario, environment), "POWERTOOLS_TRACE_DISABLED": "true"}
        untraced = [run_child(environment, handler_spec(scenario, warm=warm), untraced_env) for _ in range(repeats)]
        figures.append(
            Figure(
                "warm cpu",
                f"{name}: CPU per warm request",
                median([run["warm_cpu_us"] for run in runs]),
                "us",
                floor,
                median([run["floor_cpu_us"] for run in runs]),
                note="AWS answered in memory",
                detail={
                    "requests": warm,
                    "repeats": repeats,
                    "statuses": runs[0]["warm_statuses"],
                    "aws_calls_per_warm_request": runs[0]["warm_calls_per_request"],
                },
            )
        )
        figures.append(
            Figure(
                "warm cpu",
                f"{name}: CPU per warm request, X-Ray tracer off",
                median([run["warm_cpu_us"] for run in untraced]),
                "us",
                floor,
                median([run["floor_cpu_us"] for run in untraced]),
                note="POWERTOOLS_TRACE_DISABLED=true: the tracer's share",
                detail={"requests": warm, "repeats": repeats},
            )
        )
    return figures
