"""Batch minting against the local stack: ``make invoke`` on the batch events, and one event of
10,000 users delivered twice (each user minted and published once).

Events reach the function the way ``make invoke`` delivers them (``local.invoke`` with the running
stack's state: the real handler, in its own process, with the stack's environment). What it
publishes is counted twice over: every ``PutEvents`` entry EventBridge accepted (a wrapper around
botocore's API call in that process), and, for a sample of users, the events an EventBridge rule on
the stack's bus actually delivered to an SQS queue. (moto's rule-to-SQS delivery costs ~20 ms an
event, too slow to route all 10,000 of them through it in a test.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import ROOT, LocalStackHandle, running_stack


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **(env or {})}
    child_env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        list(args), cwd=ROOT, env=child_env, input=stdin, capture_output=True, text=True, timeout=600, check=False
    )


# ``python -m local.invoke MintLinkFunction -`` (what ``make invoke`` runs), counting the PutEvents
# entries that EventBridge accepted, by detail-type; the count is printed after the result.
COUNTING_INVOKE = """
import json, sys, threading
from collections import Counter
from botocore.client import BaseClient

accepted, lock, original = Counter(), threading.Lock(), BaseClient._make_api_call

def counting(self, operation, params):
    response = original(self, operation, params)
    if operation == "PutEvents":
        with lock:
            for entry, result in zip(params["Entries"], response.get("Entries", [])):
                if result.get("EventId"):
                    accepted[entry["DetailType"]] += 1
    return response

BaseClient._make_api_call = counting
from local.invoke import main
status = main(["MintLinkFunction", "-"])
print("ACCEPTED " + json.dumps(accepted), flush=True)
sys.exit(status)
"""


def deliver(stack: LocalStackHandle, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Deliver ``event`` to the stack's mint function; its result, and the events it got published."""
    done = run(
        sys.executable,
        "-c",
        COUNTING_INVOKE,
        env={"LOCAL_STACK_STATE": str(stack.state_path)},
        stdin=json.dumps(event),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "using the running local stack" in done.stderr
    result_text, _, accepted = done.stdout.rpartition("ACCEPTED ")
    result: dict[str, Any] = json.loads(result_text)
    return result, json.loads(accepted)


def capture(stack: LocalStackHandle, batch_id: str, user_ids: list[str]) -> str:
    """A queue receiving the SignInLinkMinted events of these users of ``batch_id`` from the stack's bus."""
    return stack.capture(
        {
            "source": ["signin-links"],
            "detail-type": ["SignInLinkMinted"],
            "detail": {"batch_id": [batch_id], "user_id": user_ids},
        }
    )


def queued(stack: LocalStackHandle, url: str) -> int:
    attributes = stack.aws("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def tokens(stack: LocalStackHandle, batch_id: str, status: str | None = None) -> int:
    expression, values = "batch_id = :b AND begins_with(pk, :sit)", {":b": {"S": batch_id}, ":sit": {"S": "sit_"}}
    names = {}
    if status:
        expression += " AND #s = :s"
        values[":s"] = {"S": status}
        names["#s"] = "status"
    count = 0
    for page in (
        stack.aws("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.table_name,
            FilterExpression=expression,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
            Select="COUNT",
        )
    ):
        count += page["Count"]
    return count


def forget_idempotency(stack: LocalStackHandle) -> None:
    dynamodb = stack.aws("dynamodb")
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=stack.table_name,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": "batch-idempotency#"}},
    ):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=stack.table_name, Key={"pk": item["pk"]})


@pytest.mark.slow
def test_ten_thousand_users_in_one_event_delivered_twice(local_stack: LocalStackHandle) -> None:
    batch_id = f"e2e-10k-{uuid.uuid4().hex[:8]}"
    user_ids = [f"user_{n:05d}" for n in range(10_000)]
    sample = user_ids[::1000]
    queue = capture(local_stack, batch_id, sample)
    event = json.loads((ROOT / "events" / "mint_batch.json").read_text())
    event["detail"] = {"batch_id": batch_id, "user_ids": user_ids}
    assert len(json.dumps(event)) < 256 * 1024  # fits in one EventBridge event

    first, published = deliver(local_stack, event)
    assert first["status"] == "completed"
    assert first["counts"] == {"requested": 10_000, "minted": 10_000, "already_minted": 0, "failed": 0, "duplicates": 0}
    assert published == {"SignInLinkMinted": 10_000, "SignInLinkBatchCompleted": 1}
    assert tokens(local_stack, batch_id) == tokens(local_stack, batch_id, "pending") == 10_000
    assert queued(local_stack, queue) == len(sample)

    again, published = deliver(local_stack, event)  # within the idempotency window: the stored summary
    assert again == first
    assert published == {}
    forget_idempotency(local_stack)  # past the window: the completed batch header answers
    late, published = deliver(local_stack, event)
    assert late["redelivery"] is True
    assert late["counts"] == first["counts"]
    assert published == {}
    assert tokens(local_stack, batch_id) == tokens(local_stack, batch_id, "pending") == 10_000
    assert queued(local_stack, queue) == len(sample)


def test_make_invoke_on_the_batch_event_with_a_private_emulator(tmp_path: Any) -> None:
    done = run(
        "make",
        "--no-print-directory",
        "invoke",
        "FUNCTION=MintLinkFunction",
        "EVENT=events/mint_batch.json",
        env={"LOCAL_STACK_STATE": str(tmp_path / "no-stack.json")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting a private emulator" in done.stderr
    result = json.loads(done.stdout.split("\n", 1)[1])  # after make's echo of the command
    assert result["status"] == "completed"
    assert result["batch_id"] == "waitlist-wave-2024-06-01"
    assert result["counts"] == {"requested": 3, "minted": 3, "already_minted": 0, "failed": 0, "duplicates": 0}


def test_make_invoke_on_the_manifest_event_with_the_running_stack(local_stack: LocalStackHandle) -> None:
    event = json.loads((ROOT / "events" / "mint_batch_manifest.json").read_text())
    bucket, _, key = event["detail"]["manifest"].removeprefix("s3://").partition("/")
    assert bucket == local_stack.env("MintLinkFunction")["MANIFEST_BUCKET"]  # the event names the local bucket
    rows = "user_id,redirect_url,metadata\r\n" + "".join(
        f'user_cart_{n},{local_stack.base_url}/cart,"{{""items"": {n}}}"\r\n' for n in range(1, 4)
    )
    local_stack.aws("s3").put_object(Bucket=bucket, Key=key, Body=rows.encode())
    done = run(
        "make",
        "--no-print-directory",
        "invoke",
        "FUNCTION=MintLinkFunction",
        "EVENT=events/mint_batch_manifest.json",
        env={"LOCAL_STACK_STATE": str(local_stack.state_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("\n", 1)[1])
    assert result["counts"]["minted"] + result["counts"]["already_minted"] == 3
    assert result["counts"]["failed"] == 0
    results_bucket, _, results_key = result["results"].removeprefix("s3://").partition("/")
    body = local_stack.aws("s3").get_object(Bucket=results_bucket, Key=results_key)["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["user_id"] for line in lines] == ["user_cart_1", "user_cart_2", "user_cart_3"]
    for line in lines:
        assert line["url"].startswith(f"{local_stack.base_url}/accept-token?token=")
        assert line["metadata"]["items"] == int(line["user_id"][-1])
        item = local_stack.item(line["sign_in_token_id"])
        assert item is not None
        assert item["status"]["S"] == "pending"
    # The link works: the accept page signs the first user in.
    token = lines[0]["url"].split("token=", 1)[1]
    with local_stack.client() as client:
        accepted = client.post("/accept-token", json={"token": token}, headers={"Accept": "application/json"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user_id"] == "user_cart_1"


def test_a_batch_works_on_a_first_deploy_without_an_accept_base_url(tmp_path: Any) -> None:
    """A stack deployed with no AcceptBaseUrl and no custom domain mints batches; the links point at
    the stack's own URL, read from its AcceptBaseUrlParameter (SSM)."""
    with running_stack(tmp_path / "stack", env={"LOCAL_PARAMETER_AcceptBaseUrl": ""}) as stack:
        env = stack.env("MintLinkFunction")
        assert env["ACCEPT_BASE_URL"] == ""  # as on a default deploy
        published = stack.aws("ssm").get_parameter(Name=env["ACCEPT_BASE_URL_PARAMETER"])["Parameter"]["Value"]
        assert published == stack.base_url
        event = json.loads((ROOT / "events" / "mint_batch_manifest.json").read_text())
        bucket, _, key = event["detail"]["manifest"].removeprefix("s3://").partition("/")
        rows = "user_id\r\n" + "".join(f"user_first_{n}\r\n" for n in range(3))
        stack.aws("s3").put_object(Bucket=bucket, Key=key, Body=rows.encode())
        result, published_events = deliver(stack, event)
        assert result["counts"]["minted"] == 3, result
        assert result["counts"]["failed"] == 0, result
        assert published_events["SignInLinkMinted"] == 3
        results_bucket, _, results_key = result["results"].removeprefix("s3://").partition("/")
        body = stack.aws("s3").get_object(Bucket=results_bucket, Key=results_key)["Body"].read().decode()
        for line in map(json.loads, body.splitlines()):
            assert line["url"].startswith(f"{stack.base_url}/accept-token?token="), line["user_id"]
        # The HTTP path needs no SSM read: without CloudFront the published URL is the request's own
        # host (links say https, API Gateway's only scheme, where the local stack serves http).
        minted = httpx.post(
            f"{stack.base_url}/v1/sign_in_tokens",
            json={"user_id": "user_first_http"},
            headers={"Authorization": f"Bearer {stack.secret_key}"},
            timeout=30,
        )
        assert minted.status_code == 200, minted.text
        link = urlsplit(minted.json()["url"])
        assert (link.netloc, link.path) == (urlsplit(stack.base_url).netloc, "/accept-token")
