"""Profile the warm path: ``python -m bench.profile_warm mint_link`` (or ``accept_token``, or a floor:
``mint`` / ``accept``).

The same Lambda-like child as ``bench/warm_cpu.py`` (the package ``make build-*`` ships, Lambda's
Python 3.13 when found, ``-S -s -B``, AWS answered in memory at botocore's HTTP layer), with the warm
requests run under ``cProfile``; prints ``pstats`` sorted by ``--sort`` (``tottime``, ``cumulative``).
A tool, not a benchmark: nothing is registered and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from bench._envs import floor_package, lambda_package
from bench._scenarios import FLOORS, SCENARIOS, child_env, handler_spec, run_child
from bench.cold_start import _interpreter


def main(argv: list[str] | None = None) -> int:
    kinds = {kind: name for name, kind in FLOORS.items()}
    parser = argparse.ArgumentParser(prog="python -m bench.profile_warm", description=__doc__.splitlines()[0])
    parser.add_argument("subject", choices=[*SCENARIOS, *kinds])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args(argv)
    python, about = _interpreter()
    function = kinds.get(args.subject, args.subject)
    scenario = SCENARIOS[function]()
    if args.subject in kinds:
        environment = floor_package(args.subject, python)
    else:
        environment = lambda_package(function, python, compiled=True)
    spec = {
        **handler_spec(scenario, warm=args.requests),
        "profile": True,
        "profile_sort": args.sort,
        "profile_lines": args.lines,
    }
    result = run_child(environment, spec, child_env(scenario, environment))
    print(f"{args.subject}: {result['warm_cpu_us']:.0f} us CPU per warm request under cProfile ({about})")
    print(f"statuses {result['warm_statuses']}, AWS calls per request {result['warm_calls_per_request']}")
    print(result["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
