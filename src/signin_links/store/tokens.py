"""Sign-in tokens: their items and :class:`TokenStore` (create, revoke, redeem, get), which also
holds the session methods (``sessions.SessionItems``): a redemption writes the token and its
session in one transaction."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.models import (
    SessionRecord,
    SessionStatus,
    SignInTokenRecord,
    TokenStatus,
)
from signin_links.observability import logger
from signin_links.store.dynamo import (
    CONDITION_FAILED,
    TRANSACTION_CANCELED,
    _n,
    _optional,
    _s,
    dynamodb_errors,
)
from signin_links.store.sessions import (
    SESSION_KIND,
    SIGNED_IN_AGAIN,
    TRANSACTION_ATTEMPTS,
    SessionItems,
    session_item,
)


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
    return SignInTokenRecord(
        id=item["pk"]["S"],
        user_id=item["user_id"]["S"],
        status=TokenStatus(item["status"]["S"]),
        created_at=int(item["created_at"]["N"]),
        updated_at=int(item["updated_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        expires_in_seconds=int(item["eis"]["N"]),
        redirect_url=_optional(item, "redirect_url"),
        org_id=_optional(item, "org_id"),
        batch_id=_optional(item, "batch_id"),
        session_id=_optional(item, "session_id"),
    )


class RedeemRejected(Exception):
    """The conditional write of a redemption failed; ``current`` is the item as it stands (or None)."""

    def __init__(self, current: SignInTokenRecord | None) -> None:
        super().__init__("redemption rejected")
        self.current = current


class TokenStore(SessionItems):
    """Sign-in tokens (create, revoke, redeem, get) and sessions."""

    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self.table_name = table_name
        self._sleep = sleep  # jitter between retries of a conflicting transaction (tests pass a fake)

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

    def redeem(
        self,
        token_id: str,
        session: SessionRecord,
        now_s: int,
        session_ttl: int,
        *,
        end_sessions: Sequence[str] = (),
        ended_ttl: int = 0,
    ) -> None:
        """pending and unexpired -> accepted, recording the session, and the session's record, in ONE
        ``TransactWriteItems``: the token's conditional update and the session's conditional put.

        Of any number of concurrent calls for one token, exactly one returns; the others raise
        :class:`RedeemRejected` carrying the item as it stands (``ReturnValuesOnConditionCheckFailure``
        on the token's update: DynamoDB returns the item in the transaction's ``CancellationReasons``),
        so the caller can tell already-used from revoked from expired without a second read. A
        failed condition writes neither item. The update also requires the token's ``user_id`` to be
        the session's (the ticket carries it, signed): a token item never yields another user's session.
        A ``TransactionConflict`` (another transaction on the same token at that instant) is retried
        a few times: the next attempt sees the winner's write and fails its condition, as a
        conditional ``UpdateItem`` would have.

        ``end_sessions``: the sessions the browser held (its refresh cookies, proven), ended in the
        same transaction (``ended``, reason ``signed_in_again``, TTL ``ended_ttl``) while they are
        active. One that is not active any more (signed out, revoked, expired meanwhile) cancels the
        transaction; it is then written again without it (a second call, on that rare path only).
        """
        update = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _s(token_id)},
                "UpdateExpression": (
                    "SET #status = :accepted, updated_at = :now_ms, accepted_at = :now_ms, session_id = :sess"
                ),
                "ConditionExpression": (
                    "attribute_exists(pk) AND #status = :pending AND expires_at > :now_s AND user_id = :user"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":accepted": _s(TokenStatus.ACCEPTED.value),
                    ":pending": _s(TokenStatus.PENDING.value),
                    ":now_ms": _n(session.created_at),
                    ":now_s": _n(now_s),
                    ":sess": _s(session.id),
                    ":user": _s(session.user_id),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": session_item(session, session_ttl),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        ends = {
            held: self._end_in_transaction(held, session.created_at, ended_ttl)
            for held in dict.fromkeys(end_sessions)
            if held != session.id
        }
        attempt = 0
        while True:
            with dynamodb_errors("TransactWriteItems"):
                try:
                    self._client.transact_write_items(TransactItems=[update, put, *ends.values()])
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != TRANSACTION_CANCELED:
                        raise
                    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []  # type: ignore[assignment]
                    codes = [reason.get("Code") for reason in reasons]
                    if codes[:1] == ["ConditionalCheckFailed"]:
                        old: dict[str, Any] | None = reasons[0].get("Item")
                        raise RedeemRejected(from_item(old) if old else None) from None
                    failed = [code == "ConditionalCheckFailed" for code in codes[2:]]
                    stale = [held for held, gone in zip(ends, failed, strict=False) if gone]
                    if stale and codes[1:2] != ["ConditionalCheckFailed"]:
                        for held in stale:  # no longer active: nothing of it to end
                            del ends[held]
                        continue
                    attempt += 1
                    if "TransactionConflict" in codes and attempt < TRANSACTION_ATTEMPTS:
                        self._sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret
                        continue
                    # The session id collided (128 random bits), or conflicts persisted: retry later.
                    logger.warning("redeem transaction cancelled", extra={"reasons": codes})
                    raise unavailable("Sign-in") from None
            return

    def _end_in_transaction(self, session_id: str, now_ms: int, ttl: int) -> dict[str, Any]:
        """A transaction item ending an active session because its browser signed in again."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _s(session_id)},
                "UpdateExpression": "SET #status = :ended, updated_at = :now, #ttl = :ttl, status_reason = :reason",
                "ConditionExpression": (
                    "#kind = :session AND #status = :active AND expire_at > :now AND abandon_at > :now"
                ),
                "ExpressionAttributeNames": {"#status": "status", "#kind": "kind", "#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":session": _s(SESSION_KIND),
                    ":active": _s(SessionStatus.ACTIVE.value),
                    ":ended": _s(SessionStatus.ENDED.value),
                    ":now": _n(now_ms),
                    ":ttl": _n(ttl),
                    ":reason": _s(SIGNED_IN_AGAIN),
                },
            }
        }

    def get(self, token_id: str) -> SignInTokenRecord | None:
        with dynamodb_errors("GetItem"):
            response = self._client.get_item(TableName=self.table_name, Key={"pk": _s(token_id)}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None
