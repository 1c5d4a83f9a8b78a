"""empty_bucket: the CloudFormation custom resource that empties the results bucket on delete.

CloudFormation cannot delete a bucket that still holds objects, and the results bucket holds batch
results until they expire, so ``sam delete`` would fail on it. The custom resource
(``Custom::EmptyBucketOnDelete``) is deleted before the bucket it names: its ``Delete`` removes
every object, and the bucket's own deletion then succeeds. ``Create`` and ``Update`` do nothing.

Self-contained (boto3 from the Lambda runtime, the response sent with urllib): it runs once per
stack operation and needs nothing from ``signin_links``.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

Send = Callable[[str, dict[str, Any]], None]


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object of ``bucket`` (unversioned: the template never turns versioning on);
    returns how many were deleted. A bucket that no longer exists is already empty."""
    deleted = 0
    try:
        while True:  # always the first page again: no continuation token over a shrinking listing
            page = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)  # DeleteObjects' own limit
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                return deleted
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    except s3.exceptions.NoSuchBucket:
        return deleted


def send_response(url: str, body: dict[str, Any]) -> None:
    """PUT the custom resource's answer to CloudFormation's pre-signed URL."""
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's https ResponseURL
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def handle(event: dict[str, Any], s3: Any, send: Send = send_response) -> dict[str, Any]:
    """Answer one custom resource request; returns the answer sent."""
    properties = event.get("ResourceProperties") or {}
    bucket = str(properties.get("BucketName") or "")
    answer: dict[str, Any] = {
        "Status": "SUCCESS",
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"empty-on-delete-{bucket}",
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
    }
    if event.get("RequestType") == "Delete" and bucket:
        try:
            deleted = empty_bucket(s3, bucket)
            logger.info("emptied %s: %d objects deleted", bucket, deleted)
        except Exception as exc:  # any failure must reach CloudFormation, not leave it waiting
            logger.exception("could not empty %s", bucket)
            answer.update(Status="FAILED", Reason=f"Could not empty bucket {bucket}: {type(exc).__name__}")
    send(str(event["ResponseURL"]), answer)
    return answer


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    import boto3

    return handle(event, boto3.client("s3"))
