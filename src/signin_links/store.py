"""The only code that talks to DynamoDB. Token state lives here; the token itself never does.

One table, three classes, each the only writer of its items:

* :class:`TokenStore`: sign-in tokens (create, revoke, redeem) and sessions.
* :class:`BatchLedger`: batch minting's bookkeeping: its tokens' bulk reads and writes, unit
  headers, announcement markers, and the Powertools Idempotency records.
* :class:`EmailMarkers`: delivery by email, one marker per token.

Item shape (table key ``pk``)::

    pk = "sit_..."        id of the sign-in token
    user_id, status ("pending" | "accepted" | "revoked"), created_at, updated_at (Unix ms),
    expires_at (Unix s), eis (expires_in_seconds), ttl (Unix s, DynamoDB TTL housekeeping),
    redirect_url?, org_id?, batch_id?, session_id?, accepted_at? (Unix ms),
    batch_chunk? (the unit of batch work that wrote it: -1 for a whole batch, else the chunk index)

    pk = "sess_..."       id of a session (written with its token's acceptance, in one transaction)
    kind = "session", user_id, session_user_id (= user_id: key of the sparse SessionsByUser index),
    client_id ("client_...": key of the sparse SessionsByClient index), status ("active" | "ended" |
    "revoked" | "expired" | "abandoned"), created_at, updated_at, last_active_at, expire_at,
    abandon_at (Unix ms), sign_in_token_id, refresh_generation (the current refresh token's
    generation: the token itself is derived, never stored; see refresh_tokens.py), rotated_at (Unix
    ms), ttl (Unix s), org_id?, azp?, client_hash? (Clerk's Frontend API sessions: SHA-256 hex of the
    __client secret), status_reason? (why it ended or was revoked), refresh_hash? (sessions before
    issue 18 only; never read)

    pk = "email#sit_..."  the email of that token (delivery by email; see EmailMarkers)
    status ("sending" | "sent" | "failed" | "unknown"), request_id, claimed_at, updated_at (Unix ms),
    announced (bool), ttl, message_id?, reason?

    pk = "batch_..."      the header of one unit of batch work (id derived from batch_id and chunk)
    batch_id, batch_chunk, fingerprint, status ("running" | "completed"), created_at,
    updated_at (Unix ms), ttl, summary? (JSON, once completed)

    pk = "bann_..."       the announcement marker of one step of a unit (batch_id, chunk, step)
    announced (string set of token ids), ttl

    pk = "batch-idempotency#..."  Powertools Idempotency records (their own attributes, ``ttl`` expiry)

Every state change is one conditional write; ``ClientError`` never leaves this module: it becomes
a domain error (throttling and outages: 503 with ``Retry-After``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.models import (
    BATCH_COMPLETED,
    BATCH_RUNNING,
    EMAIL_FAILED,
    EMAIL_SENDING,
    EMAIL_SENT,
    EMAIL_UNKNOWN,
    RENEWAL_ALREADY,
    RENEWAL_RECORDED,
    RENEWAL_REFUSED,
    EmailMarker,
    SessionRecord,
    SessionStatus,
    SignInTokenRecord,
    TokenStatus,
)
from signin_links.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

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


class TokenStore:
    """Sign-in tokens (create, revoke, redeem, get) and sessions."""

    # Items a session Query reads per page: None is DynamoDB's own (1 MB); tests set a few to walk pages.
    query_page_limit: int | None = None

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

    # --- Sessions (docs/accepting-links.md, "Sessions") ----------------------------------------
    # Every change of a session's status is ONE conditional write whose old and new images alone
    # say which change it was (status before/after, user_id, client_id, pk, sign_in_token_id): the
    # table's stream is the audit trail of sessions.

    def get_session(self, session_id: str) -> SessionRecord | None:
        with dynamodb_errors("GetItem"):
            response = self._client.get_item(TableName=self.table_name, Key={"pk": _s(session_id)}, ConsistentRead=True)
        item = response.get("Item")
        return session_from_item(item) if item and item.get("kind", {}).get("S") == SESSION_KIND else None

    def touch_session(self, session_id: str, now_ms: int, abandon_at: int, min_interval_ms: int) -> bool:
        """Record activity (``last_active_at``, and ``abandon_at`` when inactivity is on) at most once
        per ``min_interval_ms``, only while the session is active; False when the condition held it back."""
        with dynamodb_errors("UpdateItem"):
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(session_id)},
                    UpdateExpression="SET last_active_at = :now, abandon_at = :abandon, updated_at = :now",
                    ConditionExpression=(
                        "#kind = :session AND #status = :active AND last_active_at <= :before "
                        "AND expire_at > :now AND abandon_at > :now"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                    ExpressionAttributeValues={
                        ":session": _s(SESSION_KIND),
                        ":active": _s(SessionStatus.ACTIVE.value),
                        ":now": _n(now_ms),
                        ":before": _n(now_ms - min_interval_ms),
                        ":abandon": _n(abandon_at),
                    },
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == CONDITION_FAILED:
                    return False
                raise
        return True

    def end_session(
        self,
        session_id: str,
        status: SessionStatus,
        now_ms: int,
        ttl: int,
        *,
        client_hash: str | None = None,
        reason: str | None = None,
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """active -> ``status`` (ended, revoked, expired or abandoned) in one conditional write.

        Returns ``(new, None)`` when this call changed it, ``(None, old)`` when the condition failed
        (``old`` is the item as it stood, None when there is no such session). ``expired`` and
        ``abandoned`` are only written once time has made them true. ``client_hash`` (the Frontend
        API's sign-out) also requires the stored hash of the ``__client`` credential to be that one
        (a refresh token's holder is proven before this call: ``refresh_tokens.proven``).
        ``reason`` is recorded as ``status_reason`` (the audit event says why).
        """
        condition = "#kind = :session AND #status = :active"
        values: dict[str, Any] = {
            ":session": _s(SESSION_KIND),
            ":active": _s(SessionStatus.ACTIVE.value),
            ":status": _s(status.value),
            ":now": _n(now_ms),
            ":ttl": _n(ttl),
        }
        if status is SessionStatus.EXPIRED:
            condition += " AND expire_at <= :now"
        elif status is SessionStatus.ABANDONED:
            condition += " AND abandon_at <= :now AND expire_at > :now"
        else:
            condition += " AND expire_at > :now AND abandon_at > :now"
        if client_hash is not None:
            condition += " AND client_hash = :client_hash"
            values[":client_hash"] = _s(client_hash)
        update = "SET #status = :status, updated_at = :now, #ttl = :ttl"
        if reason is not None:
            update += ", status_reason = :reason"
            values[":reason"] = _s(reason)
        with dynamodb_errors("UpdateItem"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(session_id)},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#status": "status", "#kind": "kind", "#ttl": "ttl"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                found = old if old and old.get("kind", {}).get("S") == SESSION_KIND else None
                return None, session_from_item(found) if found else None
        return session_from_item(response["Attributes"]), None

    def refresh_session(
        self, session_id: str, generation: int, now_ms: int, *, rotate: bool, abandon_at: int | None
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """A refresh's ONE conditional write: while the session is active and unexpired and
        ``generation`` is its current refresh generation, record the activity (``last_active_at``,
        and ``abandon_at`` when inactivity is on) and, with ``rotate``, move to the next generation
        (``rotated_at`` = now). Never a session of Clerk's Frontend API (its credential is ``__client``).

        Returns ``(new, None)`` when it was written, ``(None, old)`` otherwise: ``old`` is the item as
        it stood (``ReturnValuesOnConditionCheckFailure``), so the caller tells a lost race from a
        reused token from an ended session without a read; None when there is no such session.
        """
        sets = ["last_active_at = :now", "updated_at = :now"]
        values: dict[str, Any] = {
            ":session": _s(SESSION_KIND),
            ":active": _s(SessionStatus.ACTIVE.value),
            ":generation": _n(generation),
            ":now": _n(now_ms),
        }
        if rotate:
            sets += ["refresh_generation = :next", "rotated_at = :now"]
            values[":next"] = _n(generation + 1)
        if abandon_at is not None:
            sets.append("abandon_at = :abandon")
            values[":abandon"] = _n(abandon_at)
        with dynamodb_errors("UpdateItem"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(session_id)},
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression=(
                        "#kind = :session AND #status = :active AND refresh_generation = :generation "
                        "AND expire_at > :now AND abandon_at > :now AND attribute_not_exists(client_hash)"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                found = old if old and old.get("kind", {}).get("S") == SESSION_KIND else None
                return None, session_from_item(found) if found else None
        return session_from_item(response["Attributes"]), None

    def list_sessions(
        self,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
        now_ms: int,
        offset: int = 0,
        limit: int = 10,
        count: bool = False,
    ) -> tuple[list[SessionRecord], int | None]:
        """A page of a user's (or a client's; or a user's on one client) sessions, newest first,
        through the sparse indexes, filtered in the query by the status they have at ``now_ms``
        (:func:`status_filter`), and the number of every matching session when ``count``.

        Pages through DynamoDB's own cursor (``LastEvaluatedKey``) as far as it takes: past any number
        of sessions, an offset beyond the data is an empty page, and the count is true. Once the page
        is full, the rest is only counted (``Select: COUNT``), or not read at all without ``count``.
        Bounded by the table's TTL: records go ``TOKEN_RETENTION_SECONDS`` after they end."""
        request = self._list_request(user_id, client_id, status, now_ms)
        if request is None:
            return [], 0 if count else None
        page: list[SessionRecord] = []
        seen = 0
        while True:
            with dynamodb_errors("Query"):
                response = self._client.query(**request)
            if request.get("Select") == "COUNT":
                seen += int(response.get("Count", 0))
            for item in response.get("Items", []):
                if offset <= seen < offset + limit:
                    page.append(session_from_item(item))
                seen += 1
            last = response.get("LastEvaluatedKey")
            if not last or (not count and seen >= offset + limit):
                break
            request["ExclusiveStartKey"] = last
            if seen >= offset + limit:
                request["Select"] = "COUNT"  # the page is full: only count the rest
        return page, seen if count else None

    def _list_request(
        self, user_id: str | None, client_id: str | None, status: str | None, now_ms: int
    ) -> dict[str, Any] | None:
        """The Query of a session list (None when the status matches no session of this service)."""
        if user_id is not None:
            index, key, value = USER_SESSIONS_INDEX, "session_user_id", user_id
        elif client_id is not None:
            index, key, value = CLIENT_SESSIONS_INDEX, "client_id", client_id
        else:
            raise ValueError("user_id or client_id")
        wanted = status_filter(status, now_ms)
        if wanted is None:
            return None
        condition, names, values = wanted
        names, values = {**names, "#key": key}, {**values, ":value": _s(value)}
        if user_id is not None and client_id is not None:
            condition = f"({condition}) AND client_id = :client" if condition else "client_id = :client"
            values[":client"] = _s(client_id)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#key = :value",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if condition:
            request["FilterExpression"] = condition
        if self.query_page_limit:
            request["Limit"] = self.query_page_limit
        return request

    def active_session_ids(self, user_id: str, now_ms: int) -> Iterator[list[str]]:
        """The ids of a user's sessions active at ``now_ms``, a Query page at a time (filtered in the
        query, only the key projected): what "revoke every session of a user" ends."""
        wanted = status_filter(SessionStatus.ACTIVE.value, now_ms)
        assert wanted is not None
        condition, names, values = wanted
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": USER_SESSIONS_INDEX,
            "KeyConditionExpression": "session_user_id = :value",
            "FilterExpression": condition,
            "ProjectionExpression": "pk",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**values, ":value": _s(user_id)},
        }
        if self.query_page_limit:
            request["Limit"] = self.query_page_limit
        while True:
            with dynamodb_errors("Query"):
                response = self._client.query(**request)
            yield [item["pk"]["S"] for item in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def status_filter(status: str | None, now_ms: int) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """The ``FilterExpression`` (with its names and values) of the sessions whose status at ``now_ms``
    is ``status`` (``SessionRecord.status_at``: an ``active`` record past ``expire_at`` is expired,
    past ``abandon_at`` abandoned); ("", {}, {}) for every status; None for a status no session of
    this service ever has (Clerk's ``removed``, ``replaced``, ``pending``)."""
    if status is None:
        return "", {}, {}
    known = {member.value for member in SessionStatus}
    if status not in known:
        return None
    names = {"#status": "status"}
    values: dict[str, Any] = {":wanted": _s(status), ":active": _s(SessionStatus.ACTIVE.value), ":now": _n(now_ms)}
    if status == SessionStatus.ACTIVE.value:
        return (
            "#status = :active AND expire_at > :now AND abandon_at > :now",
            names,
            {
                ":active": values[":active"],
                ":now": values[":now"],
            },
        )
    if status == SessionStatus.EXPIRED.value:
        return "#status = :wanted OR (#status = :active AND expire_at <= :now)", names, values
    if status == SessionStatus.ABANDONED.value:
        condition = "#status = :wanted OR (#status = :active AND abandon_at <= :now AND expire_at > :now)"
        return condition, names, values
    return "#status = :wanted", names, {":wanted": values[":wanted"]}


# --- Session items -----------------------------------------------------------------------------

SESSION_KIND = "session"
USER_SESSIONS_INDEX = "SessionsByUser"  # session_user_id (S) HASH, created_at (N) RANGE
CLIENT_SESSIONS_INDEX = "SessionsByClient"  # client_id (S) HASH, created_at (N) RANGE
TRANSACTION_ATTEMPTS = 3
SIGNED_IN_AGAIN = "signed_in_again"  # status_reason of a session its browser replaced with a sign-in


def session_item(record: SessionRecord, ttl: int) -> dict[str, Any]:
    """A session's item. ``session_user_id`` repeats ``user_id`` as the key of the sparse
    ``SessionsByUser`` index (token items also have a ``user_id`` and must stay out of it)."""
    item: dict[str, Any] = {
        "pk": _s(record.id),
        "kind": _s(SESSION_KIND),
        "user_id": _s(record.user_id),
        "session_user_id": _s(record.user_id),
        "client_id": _s(record.client_id),
        "status": _s(record.status.value),
        "created_at": _n(record.created_at),
        "updated_at": _n(record.updated_at),
        "last_active_at": _n(record.last_active_at),
        "expire_at": _n(record.expire_at),
        "abandon_at": _n(record.abandon_at),
        "sign_in_token_id": _s(record.sign_in_token_id),
        "refresh_generation": _n(record.refresh_generation),
        "rotated_at": _n(record.rotated_at),
        "ttl": _n(ttl),
    }
    if record.refresh_hash:
        item["refresh_hash"] = _s(record.refresh_hash)
    if record.org_id:
        item["org_id"] = _s(record.org_id)
    if record.authorized_party:
        item["azp"] = _s(record.authorized_party)
    if record.client_hash:
        item["client_hash"] = _s(record.client_hash)
    if record.status_reason:
        item["status_reason"] = _s(record.status_reason)
    return item


def session_from_item(item: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=item["pk"]["S"],
        user_id=item["user_id"]["S"],
        client_id=item["client_id"]["S"],
        status=SessionStatus(item["status"]["S"]),
        created_at=int(item["created_at"]["N"]),
        updated_at=int(item["updated_at"]["N"]),
        last_active_at=int(item["last_active_at"]["N"]),
        expire_at=int(item["expire_at"]["N"]),
        abandon_at=int(item["abandon_at"]["N"]),
        sign_in_token_id=item["sign_in_token_id"]["S"],
        refresh_hash=_optional(item, "refresh_hash") or "",
        org_id=_optional(item, "org_id"),
        authorized_party=_optional(item, "azp"),
        client_hash=_optional(item, "client_hash"),
        refresh_generation=int(item.get("refresh_generation", {}).get("N", "0")),
        rotated_at=int(item.get("rotated_at", {}).get("N", "0")),
        status_reason=_optional(item, "status_reason"),
    )


# --- Batch minting -----------------------------------------------------------------------------

BATCH_GET_MAX_KEYS = 100
BATCH_WRITE_MAX_ITEMS = 25


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


# --- Delivery by email ------------------------------------------------------------------------------

EMAIL_MARKER_PREFIX = "email#"


def email_marker_key(token_id: str) -> str:
    return f"{EMAIL_MARKER_PREFIX}{token_id}"


def email_marker_from_item(item: dict[str, Any]) -> EmailMarker:
    return EmailMarker(
        token_id=item["pk"]["S"].removeprefix(EMAIL_MARKER_PREFIX),
        status=item["status"]["S"],
        request_id=item.get("request_id", {}).get("S", ""),
        claimed_at=int(item.get("claimed_at", {}).get("N", "0")),
        updated_at=int(item.get("updated_at", {}).get("N", "0")),
        reason=item.get("reason", {}).get("S", ""),
        message_id=item.get("message_id", {}).get("S", ""),
        announced=bool(item.get("announced", {}).get("BOOL", False)),
        address=item.get("address", {}).get("S", ""),
        language=item.get("language", {}).get("S", ""),
        name=item.get("name", {}).get("S", ""),
    )


class EmailMarkers:
    """Delivery by email (``signin_links.link_email``): one marker item per sign-in token, pk =
    ``email#<sign_in_token_id>``, written before anything is sent: "sending" (claimed by one
    invocation), then "sent" (with SES's message id), "failed" (a permanent failure, with its
    reason) or "unknown" (the claimer died mid-send). Only the claimer may settle or release it: its
    ``request_id`` is the queue message's id (the email queue) or the Lambda request id (an event
    invoked directly). Several claims or settles go in one transaction (:meth:`claim_emails`,
    :meth:`settle_emails`), each item with the condition its single call has.
    """

    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self.table_name = table_name
        self._sleep = sleep  # backoff between retries of unprocessed items (tests pass a fake)

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))  # noqa: S311 - jitter, not a secret

    def claim_email(self, token_id: str, request_id: str, now_ms: int, ttl: int) -> EmailMarker | None:
        """Claim the right to send the token's email: ``None`` when this call created the
        "sending" marker, else the marker as it stands (the email is someone else's)."""
        return self._put_email_marker(
            EmailMarker(token_id, EMAIL_SENDING, request_id, claimed_at=now_ms, updated_at=now_ms), ttl
        )

    def record_email_failure(
        self, token_id: str, request_id: str, reason: str, now_ms: int, ttl: int
    ) -> EmailMarker | None:
        """Record a permanent failure found before sending: ``None`` when this call recorded it,
        else the marker as it stands."""
        marker = EmailMarker(token_id, EMAIL_FAILED, request_id, claimed_at=now_ms, updated_at=now_ms, reason=reason)
        return self._put_email_marker(marker, ttl)

    def claim_emails(self, claims: Sequence[tuple[str, str, int]], now_ms: int) -> bool:
        """Claim several tokens' emails at once, ``(token_id, claimer, ttl)`` each: one
        ``TransactWriteItems`` of the conditional puts :meth:`claim_email` makes one by one. ``True``
        when every claim was written; ``False`` when the transaction was cancelled (a marker already
        stood for one of them, or another transaction touched one): nothing was written, and the
        caller claims them one at a time to learn which is whose. Token ids must be distinct."""
        items = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._marker_item(
                        EmailMarker(token_id, EMAIL_SENDING, claimer, claimed_at=now_ms, updated_at=now_ms), ttl
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for token_id, claimer, ttl in claims
        ]
        with dynamodb_errors("TransactWriteItems"):
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != TRANSACTION_CANCELED:
                    raise
                reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
                logger.info("email claims cancelled: one at a time instead", extra={"reasons": reasons})
                return False
        return True

    def record_sent(self, markers: Sequence[tuple[EmailMarker, int]]) -> None:
        """Write "sent" markers (each with its ttl) over their claimer's "sending" ones, with
        BatchWriteItem, unconditionally: only a claim's holder settles it, and no one else may
        take a claim over while its holder lives (``EMAIL_CLAIM_TIMEOUT_SECONDS`` is longer than
        the function's timeout), so a condition would only cost a transaction (two writes each)."""
        items = []
        for marker, ttl in markers:
            item = self._marker_item(marker, ttl)
            if marker.message_id:
                item["message_id"] = _s(marker.message_id)
            items.append(item)
        batch_put(self._client, self.table_name, items, attempts=5, backoff=self._backoff)

    def _marker_item(self, marker: EmailMarker, ttl: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _s(email_marker_key(marker.token_id)),
            "status": _s(marker.status),
            "request_id": _s(marker.request_id),
            "claimed_at": _n(marker.claimed_at),
            "updated_at": _n(marker.updated_at),
            "announced": {"BOOL": False},
            "ttl": _n(ttl),
        }
        if marker.reason:
            item["reason"] = _s(marker.reason)
        for name in ("address", "language", "name"):
            if getattr(marker, name):
                item[name] = _s(getattr(marker, name))
        return item

    def sent_to(self, token_id: str) -> EmailMarker | None:
        """The "sent" marker of a token's email, with the address it went to; None if there is none."""
        with dynamodb_errors("GetItem"):
            item = self._client.get_item(
                TableName=self.table_name, Key={"pk": _s(email_marker_key(token_id))}, ConsistentRead=True
            ).get("Item")
        marker = email_marker_from_item(item) if item else None
        return marker if marker is not None and marker.status == EMAIL_SENT and marker.address else None

    def _put_email_marker(self, marker: EmailMarker, ttl: int) -> EmailMarker | None:
        item = self._marker_item(marker, ttl)
        old = _put_if_absent(self._client, self.table_name, item)
        if old is None:
            return None
        if not old:  # gone in between (TTL): treat as held by someone unknown
            return EmailMarker(marker.token_id, EMAIL_UNKNOWN, "", 0, 0)
        return email_marker_from_item(old)

    def settle_email(
        self, token_id: str, request_id: str, status: str, now_ms: int, *, message_id: str = "", reason: str = ""
    ) -> bool:
        """ "sending" -> ``status`` ("sent", "failed", "unknown"), only for the invocation that
        claimed it; ``False`` if the marker is not that invocation's "sending" marker any more."""
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":status": _s(status),
            ":now": _n(now_ms),
            ":sending": _s(EMAIL_SENDING),
            ":request": _s(request_id),
        }
        update = "SET #status = :status, updated_at = :now"
        for name, value in (("message_id", message_id), ("reason", reason)):
            if value:
                update += f", {name} = :{name}"
                values[f":{name}"] = _s(value)
        with dynamodb_errors("UpdateItem"):
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(email_marker_key(token_id))},
                    UpdateExpression=update,
                    ConditionExpression="#status = :sending AND request_id = :request",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                return False
        return True

    def take_over_email(self, token_id: str, claimed_by: str, request_id: str, now_ms: int) -> bool:
        """A "sending" marker whose claimer is known to be dead -> "unknown", now this
        invocation's to announce; ``False`` if it changed in between (another took it over)."""
        with dynamodb_errors("UpdateItem"):
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(email_marker_key(token_id))},
                    UpdateExpression="SET #status = :unknown, request_id = :request, updated_at = :now, reason = :why",
                    ConditionExpression="#status = :sending AND request_id = :claimer",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":unknown": _s(EMAIL_UNKNOWN),
                        ":sending": _s(EMAIL_SENDING),
                        ":claimer": _s(claimed_by),
                        ":request": _s(request_id),
                        ":now": _n(now_ms),
                        ":why": _s("outcome_unknown"),
                    },
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                return False
        return True

    def release_email(self, token_id: str, request_id: str) -> None:
        """Give back a claim (SES refused the message, so nothing was sent): a retry may claim it."""
        with dynamodb_errors("DeleteItem"):
            try:
                self._client.delete_item(
                    TableName=self.table_name,
                    Key={"pk": _s(email_marker_key(token_id))},
                    ConditionExpression="#status = :sending AND request_id = :request",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":sending": _s(EMAIL_SENDING), ":request": _s(request_id)},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise

    def mark_email_announced(self, token_id: str) -> None:
        """The failure event of a "failed" or "unknown" marker was published."""
        with dynamodb_errors("UpdateItem"):
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(email_marker_key(token_id))},
                UpdateExpression="SET announced = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )


# --- Renewal of dead links ----------------------------------------------------------------------------

RENEWAL_PREFIX = "renew#"
RENEWAL_REQUESTED = "requested"


def renewal_key(token_id: str) -> str:
    return f"{RENEWAL_PREFIX}{token_id}"


@dataclass(frozen=True)
class RenewalRequest:
    """A request for a fresh link in place of a dead one (``pk`` = ``renew#<sign_in_token_id>``)."""

    token_id: str
    user_id: str
    redirect_url: str | None
    org_id: str | None
    delivery: str  # "email": the stack mints and mails it; "application": the application's to act on
    requested_at: int  # Unix ms


class RenewalRequests:
    """At most one renewal per sign-in token, recorded by one conditional write (the accept's
    ``POST /accept-token/renew``); the event comes from the write's stream record (audit.py)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def email_sent(self, token_id: str) -> bool:
        """Whether the token's email was sent (its marker says "sent"): the page offers a renewal."""
        with dynamodb_errors("GetItem"):
            item = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(email_marker_key(token_id))},
                ProjectionExpression="#status",
                ExpressionAttributeNames={"#status": "status"},
            ).get("Item")
        return bool(item) and item["status"]["S"] == EMAIL_SENT

    def request(self, renewal: RenewalRequest, now_s: int, ttl: int) -> str:
        """Record ``renewal`` in ONE ``TransactWriteItems``, if the token is dead (used, or pending
        past its expiry; never revoked) and the user's, its email was sent (delivery "email"), and no
        renewal stands for it. :data:`RENEWAL_RECORDED`, :data:`RENEWAL_ALREADY` (the put's condition
        failed) or :data:`RENEWAL_REFUSED` (another condition failed); nothing is written but by the
        first."""
        dead = {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": {"pk": _s(renewal.token_id)},
                "ConditionExpression": (
                    "user_id = :user AND (#status = :accepted OR (#status = :pending AND expires_at <= :now_s))"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":user": _s(renewal.user_id),
                    ":accepted": _s(TokenStatus.ACCEPTED.value),
                    ":pending": _s(TokenStatus.PENDING.value),
                    ":now_s": _n(now_s),
                },
            }
        }
        emailed = {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": {"pk": _s(email_marker_key(renewal.token_id))},
                "ConditionExpression": "#status = :sent",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":sent": _s(EMAIL_SENT)},
            }
        }
        item: dict[str, Any] = {
            "pk": _s(renewal_key(renewal.token_id)),
            "status": _s(RENEWAL_REQUESTED),
            "sign_in_token_id": _s(renewal.token_id),
            "user_id": _s(renewal.user_id),
            "delivery": _s(renewal.delivery),
            "requested_at": _n(renewal.requested_at),
            "updated_at": _n(renewal.requested_at),
            "ttl": _n(ttl),
        }
        if renewal.redirect_url:
            item["redirect_url"] = _s(renewal.redirect_url)
        if renewal.org_id:
            item["org_id"] = _s(renewal.org_id)
        put = {"Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
        items = [dead, emailed, put] if renewal.delivery == "email" else [dead, put]
        with dynamodb_errors("TransactWriteItems"):
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != TRANSACTION_CANCELED:
                    raise
                reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []  # type: ignore[assignment]
                codes = [reason.get("Code") for reason in reasons]
                if "ConditionalCheckFailed" not in codes:
                    raise  # a conflict or a throttle: service_unavailable, the person presses again
                return RENEWAL_ALREADY if codes[-1] == "ConditionalCheckFailed" else RENEWAL_REFUSED
        return RENEWAL_RECORDED
