"""Cold start: a fresh process importing and initialising each handler, against ``import boto3``.

Each sample is a new ``python -S -s`` process whose ``sys.path`` holds only what the deployed
function has (``bench/_envs.py``): the task root (``app.py``, ``templates/``, ``signin_links``), the
function's pinned ``requirements.txt`` (so mint runs WITHOUT ``cryptography``, as shipped) and the
runtime's boto3. The Lambda runtime's environment is set, so Powertools' Tracer is on, as it is with
``Tracing: Active``. Samples of the baseline and of each handler are interleaved; medians reported.
The figure is CPU time (``time.process_time``) of the child: an import is single-threaded and
CPU-bound once files are in the page cache, so it equals wall time on an idle machine, and it stays
put when other work shares the cores (wall-clock medians are kept in ``detail``).

* import: ``import app`` alone;
* cold start: ``import app`` plus the first request through ``lambda_handler`` (client creation,
  secrets, keyring parsing, signing, logging, metrics), AWS answered in memory at botocore's HTTP
  layer, so the network is not in the figure;
* as packaged: the same, with no ``.pyc`` in the package, which is what ``make build-*`` ships
  today (it deletes ``__pycache__``, and Lambda cannot write to ``/var/task``), so every module of
  the package is compiled from source at each cold start.
"""

from __future__ import annotations

from typing import Any

from bench import Figure, Options, benchmark, median
from bench._envs import FunctionEnv, function_env, runtime_only_env
from bench._scenarios import SCENARIOS, Scenario, child_env, handler_spec, lambda_runtime_env, run_child

TARGET = "<= 1.5x"


def _samples(
    runs: int, baseline: FunctionEnv, subjects: dict[str, tuple[FunctionEnv, Scenario]]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    base_env = lambda_runtime_env(baseline.task_root)
    # one unmeasured round first: writes the .pyc files where bytecode is allowed, warms the page cache
    run_child(baseline, {"mode": "boto3"}, base_env)
    for environment, scenario in subjects.values():
        run_child(environment, handler_spec(scenario), child_env(scenario, environment))
    boto3_runs: list[dict[str, Any]] = []
    handler_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in subjects}
    for _ in range(runs):
        boto3_runs.append(run_child(baseline, {"mode": "boto3"}, base_env))
        for name, (environment, scenario) in subjects.items():
            handler_runs[name].append(run_child(environment, handler_spec(scenario), child_env(scenario, environment)))
    return boto3_runs, handler_runs


@benchmark("cold start", order=10)
def cold_start(options: Options) -> list[Figure]:
    runs = options.runs(full=9, quick=3)
    baseline = runtime_only_env()
    scenarios = {name: make() for name, make in SCENARIOS.items()}
    packaged = {name: (function_env(name), scenario) for name, scenario in scenarios.items()}
    no_bytecode = {f"{name} (no .pyc)": (function_env(name, bytecode=False), s) for name, s in scenarios.items()}
    boto3_runs, handler_runs = _samples(runs, baseline, {**packaged, **no_bytecode})
    boto3_ms = median([run["import_cpu_ms"] for run in boto3_runs])
    base = "import boto3 (CPU)"
    figures: list[Figure] = []
    for name, (environment, _) in packaged.items():
        samples = handler_runs[name]
        statuses = sorted({run["status"] for run in samples})
        import_ms = median([run["import_cpu_ms"] for run in samples])
        cold_ms = median([run["import_cpu_ms"] + run["first_request_cpu_ms"] for run in samples])
        detail = {
            "runs": runs,
            "first_request_statuses": statuses,
            "cryptography_in_package": environment.has("cryptography"),
            "aws_calls_on_first_request": samples[0]["cold_calls"],
            "modules_loaded": samples[0]["modules"],
            "boto3_modules_loaded": boto3_runs[0]["modules"],
            "wall_import_ms": median([run["import_ms"] for run in samples]),
            "wall_cold_ms": median([run["import_ms"] + run["first_request_ms"] for run in samples]),
            "wall_boto3_ms": median([run["import_ms"] for run in boto3_runs]),
            "first_request_cpu_ms": median([run["first_request_cpu_ms"] for run in samples]),
        }
        figures.append(Figure("cold start", f"{name}: import app", import_ms, "ms", base, boto3_ms, detail=detail))
        figures.append(
            Figure(
                "cold start",
                f"{name}: import + first request",
                cold_ms,
                "ms",
                base,
                boto3_ms,
                target=TARGET,
                note="AWS answered in memory"
                + ("" if statuses == [200] or statuses == [303] else f"; status {statuses}"),
                detail=detail,
            )
        )
        unpacked = handler_runs[f"{name} (no .pyc)"]
        figures.append(
            Figure(
                "cold start",
                f"{name}: as packaged today (no .pyc)",
                median([run["import_cpu_ms"] + run["first_request_cpu_ms"] for run in unpacked]),
                "ms",
                base,
                boto3_ms,
                note="make build-* ships no bytecode",
                detail={"runs": runs},
            )
        )
        if name == "mint_link":
            figures.append(
                Figure(
                    "cold start",
                    "mint_link: RSA code loaded by a mint",
                    float(any(run["rsa_loaded"] or run["cryptography_loaded"] for run in samples)),
                    "yes/no",
                    target="== 0",
                    note="cryptography not shipped" if not environment.has("cryptography") else "cryptography shipped",
                )
            )
    return figures
