"""``make capacity`` (bench/capacity.py) in step with what it reads: the template's parameters and
routes, session.js's refresh timing, and the figures of bench/results/latest.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bench import capacity
from local.template import load_template
from tests.conftest import ROOT

SOURCES = ("template", "bench", "AWS", "derived", "session.js")


def values(**overrides: str) -> dict[str, str]:
    return {line.label: line.value for line in capacity.report(overrides)}


def test_every_line_says_where_its_number_comes_from() -> None:
    lines = capacity.report()
    assert len(lines) > 25
    for line in lines:
        assert line.source.startswith(SOURCES), line
        assert line.value, line


def test_the_routes_are_the_templates() -> None:
    template = load_template()
    api = template["Resources"]["HttpApi"]["Properties"]
    parameters = template["Parameters"]
    report = values()
    public = f"{int(parameters['PublicRouteRateLimit']['Default']):,}/s"
    assert report["each public route (its own bucket)"].startswith(public)
    assert report["public routes"] == str(len(api["RouteSettings"]))
    assert report["/v1 (your backend) and other routes"].startswith(
        f"{int(parameters['ThrottleRateLimit']['Default']):,}/s"
    )
    assert report["sign-ins/s (a click: GET /accept-token, then its POST)"] == "1,000"


def test_a_parameter_given_moves_what_depends_on_it() -> None:
    before, after = values(), values(PublicRouteRateLimit="2000", SessionTokenLifetimeSeconds="300")
    assert after["sign-ins/s (a click: GET /accept-token, then its POST)"] == "2,000"
    tabs = "visible tabs the refresh route holds"
    assert float(after[tabs].replace(",", "")) > 2 * float(before[tabs].replace(",", ""))
    assert "none of these" in values(TableWarmWriteUnitsPerSecond="8000")["binds first at the wave"]
    assert "TableWarmWriteUnitsPerSecond" in before["binds first at the wave"]  # 5,000 WRU/s > a new table's 4,000


def test_session_js_timing_is_read_from_the_script() -> None:
    """The interval is session.js's: 1 to 1.5 margins before expiry, a margin min(5 s, life / 10)."""
    margin, share = capacity.session_js_margin()
    assert (margin, share) == (5.0, 0.1)
    assert values()["one visible tab refreshes every"].startswith("53.75 s")  # 60 - 1.25 x 5
    assert values(SessionTokenLifetimeSeconds="12")["one visible tab refreshes every"].startswith("10.50 s")


def test_the_bench_figures_it_reads_are_in_latest_json() -> None:
    names = {figure["name"] for figure in json.loads(capacity.LATEST.read_text())["figures"]}
    assert set(capacity.MEASURED) <= names


def test_the_pipe_and_batch_lines_follow_the_template() -> None:
    template = load_template()["Resources"]
    stream = template["AuditPipe"]["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]
    report = values()
    expected = stream["BatchSize"] * stream["ParallelizationFactor"] / capacity.PIPE_BATCH_SECONDS
    assert report["audit pipe per shard"] == f"~{expected:,.0f} records/s"
    assert re.match(r"10 concurrent \(1,000 users each\)", report["batch minting"])


@pytest.mark.parametrize("args", [[], ["PublicRouteRateLimit=1500"], ["--json"]])
def test_make_capacity_runs(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.capacity", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    if args == ["--json"]:
        assert {"section", "label", "value", "source"} <= set(json.loads(done.stdout)[0])
    else:
        assert "[template: PublicRouteRateLimit, PublicRouteBurstLimit]" in done.stdout
