"""Batch minting's bookkeeping (:class:`BatchLedger`): its tokens' bulk reads and writes, unit
headers, announcement markers, and the Powertools Idempotency records."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signin_links.errors import unavailable
from signin_links.models import (
    BATCH_COMPLETED,
    BATCH_RUNNING,
    SignInTokenRecord,
)
from signin_links.observability import logger
from signin_links.store.dynamo import (
    _n,
    _put_if_absent,
    _s,
    batch_put,
    dynamodb_errors,
)
from signin_links.store.tokens import from_item, to_item

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

BATCH_GET_MAX_KEYS = 100


@dataclass(frozen=True)
class BatchHeader:
    """The first item a unit of batch work writes (``pk`` = ``key``); ``chunk`` is -1 for a whole
    batch, else the Step Functions chunk index."""

    key: str
    batch_id: str
    chunk: int
    fingerprint: str  # of the request, so a reused batch_id with other users is caught
    status: str
    created_at: int  # Unix ms
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchToken:
    record: SignInTokenRecord
    chunk: int  # the unit of work that wrote it


class BatchLedger:
    """The bookkeeping of batch minting (``signin_links.batch``): its tokens' bulk reads and writes,
    the header of each unit of work, the announcement markers, and the Powertools Idempotency
    records, all in the tokens' table.

    Tokens of a batch have deterministic ids, so the ledger only has to (1) tell which exist,
    (2) write the missing ones without ever replacing one that exists, and (3) remember which
    tokens were announced. BatchWriteItem cannot be conditional and a PutRequest replaces the
    item, so callers only put ids they have just seen missing, or ids of a batch whose header
    they created (no token of it can exist yet).
    """

    batch_max_attempts = 8
    batch_base_delay = 0.05  # seconds; doubled each attempt, full jitter, capped
    batch_max_delay = 2.0

    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self.table_name = table_name
        self._sleep = sleep  # backoff between retries of unprocessed items (tests pass a fake)

    def _backoff(self, attempt: int) -> None:
        ceiling = min(self.batch_max_delay, self.batch_base_delay * 2**attempt)
        self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret

    def batch_get(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Items by ``pk`` (absent keys are absent), strongly consistent; BatchGetItem takes 100
        keys a call and its ``UnprocessedKeys`` are retried with backoff."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"pk": _s(key)} for key in unique[start : start + BATCH_GET_MAX_KEYS]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(self.batch_max_attempts):
                if attempt:
                    self._backoff(attempt)
                with dynamodb_errors("BatchGetItem"):
                    response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[item["pk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request.get(self.table_name, {}).get("Keys"):
                    break
            else:
                logger.warning("BatchGetItem keys left unprocessed after retries")
                raise unavailable("DynamoDB")
        return found

    def batch_put(self, items: Sequence[dict[str, Any]]) -> int:
        """Put ``items`` with BatchWriteItem (:func:`batch_put`). Returns the number of calls made.
        Never pass an item whose key may exist: a PutRequest replaces it."""
        return batch_put(self._client, self.table_name, items, attempts=self.batch_max_attempts, backoff=self._backoff)

    def put_batch_tokens(self, records: Sequence[SignInTokenRecord], ttl_for: Callable[[int], int], chunk: int) -> int:
        """Write new pending tokens of a batch (ids known to be absent); ``chunk`` names the unit
        of work that wrote them (-1 for a whole batch, else the Step Functions chunk index)."""
        items = []
        for record in records:
            item = to_item(record, ttl_for(record.expires_at))
            item["batch_chunk"] = _n(chunk)
            items.append(item)
        return self.batch_put(items)

    def get_batch_tokens(self, token_ids: Sequence[str]) -> dict[str, BatchToken]:
        return {
            key: BatchToken(from_item(item), int(item.get("batch_chunk", {"N": "-1"})["N"]))
            for key, item in self.batch_get(token_ids).items()
        }

    def start_batch(self, header: BatchHeader, ttl: int) -> BatchHeader | None:
        """Create the header of a unit of batch work, unless one exists: ``None`` when this call
        created it (so no token of the unit can exist), else the header as it stands."""
        item: dict[str, Any] = {
            "pk": _s(header.key),
            "batch_id": _s(header.batch_id),
            "batch_chunk": _n(header.chunk),
            "fingerprint": _s(header.fingerprint),
            "status": _s(header.status),
            "created_at": _n(header.created_at),
            "updated_at": _n(header.created_at),
            "ttl": _n(ttl),
        }
        old = _put_if_absent(self._client, self.table_name, item)
        if old is None:
            return None
        if not old:  # deleted in between (TTL): treat as present but unknown
            return BatchHeader(header.key, header.batch_id, header.chunk, "", BATCH_RUNNING, 0)
        return BatchHeader(
            key=old["pk"]["S"],
            batch_id=old["batch_id"]["S"],
            chunk=int(old["batch_chunk"]["N"]),
            fingerprint=old.get("fingerprint", {}).get("S", ""),
            status=old["status"]["S"],
            created_at=int(old["created_at"]["N"]),
            summary=json.loads(old["summary"]["S"]) if "summary" in old else None,
        )

    def complete_batch(self, key: str, summary: dict[str, Any], now_ms: int) -> None:
        """Mark a unit of batch work completed, keeping its summary (counts, bounded failures)."""
        with dynamodb_errors("UpdateItem"):
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(key)},
                UpdateExpression="SET #status = :completed, updated_at = :now, summary = :summary",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":completed": _s(BATCH_COMPLETED),
                    ":now": _n(now_ms),
                    ":summary": _s(json.dumps(summary, separators=(",", ":"))),
                },
            )

    def announced(self, marker_keys: Sequence[str]) -> dict[str, set[str]]:
        """Token ids recorded as announced, by marker key."""
        return {key: set(item.get("announced", {}).get("SS", [])) for key, item in self.batch_get(marker_keys).items()}

    def add_announced(self, marker_key: str, token_ids: Sequence[str], ttl: int) -> None:
        """Record token ids as announced (an atomic ADD to a string set: concurrent calls merge)."""
        if not token_ids:
            return
        with dynamodb_errors("UpdateItem"):
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(marker_key)},
                UpdateExpression="ADD announced :ids SET #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":ids": {"SS": list(dict.fromkeys(token_ids))}, ":ttl": _n(ttl)},
            )

    def idempotency_layer(self) -> DynamoDBPersistenceLayer:
        """Powertools Idempotency records, kept in this same table (``pk`` key, ``ttl`` expiry)."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(
            table_name=self.table_name, key_attr="pk", expiry_attr="ttl", boto3_client=self._client
        )
