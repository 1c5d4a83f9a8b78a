"""Benchmarks of signin-links: ``python -m bench`` (``make bench``).

Every figure is a ratio measured within ONE run: a thing of ours against a baseline measured in the
same process tree, on the same machine, at the same moment (``import boto3`` for cold start, bare
PyJWT for warm CPU, ...). Absolute milliseconds depend on the machine; the ratios travel.
Nothing here is a timed test: benchmarks report, they never fail a build.

Adding a benchmark: put a module in ``bench/`` (its name not starting with ``_``) with a function
decorated by :func:`benchmark`; it takes the :class:`Options` of the run and returns
:class:`Figure` objects. The runner imports every module of the package, so nothing else needs
registering::

    from bench import Figure, Options, benchmark

    @benchmark("batch", order=50)
    def batch(options: Options) -> list[Figure]:
        ...
        return [Figure("batch", "10,000-user batch", seconds, "s", baseline="BatchWriteItem loop",
                       baseline_value=loop_seconds)]
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"


@dataclass
class Figure:
    """One measured value, with the baseline it is read against (``ratio = value / baseline_value``)."""

    group: str
    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: str = ""  # e.g. "<= 1.5x", "== 1"
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return data


@dataclass(frozen=True)
class Options:
    """What the run was asked for: ``quick`` trades precision for time (CI smoke runs)."""

    quick: bool = False
    only: frozenset[str] = frozenset()

    def runs(self, full: int, quick: int) -> int:
        return quick if self.quick else full


BenchmarkFunction = Callable[[Options], list[Figure]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    function: BenchmarkFunction
    order: int
    module: str


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, order: int = 100) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register ``function`` as benchmark ``name`` (run in ascending ``order``)."""

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        REGISTRY[name] = Benchmark(name=name, function=function, order=order, module=function.__module__)
        return function

    return register


def discover() -> list[Benchmark]:
    """Import every module of the package (so each registers its benchmarks); sorted by order."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return sorted(REGISTRY.values(), key=lambda bench: (bench.order, bench.name))


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def run_module_child(module: str, tag: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``python -m <module> <args>`` in a clean process (none of this process's ``AWS_*`` or
    ``POWERTOOLS_*`` settings, a fixed hash seed) and return the JSON of its last ``<tag> `` line."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**clean, "PYTHONHASHSEED": "0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(f"{tag} ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(f"{tag} "))
