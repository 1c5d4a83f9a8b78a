"""What every store module shares: DynamoDB's errors turned into domain errors, attribute values,
a put-if-absent and a retried BatchWriteItem."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import unavailable
from signin_links.observability import logger

BATCH_WRITE_MAX_ITEMS = 25
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


@contextmanager
def dynamodb_errors(operation: str) -> Iterator[None]:
    """Turn transport and service failures into ``service_unavailable`` (the caller retries)."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        logger.warning("DynamoDB call failed", extra={"operation": operation, "aws_error": code})
        raise unavailable("DynamoDB") from None
    except BotoCoreError as exc:
        logger.warning("DynamoDB unreachable", extra={"operation": operation, "error": type(exc).__name__})
        raise unavailable("DynamoDB") from None


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _put_if_absent(client: Any, table_name: str, item: dict[str, Any]) -> dict[str, Any] | None:
    """Put ``item`` unless its key exists: ``None`` when this call wrote it, else the item that stood
    there (``{}`` when DynamoDB returned none: it was deleted in between, by TTL)."""
    with dynamodb_errors("PutItem"):
        try:
            client.put_item(
                TableName=table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            old: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
            return old
    return None


def batch_put(
    client: Any, table_name: str, items: Sequence[dict[str, Any]], *, attempts: int, backoff: Callable[[int], None]
) -> int:
    """Put ``items`` with BatchWriteItem, 25 a call; ``UnprocessedItems`` are retried after
    ``backoff(attempt)``, ``attempts`` calls at most for each 25 (then ``service_unavailable``).
    Returns the number of calls made. A PutRequest replaces an item whose key exists."""
    calls = 0
    for start in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX_ITEMS]]
        for attempt in range(attempts):
            if attempt:
                backoff(attempt)
            calls += 1
            with dynamodb_errors("BatchWriteItem"):
                response = client.batch_write_item(RequestItems={table_name: requests})
            requests = (response.get("UnprocessedItems") or {}).get(table_name, [])
            if not requests:
                break
        else:
            logger.warning("BatchWriteItem items left unprocessed after retries", extra={"count": len(requests)})
            raise unavailable("DynamoDB")
    return calls


def _optional(item: dict[str, Any], name: str) -> str | None:
    """A string attribute that only items which have it carry."""
    return item[name]["S"] if name in item else None
