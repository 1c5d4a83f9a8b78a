"""``make capacity``: what a deploy with these parameters can take, each figure with where it comes from.

    make capacity                                            # the template's defaults
    make capacity PARAMS="PublicRouteRateLimit=2000 SessionTokenLifetimeSeconds=300"
    .venv/bin/python -m bench.capacity --json                # the same lines, as JSON

Three sources, and every line names its own:

* ``template``: ``template.yaml`` evaluated with the parameters given (defaults otherwise): throttles,
  memory sizes, the audit pipe's batching, the batch state machine, the email pacing.
* ``bench``: ``bench/results/latest.json`` (``make bench``): warm CPU per request and AWS calls per
  request, measured. CPU is measured on one full core; Lambda gives a function ``MemorySize / 1769``
  of a vCPU, so a duration is ``cpu x 1769 / MemorySize`` plus its AWS calls' round trips.
* ``AWS``: quotas, limits and prices, the constants below (us-east-1 defaults and list prices, from
  the services' quota and pricing pages; check yours: quotas can be raised, prices change). Where a
  figure is an assumption (a DynamoDB round trip, the pipe's batch time), the line says so.

``tests/unit/test_capacity.py`` keeps this in step with the template.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import ROOT

LATEST = ROOT / "bench" / "results" / "latest.json"
SESSION_JS = ROOT / "functions" / "accept_token" / "templates" / "session.js"

# --- AWS: quotas (defaults per account and region) and list prices (us-east-1) ----------------------
API_GATEWAY_ACCOUNT_RPS = 10_000  # API Gateway quotas page: every API of the account and region
API_GATEWAY_ACCOUNT_BURST = 5_000
LAMBDA_ACCOUNT_CONCURRENCY = 1_000  # Lambda quotas: concurrent executions (new accounts may start lower)
LAMBDA_SCALING_PER_10S = 1_000  # Lambda scaling: each function gains up to 1,000 environments per 10 s
LAMBDA_FULL_VCPU_MB = 1769  # Lambda: a function has one full vCPU at 1,769 MB, in proportion below
DYNAMODB_NEW_TABLE_WRU = 4_000  # DynamoDB on-demand: what a new table takes before it scales (warm throughput)
DYNAMODB_NEW_TABLE_RRU = 12_000
DYNAMODB_PARTITION_WRU = 1_000  # a partition (and so a stream shard) takes 1,000 writes a second
SECRETS_MANAGER_GET_RPS = 10_000  # Secrets Manager: GetSecretValue (+ DescribeSecret) requests a second
KMS_SYMMETRIC_RPS = 50_000  # KMS cryptographic operations (symmetric), us-east-1 (5,500-10,000 elsewhere)
SSM_GET_PARAMETER_RPS = 40  # SSM Parameter Store standard throughput
EVENTBRIDGE_PUT_EVENTS_RPS = 10_000  # EventBridge PutEvents requests a second, us-east-1 (lower elsewhere)
SES_NEW_ACCOUNT_RATE = 14  # SES production access starts at 14 emails/s and 50,000 a day
SES_NEW_ACCOUNT_DAY = 50_000
SQS_RETENTION_DAYS = 14
PRICE = {  # USD, us-east-1 list prices
    "api_request": 1.00 / 1e6,  # HTTP API, first 300 million a month
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm": 0.0000133334,
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_rru": 0.125 / 1e6,
    "event": 1.00 / 1e6,  # EventBridge custom event (per 64 KB)
    "pipe_request": 0.40 / 1e6,  # EventBridge Pipes, per request after filtering (per 64 KB)
    "log_gb": 0.50,  # CloudWatch Logs ingestion
}
# --- Assumptions (no figure of ours measures them) ----------------------------------------------------
DYNAMODB_ROUND_TRIP_MS = 8.0  # an in-region DynamoDB request, signed and answered (p50-ish)
PIPE_BATCH_SECONDS = 0.4  # one audit batch: the enrichment's invocation and PutEvents
LOG_BYTES_PER_REQUEST = 1_000  # the access log line (~250 B) and the function's JSON line and EMF blob


# The figures of bench/results/latest.json read here (tests/unit/test_capacity.py checks they exist).
ACCEPT_CPU = "accept_token: CPU per warm request"
MINT_CPU = "mint_link: CPU per warm request"
ACCEPT_CALLS = "accept (warm): AWS calls"
REFRESH_CALLS = "refresh (warm): AWS calls"  # the rotation: one conditional UpdateItem, no read
MINT_CALLS = "mint (warm): dynamodb calls"
MEASURED = (ACCEPT_CPU, MINT_CPU, ACCEPT_CALLS, REFRESH_CALLS, MINT_CALLS)


@dataclass(frozen=True)
class Line:
    section: str
    label: str
    value: str
    source: str


def _number(value: Any) -> float:
    return float(str(value))


def template_values(overrides: dict[str, str]) -> dict[str, Any]:
    """What the template says with these parameters (resolved as CloudFormation would)."""
    from local.intrinsics import LOCAL_DEPLOY, Resolver, parameter_values
    from local.template import load_template

    template = load_template()
    resolver = Resolver(template, parameter_values(template, {**LOCAL_DEPLOY, **overrides}))
    resources = template["Resources"]
    api = {
        key: resolver.resolve(resources["HttpApi"]["Properties"][key])
        for key in ("DefaultRouteSettings", "RouteSettings")
    }
    memory = _number(template["Globals"]["Function"]["MemorySize"])
    pipe = resources["AuditPipe"]["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]
    asl = json.loads((ROOT / resources["MintBatchStateMachine"]["Properties"]["DefinitionUri"]).read_text())
    mint_chunks = asl["States"]["MintChunks"]
    params = resolver.parameters
    table = resources["TokensTable"]["Properties"]
    return {
        "table_warm_wru": _number(params["TableWarmWriteUnitsPerSecond"]),
        "session_indexes": len(table.get("GlobalSecondaryIndexes", [])),
        "public_routes": sorted(api.get("RouteSettings", {})),
        "public_rate": _number(params["PublicRouteRateLimit"]),
        "public_burst": _number(params["PublicRouteBurstLimit"]),
        "v1_rate": _number(api["DefaultRouteSettings"]["ThrottlingRateLimit"]),
        "v1_burst": _number(api["DefaultRouteSettings"]["ThrottlingBurstLimit"]),
        "route_rates": {key: _number(s["ThrottlingRateLimit"]) for key, s in api.get("RouteSettings", {}).items()},
        "token_lifetime_s": _number(params["SessionTokenLifetimeSeconds"]),
        "accept_memory_mb": _number(resources["AcceptTokenFunction"]["Properties"].get("MemorySize", memory)),
        "mint_memory_mb": _number(resources["MintLinkFunction"]["Properties"].get("MemorySize", memory)),
        "pipe_batch": _number(pipe["BatchSize"]),
        "pipe_parallelization": _number(pipe.get("ParallelizationFactor", 1)),
        "chunk_users": _number(mint_chunks["ItemBatcher"]["MaxItemsPerBatch"]),
        "chunks_at_once": _number(mint_chunks["MaxConcurrency"]),
        "email_send_rate": _number(params.get("EmailSendRate", "0")),
        "email_concurrency": _number(params.get("EmailMaximumConcurrency", "2")),
    }


def session_js_margin() -> tuple[float, float]:
    """session.js's refresh margin (seconds) and the share of a lifetime it is capped at."""
    text = SESSION_JS.read_text()
    margin = float(re.search(r"var MARGIN_S = (\d+(?:\.\d+)?);", text).group(1))  # type: ignore[union-attr]
    share = re.search(r"Math\.min\(MARGIN_S, lifetimeS / (\d+)\)", text)
    assert share, "session.js no longer caps its margin as min(MARGIN_S, lifetimeS / n)"
    return margin, 1 / float(share.group(1))


def bench_figures(path: Path = LATEST) -> tuple[dict[str, float], str]:
    """The figures by name, and when they were measured (a partial run merged in has its own time)."""
    data = json.loads(path.read_text())
    when = str(data.get("started_at", "?"))
    later = "; ".join(
        f"{', '.join(run['groups'])} of {run['started_at']}" for run in data.get("merged", []) if run["groups"]
    )
    return {figure["name"]: float(figure["value"]) for figure in data["figures"]}, when + (
        f" ({later})" if later else ""
    )


def duration_ms(cpu_us: float, memory_mb: float, aws_calls: float) -> float:
    """A warm request on Lambda: its measured CPU at this memory's share of a vCPU, plus its calls."""
    return (
        cpu_us / 1000 * LAMBDA_FULL_VCPU_MB / min(memory_mb, LAMBDA_FULL_VCPU_MB) + aws_calls * DYNAMODB_ROUND_TRIP_MS
    )


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def report(overrides: dict[str, str] | None = None, latest: Path = LATEST) -> list[Line]:
    t = template_values(overrides or {})
    figures, measured_at = bench_figures(latest)
    bench = f"bench: latest.json of {measured_at}"
    lines: list[Line] = []

    def add(section: str, label: str, value: str, source: str) -> None:
        lines.append(Line(section, label, value, source))

    # --- Requests per route --------------------------------------------------------------------------
    rate, burst = t["public_rate"], t["public_burst"]
    add(
        "routes",
        "each public route (its own bucket)",
        f"{fmt(rate)}/s, bursts of {fmt(burst)}",
        "template: PublicRouteRateLimit, PublicRouteBurstLimit",
    )
    add("routes", "public routes", str(len(t["public_routes"])), "template: HttpApi RouteSettings")
    add(
        "routes",
        "/v1 (your backend) and other routes",
        f"{fmt(t['v1_rate'])}/s, bursts of {fmt(t['v1_burst'])}",
        "template: ThrottleRateLimit, ThrottleBurstLimit",
    )
    signins = min(t["route_rates"].get("GET /accept-token", rate), t["route_rates"].get("POST /accept-token", rate))
    add(
        "routes",
        "sign-ins/s (a click: GET /accept-token, then its POST)",
        fmt(signins),
        "template: the two routes' rates",
    )
    add(
        "routes",
        "API Gateway account quota (every API of the account)",
        f"{fmt(API_GATEWAY_ACCOUNT_RPS)}/s, bursts of {fmt(API_GATEWAY_ACCOUNT_BURST)}",
        "AWS: API Gateway quotas (raise it in Service Quotas, L-8A5B8E43)",
    )
    wave = signins * 2  # the page and its POST
    add(
        "routes",
        "a wave at that rate takes from the account quota",
        f"{fmt(wave)}/s (+ the open tabs' refreshes)",
        "derived: 2 requests per sign-in",
    )

    # --- Open tabs -------------------------------------------------------------------------------------
    margin_s, share = session_js_margin()
    lifetime = t["token_lifetime_s"]
    margin = min(margin_s, lifetime * share)
    interval = lifetime - 1.25 * margin  # refreshes fall 1 to 1.5 margins before expiry: 1.25 on average
    refresh_rate = t["route_rates"].get("POST /session/refresh", rate)
    tabs = refresh_rate * interval
    add(
        "tabs",
        "one visible tab refreshes every",
        f"{fmt(interval, 2)} s ({fmt(3600 / interval, 1)} an hour)",
        f"template: SessionTokenLifetimeSeconds {fmt(lifetime)}; session.js: margin "
        f"min({fmt(margin_s)} s, life/{fmt(1 / share)})",
    )
    add("tabs", "a hidden tab refreshes", "never (until shown)", "session.js: Page Visibility API")
    add("tabs", "visible tabs the refresh route holds", fmt(tabs), "derived: refresh rate x interval")
    add(
        "tabs",
        "visible tabs and a wave of sign-ins at once",
        f"{fmt(tabs)} tabs and {fmt(signins)} sign-ins/s",
        "derived: the routes have buckets of their own",
    )

    # --- Lambda concurrency -------------------------------------------------------------------------
    def measured(name: str) -> float:
        if name not in figures:
            raise SystemExit(f"{latest} has no figure {name!r}: run make bench (the whole of it)")
        return figures[name]

    accept_cpu = measured(ACCEPT_CPU)
    mint_cpu = measured(MINT_CPU)
    accept_calls = measured(ACCEPT_CALLS)
    refresh_calls = measured(REFRESH_CALLS)
    post_ms = duration_ms(accept_cpu, t["accept_memory_mb"], accept_calls)
    page_ms = duration_ms(accept_cpu, t["accept_memory_mb"], 0)  # upper bound: no token check, no write
    refresh_ms = duration_ms(accept_cpu, t["accept_memory_mb"], refresh_calls)
    mint_ms = duration_ms(mint_cpu, t["mint_memory_mb"], measured(MINT_CALLS))
    assumption = f"assumed {fmt(DYNAMODB_ROUND_TRIP_MS)} ms a DynamoDB call"
    add(
        "lambda",
        "accept POST (warm)",
        f"{fmt(post_ms, 1)} ms",
        f"{bench}: {fmt(accept_cpu)} us CPU x 1769/{fmt(t['accept_memory_mb'])} MB + "
        f"{fmt(accept_calls)} call, {assumption}",
    )
    add(
        "lambda",
        "accept page GET, refresh (warm, at most)",
        f"{fmt(page_ms, 1)} ms, {fmt(refresh_ms, 1)} ms",
        f"{bench}: the accept's CPU (an upper bound) + 0 and {fmt(refresh_calls)} "
        f"call (the rotation's conditional write)",
    )
    add(
        "lambda",
        "mint over HTTP (warm)",
        f"{fmt(mint_ms, 1)} ms",
        f"{bench}: {fmt(mint_cpu)} us CPU x 1769/{fmt(t['mint_memory_mb'])} MB + 1 call",
    )
    accept_concurrency = signins * (post_ms + page_ms) / 1000 + refresh_rate * refresh_ms / 1000
    add(
        "lambda",
        "accept function at the wave (sign-ins and refreshes at their limits)",
        f"{fmt(accept_concurrency)} concurrent",
        "derived: rate x duration, per route",
    )
    add(
        "lambda",
        "account concurrency quota",
        fmt(LAMBDA_ACCOUNT_CONCURRENCY),
        "AWS: Lambda quotas (new accounts may start lower; raise it, L-B99A9384)",
    )
    ramp = accept_concurrency / LAMBDA_SCALING_PER_10S * 10
    add(
        "lambda",
        "time to scale to it from cold",
        f"{fmt(max(ramp, 0.1), 1)} s",
        "AWS: 1,000 new environments per function every 10 s",
    )
    email_concurrency = t["email_concurrency"]
    add(
        "lambda",
        "email function, whatever the batch",
        f"{fmt(email_concurrency)} concurrent",
        "template: EmailMaximumConcurrency (the queue's MaximumConcurrency)",
    )
    add(
        "lambda",
        "batch minting",
        f"{fmt(t['chunks_at_once'])} concurrent ({fmt(t['chunk_users'])} users each)",
        "template: the state machine's MaxConcurrency, MaxItemsPerBatch",
    )

    # --- DynamoDB -----------------------------------------------------------------------------------
    signin_wru = 4  # TransactWriteItems of 2 items of at most 1 KB: 2 WRU each (transactional)
    # A refresh is its rotation: one conditional UpdateItem of the session item (< 1 KB), no read. A
    # race lost to another tab is the same write, refused: DynamoDB bills a failed condition's write too.
    refresh_wru = round(refresh_calls)
    refresh_rru = 0
    indexes = t["session_indexes"]  # each session write is copied to every index (projection ALL)
    wru = signins * signin_wru + refresh_rate * refresh_wru
    index_wru = (signins + refresh_rate) * 1
    add(
        "dynamodb",
        "writes per sign-in",
        f"{signin_wru} WRU (1 TransactWriteItems: token + session) + {indexes} on the indexes; "
        f"{signin_wru + 2} + {2 * indexes} from a browser that held a session (it ends in the same transaction)",
        f"{bench}: accept (warm) {fmt(accept_calls)} call; AWS: a transactional write costs 2 "
        f"WRU per KB; template: {indexes} session GSIs",
    )
    add(
        "dynamodb",
        "per refresh",
        f"{refresh_rru} RRU + {refresh_wru} WRU + {indexes} on the indexes",
        f"{bench}: refresh {fmt(refresh_calls)} call (one conditional UpdateItem: the rotation; "
        f"a race lost to another tab too, refused); template: {indexes} session GSIs",
    )
    add("dynamodb", "at the wave", f"{fmt(wru)} WRU/s on the table, {fmt(index_wru)} on each index", "derived")
    warm = max(DYNAMODB_NEW_TABLE_WRU, t["table_warm_wru"])
    add(
        "dynamodb",
        "the table serves at once",
        f"{fmt(warm)} WRU/s, {fmt(DYNAMODB_NEW_TABLE_RRU)} RRU/s",
        "AWS: a new on-demand table (doubles its peak within 30 min); template: TableWarmWriteUnitsPerSecond",
    )
    records = signins * 2 + refresh_rate
    shards = max(1.0, wru / DYNAMODB_PARTITION_WRU)
    per_shard = t["pipe_batch"] * t["pipe_parallelization"] / PIPE_BATCH_SECONDS
    add(
        "dynamodb",
        "stream records at the wave (2 per sign-in, 1 per refresh)",
        f"{fmt(records)}/s over ~{fmt(shards)} shards",
        "derived: a shard per 1,000 WRU/s (AWS: a partition's write limit)",
    )
    add(
        "dynamodb",
        "audit pipe per shard",
        f"~{fmt(per_shard)} records/s",
        f"template: BatchSize {fmt(t['pipe_batch'])} x ParallelizationFactor {fmt(t['pipe_parallelization'])}; "
        f"assumed {PIPE_BATCH_SECONDS} s a batch",
    )

    # --- Quotas that bind first ---------------------------------------------------------------------
    cold_starts = min(SECRETS_MANAGER_GET_RPS / 2, KMS_SYMMETRIC_RPS / 2)
    add(
        "quotas",
        "cold starts/s of accept the secrets allow",
        fmt(cold_starts),
        "AWS: Secrets Manager 10,000 GetSecretValue/s, KMS (us-east-1) 50,000/s; 2 keyrings per accept start",
    )
    add(
        "quotas",
        "SSM GetParameter",
        f"{fmt(SSM_GET_PARAMETER_RPS)}/s: read by batches only, kept an hour",
        "AWS: Parameter Store standard throughput; code: mint_link reads nothing at init",
    )
    add(
        "quotas",
        "EventBridge PutEvents",
        f"{fmt(EVENTBRIDGE_PUT_EVENTS_RPS)} requests/s (10 entries each)",
        "AWS: us-east-1 default; audit events and batch links share it",
    )
    ses = SES_NEW_ACCOUNT_RATE if t["email_send_rate"] == 0 else min(SES_NEW_ACCOUNT_RATE, t["email_send_rate"])
    add(
        "quotas",
        "emails/s",
        f"{fmt(ses)} (a new SES account; the stack reads the account's rate)",
        "AWS: SES sending quota; template: EmailSendRate (0: the account's)",
    )
    hours = 1_000_000 / ses / 3600
    days = 1_000_000 / SES_NEW_ACCOUNT_DAY
    add(
        "quotas",
        "a 1,000,000-user emailed batch",
        f"{fmt(hours, 1)} h at that rate; {fmt(days)} days at 50,000 a day",
        f"AWS: SES daily quota binds first; the email queue keeps messages {SQS_RETENTION_DAYS} days",
    )
    if wave + refresh_rate > API_GATEWAY_ACCOUNT_RPS:
        binding = "the API Gateway account quota: raise it before the wave"
    elif wru > warm:
        binding = f"the table's warm throughput: set TableWarmWriteUnitsPerSecond >= {fmt(wru)} before the wave"
    elif accept_concurrency > LAMBDA_ACCOUNT_CONCURRENCY * 0.8:
        binding = "the account's Lambda concurrency: raise it before the wave"
    else:
        binding = "none of these at these rates"
    add("quotas", "binds first at the wave", binding, "derived from the lines above")

    # --- Cost --------------------------------------------------------------------------------------
    gb = t["accept_memory_mb"] / 1024
    per_signin = (
        2 * PRICE["api_request"]
        + 2 * PRICE["lambda_request"]
        + (post_ms + page_ms) / 1000 * gb * PRICE["lambda_gb_second_arm"]
        + (signin_wru + indexes) * PRICE["dynamodb_wru"]
        + 2 * PRICE["event"]  # SignInTokenAccepted, SessionCreated
        + PRICE["pipe_request"] * 2 / t["pipe_batch"] * 10  # a pipe request per 64 KB: ~10 records each
        + 2 * LOG_BYTES_PER_REQUEST / 1e9 * PRICE["log_gb"]
    )
    add(
        "cost",
        "per 1,000,000 sign-ins",
        f"${fmt(per_signin * 1e6, 2)}",
        f"AWS list prices (us-east-1): 2 API requests and invocations, "
        f"{signin_wru + indexes} WRU, 2 audit events, logs",
    )
    per_tab_hour = (3600 / interval) * (
        PRICE["api_request"]
        + PRICE["lambda_request"]
        + refresh_ms / 1000 * gb * PRICE["lambda_gb_second_arm"]
        + (refresh_wru + indexes) * PRICE["dynamodb_wru"]
        + refresh_rru * PRICE["dynamodb_rru"]
        + LOG_BYTES_PER_REQUEST / 1e9 * PRICE["log_gb"]
    )
    add(
        "cost",
        "per 1,000,000 visible open-tab-hours",
        f"${fmt(per_tab_hour * 1e6, 2)} (hidden tabs: $0)",
        f"AWS list prices: {fmt(3600 / interval, 1)} refreshes an hour, each an API request, an "
        f"invocation, {refresh_rru} RRU + {refresh_wru + indexes} WRU, logs (its stream record: "
        f"filtered out by the pipe, not billed)",
    )
    return lines


def render(lines: list[Line]) -> str:
    out = []
    section = ""
    width = max(len(line.label) for line in lines)
    for line in lines:
        if line.section != section:
            section = line.section
            out.append(f"\n{section}")
        out.append(f"  {line.label:<{width}}  {line.value}   [{line.source}]")
    return "\n".join(out).lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("params", nargs="*", metavar="Name=value", help="template parameters (else their defaults)")
    parser.add_argument("--json", action="store_true", help="print the lines as JSON")
    parser.add_argument("--bench", type=Path, default=LATEST, help="the bench results to read durations from")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.params)
    lines = report(overrides, args.bench)
    print(json.dumps([asdict(line) for line in lines], indent=1) if args.json else render(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
