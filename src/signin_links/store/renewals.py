"""Renewals of dead links (:class:`RenewalRequests`): one item per renewed sign-in token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from signin_links.models import (
    EMAIL_SENT,
    RENEWAL_ALREADY,
    RENEWAL_RECORDED,
    RENEWAL_REFUSED,
    TokenStatus,
)
from signin_links.store.dynamo import (
    TRANSACTION_CANCELED,
    _n,
    _s,
    dynamodb_errors,
)
from signin_links.store.emails import email_marker_key

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
