"""Cold start: a fresh process importing and initialising each handler, against ``import boto3``.

Each sample is a new ``python -S -s -B`` process run by Lambda's own Python version (3.13, found as
the Makefile finds it: ``bench/_envs.py`` ``lambda_python``; if this machine has none, this
interpreter, and every figure says so). Its ``sys.path`` holds only what the deployed function
has: the artifacts directory ``make build-<Function>`` makes, rebuilt here with that interpreter
(the function's pinned ``requirements.txt`` installed ``--no-deps``, so mint runs WITHOUT
``cryptography``, as shipped; ``signin_links``, ``app.py``, ``templates/``; bytecode written by
``compileall --invalidation-mode unchecked-hash``, as the Makefile does), then the runtime's boto3
(the dev venv's versions, installed by the same interpreter). ``-B``: ``/var/task`` is read-only,
so nothing compiled at run time is kept. The Lambda runtime's environment is set, so Powertools'
Tracer is on, as it is with ``Tracing: Active``. Samples of the baseline (``import boto3``, same
interpreter, same flags) and of each handler are interleaved; medians reported. The figure is CPU
time (``time.process_time``) of the child: an import is single-threaded and CPU-bound once files
are in the page cache, so it equals wall time on an idle machine, and it stays put when other work
shares the cores (wall-clock medians are kept in ``detail``).

* import: ``import app`` alone;
* cold start: ``import app`` plus the first request through ``lambda_handler`` (client creation,
  secrets, keyring parsing, signing, logging, metrics), AWS answered in memory at botocore's HTTP
  layer, so the network is not in the figure;
* without bytecode: the same, from the same package with no ``.pyc`` in it (what the build ships
  when it finds no Python 3.13): every module of the package is compiled from source at each cold
  start. The difference is what the build's ``compileall`` saves.
"""

from __future__ import annotations

from typing import Any

from bench import Figure, Options, benchmark, median
from bench._envs import (
    FunctionEnv,
    Interpreter,
    bytecode_census,
    current_python,
    lambda_package,
    lambda_python,
    runtime_only_env,
)
from bench._scenarios import SCENARIOS, Scenario, child_env, handler_spec, lambda_runtime_env, run_child

TARGET = "<= 1.5x"


def _samples(
    runs: int, baseline: FunctionEnv, subjects: dict[str, tuple[FunctionEnv, Scenario]]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    base_env = lambda_runtime_env(baseline.task_root)
    # one unmeasured round first: warms the page cache
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


def _interpreter() -> tuple[Interpreter, str]:
    """Lambda's Python version if this machine has it, else this one; and what to say about it."""
    found = lambda_python()
    if found is not None:
        return found, f"{found.label} (Lambda's), {found.executable}"
    here = current_python()
    return here, f"no Python 3.13 found: {here.label} stands in for Lambda's 3.13"


def _cold_cpu(samples: list[dict[str, Any]]) -> float:
    return median([run["import_cpu_ms"] + run["first_request_cpu_ms"] for run in samples])


@benchmark("cold start", order=10)
def cold_start(options: Options) -> list[Figure]:
    runs = options.runs(full=9, quick=3)
    python, about = _interpreter()
    lambdas_version = python.version_info == (3, 13)
    baseline = runtime_only_env(python)
    scenarios = {name: make() for name, make in SCENARIOS.items()}
    compiled = {name: (lambda_package(name, python, compiled=True), s) for name, s in scenarios.items()}
    bare = {f"{name} (no .pyc)": (lambda_package(name, python, compiled=False), s) for name, s in scenarios.items()}
    boto3_runs, handler_runs = _samples(runs, baseline, {**compiled, **bare})
    boto3_ms = median([run["import_cpu_ms"] for run in boto3_runs])
    base = f"import boto3 (CPU, {python.label})"
    measured_with = {"python": boto3_runs[0]["python"], "python_executable": python.executable, "interpreter": about}
    packaged_note = "as make build-* ships it" if lambdas_version else "what a build with Python 3.13 ships"
    bare_note = "what make build-* ships with no Python 3.13" if lambdas_version else "as make build-* ships it here"
    if not lambdas_version:
        packaged_note, bare_note = f"{packaged_note}; {about}", f"{bare_note}; {about}"
    figures: list[Figure] = []
    for name, (environment, _) in compiled.items():
        samples = handler_runs[name]
        unpacked = handler_runs[f"{name} (no .pyc)"]
        statuses = sorted({run["status"] for run in samples})
        detail = {
            **measured_with,
            "runs": runs,
            "first_request_statuses": statuses,
            "cryptography_in_package": environment.has("cryptography"),
            "aws_calls_on_first_request": samples[0]["cold_calls"],
            "modules_loaded": samples[0]["modules"],
            "boto3_modules_loaded": boto3_runs[0]["modules"],
            "package_bytecode": bytecode_census(environment.task_root, python.cache_tag),
            "wall_import_ms": median([run["import_ms"] for run in samples]),
            "wall_cold_ms": median([run["import_ms"] + run["first_request_ms"] for run in samples]),
            "wall_boto3_ms": median([run["import_ms"] for run in boto3_runs]),
            "first_request_cpu_ms": median([run["first_request_cpu_ms"] for run in samples]),
            "saved_by_bytecode_cpu_ms": round(_cold_cpu(unpacked) - _cold_cpu(samples), 1),
        }
        import_ms = median([run["import_cpu_ms"] for run in samples])
        figures.append(Figure("cold start", f"{name}: import app", import_ms, "ms", base, boto3_ms, detail=detail))
        statuses_note = "" if statuses == [200] or statuses == [303] else f"; status {statuses}"
        figures.append(
            Figure(
                "cold start",
                f"{name}: import + first request",
                _cold_cpu(samples),
                "ms",
                base,
                boto3_ms,
                target=TARGET,
                note=f"{packaged_note}; AWS answered in memory{statuses_note}",
                detail=detail,
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{name}: import + first request, no .pyc",
                _cold_cpu(unpacked),
                "ms",
                base,
                boto3_ms,
                note=bare_note,
                detail={
                    **measured_with,
                    "runs": runs,
                    "first_request_statuses": sorted({run["status"] for run in unpacked}),
                    "package_bytecode": bytecode_census(bare[f"{name} (no .pyc)"][0].task_root, python.cache_tag),
                },
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
                    detail=measured_with,
                )
            )
    return figures
