"""Session records built in a test and written straight to the table (no handler, no use case)."""

from __future__ import annotations

import time
from dataclasses import replace

from signin_links import ids
from signin_links.models import SessionRecord, SessionStatus
from signin_links.store import session_item
from tests.conftest import Stack

HOUR_MS = 3600 * 1000


def a_session(
    *, user_id: str = "user_s", created_at: int | None = None, client_id: str | None = None, **fields: object
) -> SessionRecord:
    """An active session an hour long, created ``created_at`` (ms; now by default), ``fields`` replaced."""
    now = created_at if created_at is not None else int(time.time() * 1000)
    record = SessionRecord(
        id=ids.new_id(ids.SESSION),
        user_id=user_id,
        client_id=client_id or ids.new_id(ids.CLIENT),
        status=SessionStatus.ACTIVE,
        created_at=now,
        updated_at=now,
        last_active_at=now,
        expire_at=now + HOUR_MS,
        abandon_at=now + HOUR_MS,
        sign_in_token_id=ids.new_id(ids.SIGN_IN_TOKEN),
        rotated_at=now,
    )
    return replace(record, **fields)  # type: ignore[arg-type]


def put(stack: Stack, record: SessionRecord) -> SessionRecord:
    """Write ``record``'s item straight to the table, its TTL at the session's expiry."""
    stack.dynamodb.put_item(TableName=stack.table_name, Item=session_item(record, record.expire_at // 1000))
    return record


def sessions_of(
    stack: Stack, user_id: str, count: int, first_created_at: int = 1_000, **fields: object
) -> list[SessionRecord]:
    """``count`` sessions of ``user_id`` written straight to the table (25 a call), newest last, each
    created a millisecond after the one before (equal ``created_at`` would order as the index likes)."""
    records = [a_session(user_id=user_id, created_at=first_created_at + index, **fields) for index in range(count)]
    items = [session_item(record, 10**10) for record in records]
    for start in range(0, len(items), 25):
        chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        stack.dynamodb.batch_write_item(RequestItems={stack.table_name: chunk})
    return records
