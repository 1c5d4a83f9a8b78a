"""``python -m bench`` (``make bench``): run every registered benchmark, print a table of every
figure with its ratio, write ``bench/results/latest.json``.

Options: ``--quick`` (fewer samples: a smoke run), ``--only NAME`` (repeatable),
``--output PATH`` (default ``bench/results/latest.json``), ``--merge`` (fold this run into the output
file: its benchmarks' figures replace theirs, the others' stay, and the run is listed under
``"merged"`` with its own time and machine load), ``--list``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import RESULTS, ROOT, Figure, Options, discover


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    rows = [("group", "figure", "value", "baseline", "baseline value", "ratio", "target", "note")]
    for figure in figures:
        rows.append(
            (
                figure.group,
                figure.name,
                f"{_number(figure.value)} {figure.unit}",
                figure.baseline or "-",
                "-" if figure.baseline_value is None else f"{_number(figure.baseline_value)} {figure.unit}",
                "-" if figure.ratio is None else f"{figure.ratio:.2f}x",
                figure.target or "-",
                figure.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def merged(previous: dict[str, Any], run: dict[str, Any], groups: set[str]) -> dict[str, Any]:
    """``previous`` (a results file) with the figures of ``groups`` replaced by ``run``'s, in their
    place; what the file says about itself (its command, time, machine) stays, and ``run`` is listed
    under ``"merged"`` with its own, so every figure can be traced to the run that measured it. A
    group that failed in ``run`` is not replaced: its old figures stay, the failure is listed."""
    groups = groups - set(run["errors"])  # a group that failed keeps the figures it had (its error is listed)
    fresh = [figure for figure in run["figures"] if figure["group"] in groups]
    figures: list[dict[str, Any]] = []
    for figure in previous["figures"]:
        if figure["group"] not in groups:
            figures.append(figure)
        elif fresh and fresh[0]["group"] == figure["group"]:
            figures.extend(f for f in fresh if f["group"] == figure["group"])
            fresh = [f for f in fresh if f["group"] != figure["group"]]
    figures.extend(fresh)  # groups the previous file did not have
    errors = {name: error for name, error in previous.get("errors", {}).items() if name not in groups}
    entry = {key: run[key] for key in ("command", "started_at", "seconds", "machine")}
    return {
        **previous,
        "durations_s": {**previous.get("durations_s", {}), **{g: run["durations_s"][g] for g in groups}},
        "figures": figures,
        "errors": errors,
        "merged": [*previous.get("merged", []), {**entry, "groups": sorted(groups), "errors": run["errors"]}],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this benchmark")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--merge", action="store_true", help="fold this run's figures into --output's")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    benchmarks = discover()
    if args.list:
        for bench in benchmarks:
            print(f"{bench.name:20} {bench.module}")
        return 0
    unknown = set(args.only) - {bench.name for bench in benchmarks}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    options = Options(quick=args.quick, only=frozenset(args.only))
    selected = [bench for bench in benchmarks if not options.only or bench.name in options.only]

    started = time.time()
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    durations: dict[str, float] = {}
    for bench in selected:
        print(f"== {bench.name} ({bench.module}) ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            figures.extend(bench.function(options))
        except Exception as error:  # a broken benchmark is reported, and the others still run
            errors[bench.name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        durations[bench.name] = round(time.perf_counter() - began, 1)

    print()
    print(table(figures))
    for name, error in errors.items():
        print(f"\n!! {name} failed: {error.splitlines()[0] if error else ''}")

    result = {
        "command": "python -m bench"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {n!r}" if " " in n else f" --only {n}" for n in args.only)
        + (" --merge" if args.merge else ""),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine(),
        "durations_s": durations,
        "figures": [figure.as_json() for figure in figures],
        "errors": errors,
    }
    if args.merge and args.output.exists():
        result = merged(json.loads(args.output.read_text()), result, {bench.name for bench in selected})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(args.output)
    try:
        shown = args.output.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.output
    print(f"\nresults: {shown}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
