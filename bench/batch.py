"""A 10,000-user batch against the local stack's emulator, read against a plain BatchWriteItem loop.

In a child process: moto's server on loopback with the template's resources (``local.stack``, as
``make local`` builds them), the mint_link handler invoked on one ``MintSignInLinks`` EventBridge
event of 10,000 users. The baseline, measured in the same run on the same server: a bare loop of
BatchWriteItem calls (25 items each, one after another, no reads, no signing, no events) writing
items of the same shape. The batch also signs 10,000 Ed25519 tokens, writes a header and 100 markers,
and publishes 10,000 ``SignInLinkMinted`` events, so the ratio is the price of all that over the
bare writes. Every botocore call is counted (a ``before-call`` hook on every client), so the run
also gives DynamoDB and EventBridge calls per token, and checks its own result: 10,000 pending
tokens, 10,000 events, and a second delivery (past the idempotency window) publishing nothing.

A 100,000-user batch goes the Step Functions way (``batch-distributed``): the mint handler is
invoked once per chunk of 1,000 users with the payload the state machine's Distributed Map builds,
the chunks' outputs are written as its ``ResultWriter`` writes them, and the summary step reads them
back. Step Functions itself (reading the CSV, starting child executions) is not emulated here; the
baseline is again a bare BatchWriteItem loop of as many items, in the same run.

Note: the local emulator serves one request at a time (``local.emulator.SerialisedApp``), so the
batch's concurrent BatchWriteItem/PutEvents calls do not overlap there as they do against AWS.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

from bench import ROOT, Figure, Options, benchmark, run_module_child

CHILD_FLAG = "--run-batch"
DISTRIBUTED_FLAG = "--run-distributed"
USERS = 10_000
QUICK_USERS = 1_000
DISTRIBUTED_USERS = 100_000
QUICK_DISTRIBUTED_USERS = 10_000
CHUNK_USERS = 1_000  # the state machine's ItemBatcher MaxItemsPerBatch
LOOP_ITEM = {
    "user_id": {"S": "user_000000"},
    "status": {"S": "pending"},
    "created_at": {"N": "1700000000000"},
    "updated_at": {"N": "1700000000000"},
    "expires_at": {"N": "1702592000"},
    "eis": {"N": "2592000"},
    "ttl": {"N": "1703196800"},
    "batch_id": {"S": "bench-loop"},
    "batch_chunk": {"N": "-1"},
}


class CallCounter:
    """Counts every botocore call (and PutEvents entries by detail-type) of every client created
    from now on: a ``before-call`` hook, as in ``bench.aws_calls``."""

    def __init__(self) -> None:
        import botocore.session

        self.calls: Counter[str] = Counter()
        self.entries: Counter[str] = Counter()
        original_create_client = botocore.session.Session.create_client
        counter = self

        def count(model: Any, **_: Any) -> None:
            counter.calls[f"{model.service_model.service_name}.{model.name}"] += 1

        def count_entries(params: dict[str, Any], **_: Any) -> None:
            for entry in params.get("Entries", []):
                counter.entries[entry["DetailType"]] += 1

        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = original_create_client(self, *args, **kwargs)
            client.meta.events.register("before-call", count)
            client.meta.events.register("before-parameter-build.events.PutEvents", count_entries)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

    def clear(self) -> None:
        self.calls.clear()
        self.entries.clear()

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.calls.items()))


def batch_write_loop(dynamodb: Any, table: str, users: int) -> float:
    """The baseline: ``users`` items of a token's shape, 25 per BatchWriteItem, one call after another."""
    items = [{**LOOP_ITEM, "pk": {"S": f"loop_{n:06d}"}, "user_id": {"S": f"user_{n:06d}"}} for n in range(users)]
    started = time.perf_counter()
    for start in range(0, users, 25):
        requests = [{"PutRequest": {"Item": it}} for it in items[start : start + 25]]
        while requests:
            response = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])
    return time.perf_counter() - started


def _child(users: int) -> dict[str, Any]:
    from local.emulator import MotoServer
    from local.stack import LocalStack

    counter = CallCounter()
    calls, entries, snapshot = counter.calls, counter.entries, counter.snapshot

    with MotoServer() as moto:
        stack = LocalStack.build(url="http://127.0.0.1:3999", endpoint=moto.endpoint)
        stack.activate()
        import boto3

        from signin_links.config import get_settings

        settings = get_settings()
        dynamodb = boto3.client("dynamodb", endpoint_url=moto.endpoint)
        function = stack.functions["MintLinkFunction"]
        event = json.loads((ROOT / "events" / "mint_batch.json").read_text())
        event["detail"] = {"batch_id": "bench-batch", "user_ids": [f"user_{n:06d}" for n in range(users)]}

        # Warm up the function (imports, secrets, keyring) with a one-user batch, not measured.
        warm = json.loads(json.dumps(event))
        warm["detail"] = {"batch_id": "bench-warm-up", "user_ids": ["user_warm"]}
        function.invoke(warm)

        # Baseline: the same number of items of the same shape, bare BatchWriteItem calls.
        calls.clear()
        loop_seconds = batch_write_loop(dynamodb, settings.table_name, users)
        loop_calls = snapshot()

        calls.clear()
        entries.clear()
        started = time.perf_counter()
        summary = function.invoke(event)
        batch_seconds = time.perf_counter() - started
        batch_calls, batch_entries = snapshot(), dict(entries)

        pending = 0
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=settings.table_name,
            FilterExpression="batch_id = :b AND begins_with(pk, :sit) AND #s = :p",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":b": {"S": "bench-batch"}, ":sit": {"S": "sit_"}, ":p": {"S": "pending"}},
            Select="COUNT",
        ):
            pending += page["Count"]

        # A second delivery within the idempotency window, then one after it (records gone).
        calls.clear()
        entries.clear()
        started = time.perf_counter()
        function.invoke(event)
        again_seconds = time.perf_counter() - started
        again_calls = snapshot()
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=settings.table_name,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": "batch-idempotency#"}},
        ):
            for record in page["Items"]:
                dynamodb.delete_item(TableName=settings.table_name, Key={"pk": record["pk"]})
        calls.clear()
        entries.clear()
        late = function.invoke(event)
        late_calls, late_entries = snapshot(), dict(entries)

    return {
        "users": users,
        "loop_seconds": loop_seconds,
        "loop_calls": loop_calls,
        "batch_seconds": batch_seconds,
        "batch_calls": batch_calls,
        "batch_entries": batch_entries,
        "summary_counts": summary["counts"],
        "pending_tokens": pending,
        "again_seconds": again_seconds,
        "again_calls": again_calls,
        "late_calls": late_calls,
        "late_entries": late_entries,
        "late_redelivery": bool(late.get("redelivery")),
    }


def _service(calls: dict[str, int], service: str) -> int:
    return sum(count for key, count in calls.items() if key.split(".")[0] == service)


def _calls_per_token(label: str, r: dict[str, Any], n: int, minted: int) -> list[Figure]:
    """A batch run's DynamoDB calls (against the loop's) and EventBridge calls, per token."""
    return [
        Figure(
            "batch",
            f"{label}: DynamoDB calls per token",
            _service(r["batch_calls"], "dynamodb") / n,
            "calls",
            baseline="BatchWriteItem loop",
            baseline_value=_service(r["loop_calls"], "dynamodb") / n,
            note=", ".join(f"{k.split('.')[1]} {v}" for k, v in r["batch_calls"].items() if k.startswith("dynamodb")),
        ),
        Figure(
            "batch",
            f"{label}: EventBridge calls per token",
            _service(r["batch_calls"], "events") / n,
            "calls",
            target="0.1 (10 entries a call)",
            note=f"{_service(r['batch_calls'], 'events')} PutEvents calls for {minted} events + 1 summary",
        ),
    ]


@benchmark("batch", order=50)
def batch(options: Options) -> list[Figure]:
    users = QUICK_USERS if options.quick else USERS
    r: dict[str, Any] = run_module_child(
        "bench.batch", "BATCH", CHILD_FLAG, str(users), env={"POWERTOOLS_LOG_LEVEL": "WARNING"}, timeout=1800
    )
    n = r["users"]
    minted = r["batch_entries"].get("SignInLinkMinted", 0)
    checks = (
        f"{r['pending_tokens']} pending tokens, {minted} SignInLinkMinted events; "
        f"redelivered: {_service(r['late_calls'], 'events')} PutEvents calls, "
        f"{sum(r['late_entries'].values())} events"
    )
    label = f"{n:,}-user batch"
    return [
        Figure(
            "batch",
            f"{label}: wall time",
            r["batch_seconds"],
            "s",
            baseline=f"BatchWriteItem loop ({n:,} items)",
            baseline_value=r["loop_seconds"],
            note=checks,
            detail={k: r[k] for k in ("batch_calls", "loop_calls", "summary_counts", "batch_entries")},
        ),
        *_calls_per_token(label, r, n, minted),
        Figure(
            "batch",
            "redelivery within the idempotency window: AWS calls",
            float(sum(r["again_calls"].values())),
            "calls",
            note=", ".join(f"{k} {v}" for k, v in r["again_calls"].items()) + f"; {r['again_seconds']:.2f} s",
        ),
        Figure(
            "batch",
            "redelivery after the window (completed header): AWS calls",
            float(sum(r["late_calls"].values())),
            "calls",
            note=", ".join(f"{k} {v}" for k, v in r["late_calls"].items()),
        ),
    ]


def _distributed_child(users: int) -> dict[str, Any]:
    """The state machine's path for ``users`` users: one handler call per chunk of CHUNK_USERS (the
    Distributed Map's payload), the outputs written as its ResultWriter writes them, the summary."""
    from local.emulator import MotoServer
    from local.stack import LocalStack

    counter = CallCounter()
    with MotoServer() as moto:
        stack = LocalStack.build(url="http://127.0.0.1:3999", endpoint=moto.endpoint)
        stack.activate()
        import boto3

        from signin_links.config import get_settings
        from signin_links.manifest import MAP_RUNS_PREFIX

        settings = get_settings()
        dynamodb = boto3.client("dynamodb", endpoint_url=moto.endpoint)
        s3 = boto3.client("s3", endpoint_url=moto.endpoint)
        function = stack.functions["MintLinkFunction"]
        function.invoke({"batch_id": "bench-warm-up", "chunk_index": 0, "users": [{"user_id": "user_warm"}]})

        counter.clear()
        loop_seconds = batch_write_loop(dynamodb, settings.table_name, users)
        loop_calls = counter.snapshot()

        counter.clear()
        outputs = []
        started = time.perf_counter()
        for first in range(0, users, CHUNK_USERS):
            rows = [
                {"user_id": f"user_{n:06d}", "redirect_url": "", "metadata": ""}  # a CSV row, as ItemReader reads it
                for n in range(first, min(users, first + CHUNK_USERS))
            ]
            result = function.invoke(
                {
                    "batch_id": "bench-distributed",
                    "expires_in_seconds": None,
                    "org_id": None,
                    "chunk_index": first,
                    "users": rows,
                }
            )
            outputs.append({"status": result["status"], "counts": result["counts"], "results": result["results"]})
        chunks_seconds = time.perf_counter() - started
        directory = f"{MAP_RUNS_PREFIX}bench-run/"
        s3.put_object(Bucket=settings.results_bucket, Key=f"{directory}SUCCEEDED_0.json", Body=json.dumps(outputs))
        manifest = {
            "ResultFiles": {"SUCCEEDED": [{"Key": f"{directory}SUCCEEDED_0.json"}], "FAILED": [], "PENDING": []}
        }
        s3.put_object(Bucket=settings.results_bucket, Key=f"{directory}manifest.json", Body=json.dumps(manifest))
        summary_started = time.perf_counter()
        summary = function.invoke(
            {
                "batch_id": "bench-distributed",
                "map_results": {"Bucket": settings.results_bucket, "Key": f"{directory}manifest.json"},
            }
        )
        summary_seconds = time.perf_counter() - summary_started
        batch_calls, batch_entries = counter.snapshot(), dict(counter.entries)
    return {
        "users": users,
        "chunks": len(outputs),
        "loop_seconds": loop_seconds,
        "loop_calls": loop_calls,
        "batch_seconds": chunks_seconds + summary_seconds,
        "summary_seconds": summary_seconds,
        "batch_calls": batch_calls,
        "batch_entries": batch_entries,
        "summary_counts": summary["counts"],
        "summary_status": summary["status"],
    }


@benchmark("batch-distributed", order=51)
def batch_distributed(options: Options) -> list[Figure]:
    users = QUICK_DISTRIBUTED_USERS if options.quick else DISTRIBUTED_USERS
    r: dict[str, Any] = run_module_child(
        "bench.batch",
        "DISTRIBUTED",
        DISTRIBUTED_FLAG,
        str(users),
        env={"POWERTOOLS_LOG_LEVEL": "WARNING"},
        timeout=3600,
    )
    n = r["users"]
    minted = r["batch_entries"].get("SignInLinkMinted", 0)
    label = f"{n:,}-user batch, {r['chunks']} chunks (Step Functions path)"
    return [
        Figure(
            "batch",
            f"{label}: wall time",
            r["batch_seconds"],
            "s",
            baseline=f"BatchWriteItem loop ({n:,} items)",
            baseline_value=r["loop_seconds"],
            target="<= 2x",
            note=(
                f"{r['summary_counts']['minted']} minted, {minted} SignInLinkMinted events, summary "
                f"{r['summary_status']} in {r['summary_seconds']:.2f} s (reads the map run's results back)"
            ),
            detail={k: r[k] for k in ("batch_calls", "loop_calls", "summary_counts", "batch_entries")},
        ),
        *_calls_per_token(label, r, n, minted),
    ]


if __name__ == "__main__" and CHILD_FLAG in sys.argv:
    count = int(sys.argv[sys.argv.index(CHILD_FLAG) + 1])
    print("BATCH " + json.dumps(_child(count)), flush=True)
if __name__ == "__main__" and DISTRIBUTED_FLAG in sys.argv:
    count = int(sys.argv[sys.argv.index(DISTRIBUTED_FLAG) + 1])
    print("DISTRIBUTED " + json.dumps(_distributed_child(count)), flush=True)
