"""Cold start: a fresh process importing and initialising each handler, against its floor.

Each sample is a new ``python -S -s -B`` process run by Lambda's own Python version (3.13, found as
the Makefile finds it: ``bench/_envs.py`` ``lambda_python``; if this machine has none, this
interpreter, and every figure says so). Its ``sys.path`` holds only what the deployed function
has: the artifacts directory ``make build-<Function>`` makes, rebuilt here with that interpreter
(the function's pinned ``requirements.txt`` installed ``--no-deps``, so mint runs with
``cryptography`` and without PyJWT, as shipped; ``signin_links``, ``app.py``, ``templates/``; bytecode written by
``compileall --invalidation-mode unchecked-hash``, as the Makefile does), then the runtime's boto3
(the dev venv's versions, installed by the same interpreter). ``-B``: ``/var/task`` is read-only,
so nothing compiled at run time is kept. The Lambda runtime's environment is set (``Tracing:
Active`` included). AWS is answered in memory at botocore's HTTP layer from the first import of
``botocore.httpsession`` on, so init-time calls (secrets read while the module loads) are answered
too and the network is never in a figure.

The baseline of each function is its **floor** (``bench/floors/``): the least this design can do,
packaged and run the same way (mint: boto3 + cryptography's Ed25519, 2 clients, 2 secret reads,
one Ed25519-signed JWS, 1 PutItem; accept: boto3 + PyJWT + cryptography, the ticket's public key
and the session PEM loaded, EdDSA verify, 1 TransactWriteItems, RS256 sign). The ratio is what our
code adds; the aim is <= 1.1x. The earlier baseline, ``import boto3`` (same interpreter and flags),
is kept in rows of its own. Samples of every subject are interleaved; medians of CPU time
(``time.process_time``: equal to wall time on an idle machine, steady when other work shares the
cores; wall-clock medians are in ``detail``).

* init: ``import app`` alone (module-level work: with init-time work, clients, secrets, keyrings);
* init + first request: plus one request through ``lambda_handler``;
* no .pyc: the same package with no bytecode (what the build ships when it finds no Python 3.13).
"""

from __future__ import annotations

from typing import Any

from bench import Figure, Options, benchmark, median
from bench._envs import (
    FunctionEnv,
    Interpreter,
    bytecode_census,
    current_python,
    floor_package,
    lambda_package,
    lambda_python,
    runtime_only_env,
)
from bench._scenarios import FLOORS, SCENARIOS, Scenario, child_env, handler_spec, lambda_runtime_env, run_child

TARGET = "<= 1.1x"


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


def _init_cpu(samples: list[dict[str, Any]]) -> float:
    return median([run["import_cpu_ms"] for run in samples])


@benchmark("cold start", order=10)
def cold_start(options: Options) -> list[Figure]:
    runs = options.runs(full=9, quick=3)
    python, about = _interpreter()
    lambdas_version = python.version_info == (3, 13)
    baseline = runtime_only_env(python)
    scenarios = {name: make() for name, make in SCENARIOS.items()}
    compiled = {name: (lambda_package(name, python, compiled=True), s) for name, s in scenarios.items()}
    bare = {f"{name} (no .pyc)": (lambda_package(name, python, compiled=False), s) for name, s in scenarios.items()}
    floors = {f"{FLOORS[name]} floor": (floor_package(FLOORS[name], python), s) for name, s in scenarios.items()}
    boto3_runs, handler_runs = _samples(runs, baseline, {**compiled, **bare, **floors})
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
        floor_name = f"{FLOORS[name]} floor"
        floor_samples = handler_runs[floor_name]
        floor_cold = _cold_cpu(floor_samples)
        statuses = sorted({run["status"] for run in samples})
        detail = {
            **measured_with,
            "runs": runs,
            "first_request_statuses": statuses,
            "cryptography_in_package": environment.has("cryptography"),
            "aws_calls_at_init": samples[0]["init_calls"],
            "aws_calls_on_first_request": samples[0]["cold_calls"],
            "floor_aws_calls_at_init": floor_samples[0]["init_calls"],
            "floor_aws_calls_on_first_request": floor_samples[0]["cold_calls"],
            "floor_first_request_statuses": sorted({run["status"] for run in floor_samples}),
            "modules_loaded": samples[0]["modules"],
            "floor_modules_loaded": floor_samples[0]["modules"],
            "boto3_modules_loaded": boto3_runs[0]["modules"],
            "package_bytecode": bytecode_census(environment.task_root, python.cache_tag),
            "init_cpu_ms": _init_cpu(samples),
            "first_request_cpu_ms": median([run["first_request_cpu_ms"] for run in samples]),
            "floor_init_cpu_ms": _init_cpu(floor_samples),
            "floor_first_request_cpu_ms": median([run["first_request_cpu_ms"] for run in floor_samples]),
            "wall_cold_ms": median([run["import_ms"] + run["first_request_ms"] for run in samples]),
            "wall_floor_cold_ms": median([run["import_ms"] + run["first_request_ms"] for run in floor_samples]),
            "wall_boto3_ms": median([run["import_ms"] for run in boto3_runs]),
            "saved_by_bytecode_cpu_ms": round(_cold_cpu(unpacked) - _cold_cpu(samples), 1),
        }
        floor_base = f"{floor_name}, init + first request"
        statuses_note = "" if statuses in ([200], [303]) else f"; status {statuses}"
        figures.append(
            Figure(
                "cold start",
                f"{name}: init + first request",
                _cold_cpu(samples),
                "ms",
                floor_base,
                floor_cold,
                target=TARGET,
                note=f"{packaged_note}; AWS answered in memory{statuses_note}",
                detail=detail,
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{name}: init (import app)",
                _init_cpu(samples),
                "ms",
                f"{floor_name}, init",
                _init_cpu(floor_samples),
                note="module-level work: imports, clients, secrets, keyrings",
                detail=detail,
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{name}: init + first request, vs import boto3",
                _cold_cpu(samples),
                "ms",
                base,
                boto3_ms,
                note="the earlier baseline",
                detail=measured_with,
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{floor_name}: init + first request, vs import boto3",
                floor_cold,
                "ms",
                base,
                boto3_ms,
                note="what this design cannot avoid",
                detail={**measured_with, "runs": runs, "floor_statuses": sorted({r["status"] for r in floor_samples})},
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{name}: init + first request, no .pyc",
                _cold_cpu(unpacked),
                "ms",
                floor_base,
                floor_cold,
                note=bare_note,
                detail={
                    **measured_with,
                    "runs": runs,
                    "first_request_statuses": sorted({run["status"] for run in unpacked}),
                    "package_bytecode": bytecode_census(bare[f"{name} (no .pyc)"][0].task_root, python.cache_tag),
                },
            )
        )
        figures.append(
            Figure(
                "cold start",
                f"{name}: X-Ray SDK loaded",
                float(any(run["xray_sdk_loaded"] for run in samples)),
                "yes/no",
                target="== 0",
                note="aws_xray_sdk in sys.modules after the first request",
                detail=measured_with,
            )
        )
        if name == "mint_link":
            # It signs with Ed25519 (cryptography is shipped for it): RSA code or PyJWT (which would
            # load every algorithm of cryptography) in a mint is weight it does not need.
            figures.append(
                Figure(
                    "cold start",
                    "mint_link: RSA code loaded by a mint",
                    float(any(run["rsa_loaded"] for run in samples)),
                    "yes/no",
                    target="== 0",
                    note="cryptography.hazmat.primitives.asymmetric.rsa in sys.modules after the first request",
                    detail=measured_with,
                )
            )
            figures.append(
                Figure(
                    "cold start",
                    "mint_link: PyJWT loaded by a mint",
                    float(any(run["pyjwt_loaded"] for run in samples)),
                    "yes/no",
                    target="== 0",
                    note="jwt in sys.modules after the first request",
                    detail=measured_with,
                )
            )
    return figures
