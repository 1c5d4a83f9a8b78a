"""The custom resource that empties the results bucket when the stack deletes it (so that ``sam
delete`` of a dev stack leaves nothing and fails on nothing), on moto's S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import load_function

BUCKET = "signin-links-dev-resultsbucket-abc"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def request(kind: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/signed",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/signin-links-dev/1",
        "RequestId": "r-1",
        "LogicalResourceId": "EmptyResultsBucketOnDelete",
        "ResourceType": "Custom::EmptyBucketOnDelete",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "BucketName": bucket},
        **({} if kind == "Create" else {"PhysicalResourceId": f"empty-on-delete-{bucket}"}),
    }


def answer(event: dict[str, Any], s3: Any) -> dict[str, Any]:
    sent: list[tuple[str, dict[str, Any]]] = []
    result: dict[str, Any] = load_function("empty_bucket").handle(event, s3, lambda url, body: sent.append((url, body)))
    assert sent == [(event["ResponseURL"], result)]  # exactly one answer, to CloudFormation's URL
    return result


def keys(s3: Any) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_delete_empties_the_bucket_so_cloudformation_can_delete_it(s3: Any) -> None:
    for n in range(1_205):  # more than one page of ListObjectsV2 and DeleteObjects
        s3.put_object(Bucket=BUCKET, Key=f"results/batch-{n}.jsonl", Body=b"{}\n")
    result = answer(request("Delete"), s3)
    assert result["Status"] == "SUCCESS"
    assert result["PhysicalResourceId"] == f"empty-on-delete-{BUCKET}"
    assert keys(s3) == []
    s3.delete_bucket(Bucket=BUCKET)  # what CloudFormation does next: it no longer fails


def test_create_and_update_touch_nothing(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="results/kept.jsonl", Body=b"{}\n")
    for kind in ("Create", "Update"):
        assert answer(request(kind), s3)["Status"] == "SUCCESS"
    assert keys(s3) == ["results/kept.jsonl"]


def test_a_bucket_already_gone_is_empty(s3: Any) -> None:
    assert answer(request("Delete", bucket="no-such-bucket-here"), s3)["Status"] == "SUCCESS"


def test_a_failure_is_reported_to_cloudformation_instead_of_leaving_it_waiting(s3: Any) -> None:
    class Broken:
        exceptions = s3.exceptions

        def list_objects_v2(self, **_: Any) -> Any:
            raise RuntimeError("S3 is down")

    result = answer(request("Delete"), Broken())
    assert result["Status"] == "FAILED"
    assert BUCKET in result["Reason"]
