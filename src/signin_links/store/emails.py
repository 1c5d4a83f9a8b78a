"""Delivery by email's markers (:class:`EmailMarkers`): one item per sign-in token."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from signin_links.models import (
    EMAIL_FAILED,
    EMAIL_SENDING,
    EMAIL_SENT,
    EMAIL_UNKNOWN,
    EmailMarker,
)
from signin_links.observability import logger
from signin_links.store.dynamo import (
    CONDITION_FAILED,
    TRANSACTION_CANCELED,
    _n,
    _put_if_absent,
    _s,
    batch_put,
    dynamodb_errors,
)

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
