"""The only code that talks to DynamoDB. Token state lives here; the token itself never does.

Item shape (table key ``pk``)::

    pk = "sit_..."        id of the sign-in token
    user_id, status ("pending" | "accepted" | "revoked"), created_at, updated_at (Unix ms),
    expires_at (Unix s), eis (expires_in_seconds), ttl (Unix s, DynamoDB TTL housekeeping),
    redirect_url?, org_id?, batch_id?, session_id?, accepted_at? (Unix ms)

Every state change is one conditional write; ``ClientError`` never leaves this module: it becomes
a domain error (throttling and outages: 503 with ``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.models import SignInTokenRecord, TokenStatus
from signin_links.observability import logger

CONDITION_FAILED = "ConditionalCheckFailedException"


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


def to_item(record: SignInTokenRecord, ttl: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": _s(record.id),
        "user_id": _s(record.user_id),
        "status": _s(record.status.value),
        "created_at": _n(record.created_at),
        "updated_at": _n(record.updated_at),
        "expires_at": _n(record.expires_at),
        "eis": _n(record.expires_in_seconds),
        "ttl": _n(ttl),
    }
    for name in ("redirect_url", "org_id", "batch_id", "session_id"):
        value = getattr(record, name)
        if value:
            item[name] = _s(value)
    return item


def from_item(item: dict[str, Any]) -> SignInTokenRecord:
    def opt(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return SignInTokenRecord(
        id=item["pk"]["S"],
        user_id=item["user_id"]["S"],
        status=TokenStatus(item["status"]["S"]),
        created_at=int(item["created_at"]["N"]),
        updated_at=int(item["updated_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        expires_in_seconds=int(item["eis"]["N"]),
        redirect_url=opt("redirect_url"),
        org_id=opt("org_id"),
        batch_id=opt("batch_id"),
        session_id=opt("session_id"),
    )


class RedeemRejected(Exception):
    """The conditional write of a redemption failed; ``current`` is the item as it stands (or None)."""

    def __init__(self, current: SignInTokenRecord | None) -> None:
        super().__init__("redemption rejected")
        self.current = current


class TokenStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def create(self, record: SignInTokenRecord, ttl: int) -> None:
        """Store a new pending token (fails rather than overwrite an id that exists)."""
        with dynamodb_errors("PutItem"):
            try:
                self._client.put_item(
                    TableName=self.table_name,
                    Item=to_item(record, ttl),
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == CONDITION_FAILED:
                    # 128 random bits collided: vanishingly unlikely, and safe to retry.
                    raise unavailable("Token id allocation") from None
                raise

    def revoke(self, token_id: str, now_ms: int) -> SignInTokenRecord:
        """pending -> revoked in one conditional write."""
        with dynamodb_errors("UpdateItem"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(token_id)},
                    UpdateExpression="SET #status = :revoked, updated_at = :now",
                    ConditionExpression="attribute_exists(pk) AND #status = :pending",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":revoked": _s(TokenStatus.REVOKED.value),
                        ":pending": _s(TokenStatus.PENDING.value),
                        ":now": _n(now_ms),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                if not exc.response.get("Item"):
                    raise SignInLinksError(
                        ErrorCode.RESOURCE_NOT_FOUND, "No sign in token was found with that id."
                    ) from None
                raise SignInLinksError(ErrorCode.SIGN_IN_TOKEN_CANNOT_BE_REVOKED) from None
        return from_item(response["Attributes"])

    def redeem(self, token_id: str, session_id: str, now_s: int, now_ms: int) -> SignInTokenRecord:
        """pending and unexpired -> accepted, recording the session, in ONE conditional write.

        Of any number of concurrent calls for one token, exactly one returns; the others raise
        :class:`RedeemRejected` carrying the item as it stands, so the caller can tell
        already-used from revoked from expired without a second read.
        """
        with dynamodb_errors("UpdateItem"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(token_id)},
                    UpdateExpression=(
                        "SET #status = :accepted, updated_at = :now_ms, accepted_at = :now_ms, session_id = :sess"
                    ),
                    ConditionExpression="attribute_exists(pk) AND #status = :pending AND expires_at > :now_s",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":accepted": _s(TokenStatus.ACCEPTED.value),
                        ":pending": _s(TokenStatus.PENDING.value),
                        ":now_ms": _n(now_ms),
                        ":now_s": _n(now_s),
                        ":sess": _s(session_id),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                raise RedeemRejected(from_item(old) if old else None) from None
        return from_item(response["Attributes"])

    def get(self, token_id: str) -> SignInTokenRecord | None:
        with dynamodb_errors("GetItem"):
            response = self._client.get_item(TableName=self.table_name, Key={"pk": _s(token_id)}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None
