"""Languages: what reading the gettext catalogues adds to a cold accept.

The accept's init loads only the default language (English is the source: no file is read); the
first page in another language reads that language's ``.mo`` once per execution environment. Each
sample is a fresh ``python -B`` process (no bytecode written) that times, in CPU time, three steps
after the interpreter started: ``import signin_links.i18n, signin_links.pages`` (what the accept
imports anyway), then reading one catalogue (German), then the five others. The baseline is
``import boto3`` timed the same way in the same kind of process, the cold start's oldest yardstick:
the ratio says what a language costs next to it. Samples are interleaved; medians.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench import ROOT, Figure, Options, benchmark, median

CHILD = """
import json, time
t0 = time.process_time()
{body}
print(json.dumps(timings))
"""
LANGUAGES = """
from signin_links import i18n, pages
t1 = time.process_time()
i18n.language("de").text("Sign in")
t2 = time.process_time()
for tag in ("fr", "es", "pt-BR", "ja", "ar"):
    i18n.language(tag).text("Sign in")
t3 = time.process_time()
timings = {"import": t1 - t0, "one": t2 - t1, "five_more": t3 - t2}
"""
BOTO3 = """
import boto3
timings = {"boto3": time.process_time() - t0}
"""


def _child(body: str) -> dict[str, float]:
    answer = subprocess.run(
        [sys.executable, "-B", "-c", CHILD.format(body=body)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    timings: dict[str, float] = json.loads(answer.stdout)
    return timings


@benchmark("languages", order=15)
def languages(options: Options) -> list[Figure]:
    runs = options.runs(15, 3)
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        samples.append({**_child(LANGUAGES), **_child(BOTO3)})

    def ms(key: str) -> float:
        return median([sample[key] for sample in samples]) * 1000

    boto3 = ms("boto3")
    detail: dict[str, Any] = {"runs": runs, "import_i18n_and_pages_ms": round(ms("import"), 3)}
    note = "once per execution environment and language; English (the source) reads no file"
    return [
        Figure(
            "languages",
            "first page in a language: its catalogue read",
            ms("one"),
            "ms",
            baseline="import boto3",
            baseline_value=boto3,
            note=note,
            detail=detail,
        ),
        Figure(
            "languages",
            "the five other catalogues read",
            ms("five_more"),
            "ms",
            baseline="import boto3",
            baseline_value=boto3,
            note=note,
            detail=detail,
        ),
    ]
