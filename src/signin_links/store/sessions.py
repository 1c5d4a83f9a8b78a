"""Sessions: their items (:func:`session_item`), the status filter of the sessions list, and the
session methods of the token store (:class:`SessionItems`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from signin_links.models import (
    SessionRecord,
    SessionStatus,
)
from signin_links.store.dynamo import (
    CONDITION_FAILED,
    _n,
    _optional,
    _s,
    dynamodb_errors,
)

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


class SessionItems:
    """The session methods of :class:`~signin_links.store.tokens.TokenStore` (one class writes the
    token and session items: a redemption writes both in one transaction)."""

    _client: Any
    table_name: str
    # Items a session Query reads per page: None is DynamoDB's own (1 MB); tests set a few to walk pages.
    query_page_limit: int | None = None

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
        names = {"#status": "status", "#kind": "kind", "#ttl": "ttl"}
        return self._update_session(session_id, update, condition, names, values)

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
        condition = (
            "#kind = :session AND #status = :active AND refresh_generation = :generation "
            "AND expire_at > :now AND abandon_at > :now AND attribute_not_exists(client_hash)"
        )
        names = {"#status": "status", "#kind": "kind"}
        return self._update_session(session_id, "SET " + ", ".join(sets), condition, names, values)

    def _update_session(
        self, session_id: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """One conditional UpdateItem of a session: ``(new, None)`` when written, ``(None, old)``
        when the condition failed (``old`` the item as it stood; None when it is no session)."""
        with dynamodb_errors("UpdateItem"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"pk": _s(session_id)},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
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
