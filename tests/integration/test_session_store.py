"""The store's session methods on moto, against the table ``template.yaml`` declares (its GSIs too).

Every status change is one conditional write; ``expired``/``abandoned`` are written only once time
made them true; activity is recorded at most once a minute; the indexes are sparse (a token item
with a ``user_id`` is never listed as a session) and list newest first.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from signin_links import ids
from signin_links.models import SessionRecord, SessionStatus, SignInTokenRecord, TokenStatus
from signin_links.store import TokenStore, session_item, to_item
from tests.conftest import Stack

HOUR_MS = 3600 * 1000


def a_session(
    *, user_id: str = "user_s", created_at: int | None = None, client_id: str | None = None, **fields: object
) -> SessionRecord:
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
    stack.dynamodb.put_item(TableName=stack.table_name, Item=session_item(record, record.expire_at // 1000))
    return record


@pytest.fixture
def store(stack: Stack) -> TokenStore:
    return TokenStore(stack.dynamodb, stack.table_name)


def test_get_session_round_trips_and_ignores_other_items(stack: Stack, store: TokenStore) -> None:
    record = put(stack, a_session(org_id="org_1", authorized_party="https://app.example.com"))
    assert store.get_session(record.id) == record
    assert store.get_session(ids.new_id(ids.SESSION)) is None
    token = SignInTokenRecord("sit_0000000000000000000009", "user_s", TokenStatus.PENDING, 1, 1, 10**10, 60)
    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(token, 10**10))
    assert store.get_session(token.id) is None  # a token is not a session, whatever its key


def test_status_at_follows_time() -> None:
    record = a_session(created_at=0)
    assert record.status_at(HOUR_MS - 1) is SessionStatus.ACTIVE
    assert record.status_at(HOUR_MS) is SessionStatus.EXPIRED
    abandoning = replace(record, abandon_at=HOUR_MS // 2)
    assert abandoning.status_at(HOUR_MS // 2) is SessionStatus.ABANDONED
    assert abandoning.status_at(HOUR_MS) is SessionStatus.EXPIRED
    assert replace(record, status=SessionStatus.REVOKED).status_at(HOUR_MS * 2) is SessionStatus.REVOKED


def test_end_session_is_one_conditional_write_from_active_only(stack: Stack, store: TokenStore) -> None:
    record = put(stack, a_session())
    now = record.created_at + 1000
    new, old = store.end_session(record.id, SessionStatus.ENDED, now, 123)
    assert old is None
    assert new is not None
    assert new.status is SessionStatus.ENDED
    assert new.updated_at == now
    assert stack.item(record.id)["ttl"] == {"N": "123"}  # type: ignore[index]
    again, old = store.end_session(record.id, SessionStatus.REVOKED, now + 1, 456)
    assert again is None
    assert old is not None
    assert old.status is SessionStatus.ENDED
    assert store.end_session(ids.new_id(ids.SESSION), SessionStatus.REVOKED, now, 1) == (None, None)


def test_expired_and_abandoned_are_written_only_when_time_says_so(stack: Stack, store: TokenStore) -> None:
    record = put(stack, a_session(created_at=0, abandon_at=HOUR_MS // 2))
    assert store.end_session(record.id, SessionStatus.EXPIRED, HOUR_MS - 1, 1)[0] is None
    assert store.end_session(record.id, SessionStatus.ABANDONED, HOUR_MS // 2 - 1, 1)[0] is None
    # Revoking (or signing out of) a session that time already ended changes nothing.
    assert store.end_session(record.id, SessionStatus.REVOKED, HOUR_MS // 2, 1)[0] is None
    abandoned, _ = store.end_session(record.id, SessionStatus.ABANDONED, HOUR_MS // 2, 1)
    assert abandoned is not None
    assert abandoned.status is SessionStatus.ABANDONED
    other = put(stack, a_session(created_at=0))
    expired, _ = store.end_session(other.id, SessionStatus.EXPIRED, HOUR_MS, 1)
    assert expired is not None
    assert expired.status is SessionStatus.EXPIRED


def test_touch_session_writes_at_most_once_a_minute(stack: Stack, store: TokenStore) -> None:
    record = put(stack, a_session(created_at=0))
    assert not store.touch_session(record.id, 59_999, 10**12, 60_000)
    assert store.touch_session(record.id, 60_000, HOUR_MS, 60_000)
    assert not store.touch_session(record.id, 60_001, HOUR_MS, 60_000)
    touched = store.get_session(record.id)
    assert touched is not None
    assert touched.last_active_at == touched.updated_at == 60_000
    store.end_session(record.id, SessionStatus.ENDED, 70_000, 1)
    assert not store.touch_session(record.id, 10 * 60_000, HOUR_MS, 60_000)  # only while active
    assert not store.touch_session(ids.new_id(ids.SESSION), 10 * 60_000, HOUR_MS, 60_000)


def test_sessions_are_listed_per_user_and_client_newest_first_from_sparse_indexes(
    stack: Stack, store: TokenStore
) -> None:
    older = put(stack, a_session(user_id="user_list", created_at=1_000))
    newer = put(stack, a_session(user_id="user_list", created_at=2_000, client_id="client_shared0000000001"))
    put(stack, a_session(user_id="user_other", created_at=3_000, client_id="client_shared0000000001"))
    token = SignInTokenRecord("sit_0000000000000000000010", "user_list", TokenStatus.ACCEPTED, 5_000, 5_000, 10**10, 60)
    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(token, 10**10))
    assert [s.id for s in store.list_sessions(user_id="user_list")] == [newer.id, older.id]
    assert [s.user_id for s in store.list_sessions(client_id="client_shared0000000001")] == ["user_other", "user_list"]
    assert store.list_sessions(user_id="user_nobody") == []


# --- The refresh's one write (issue 18 item 1): what moto must honour for it ----------------------


def test_the_refresh_write_rotates_only_the_current_generation_and_returns_the_item_when_refused(
    stack: Stack, store: TokenStore
) -> None:
    """The use case decides from the refused write's ALL_OLD image (``ReturnValuesOnConditionCheckFailure``)
    without a read: moto returns it, as DynamoDB does."""
    record = put(stack, a_session())
    now = record.created_at + 1000
    new, old = store.refresh_session(record.id, 0, now, rotate=True, abandon_at=None)
    assert old is None
    assert new is not None
    assert (new.refresh_generation, new.rotated_at, new.last_active_at) == (1, now, now)
    assert new.abandon_at == record.abandon_at  # inactivity off: untouched
    new, old = store.refresh_session(record.id, 0, now + 1, rotate=True, abandon_at=None)  # generation 0 again
    assert new is None
    assert old is not None
    assert (old.refresh_generation, old.rotated_at) == (1, now)  # the item as it stood
    new, old = store.refresh_session(record.id, 1, now + 2, rotate=False, abandon_at=now + 2 + HOUR_MS)
    assert new is not None
    assert (new.refresh_generation, new.abandon_at) == (1, now + 2 + HOUR_MS)  # no rotation: the same generation
    assert store.refresh_session(ids.new_id(ids.SESSION), 0, now, rotate=True, abandon_at=None) == (None, None)


@pytest.mark.parametrize(
    ("change", "value"),
    [("status", "revoked"), ("expire_at", 0), ("abandon_at", 0), ("client_hash", "0" * 64)],
)
def test_the_refresh_write_refuses_a_session_that_is_not_refreshable(
    stack: Stack, store: TokenStore, change: str, value: object
) -> None:
    record = put(stack, a_session())
    item = session_item(record, 10**10)
    item[change] = {"S": value} if isinstance(value, str) else {"N": str(value)}
    stack.dynamodb.put_item(TableName=stack.table_name, Item=item)
    new, old = store.refresh_session(record.id, 0, record.created_at + 1, rotate=True, abandon_at=None)
    assert new is None
    assert old is not None
    assert stack.dynamodb.get_item(TableName=stack.table_name, Key={"pk": {"S": record.id}})["Item"] == item


def test_a_sign_in_ends_held_sessions_in_its_transaction_and_drops_those_no_longer_active(
    stack: Stack, store: TokenStore
) -> None:
    """The held sessions' ends are items of the accept's transaction; one that is not active cancels
    it (moto names it in ``CancellationReasons``, writing nothing), and it is written again without it."""
    now = int(time.time() * 1000)
    token = SignInTokenRecord(
        "sit_0000000000000000000042", "user_s", TokenStatus.PENDING, now, now, now // 1000 + 60, 60
    )
    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(token, 10**10))
    live, gone = put(stack, a_session()), put(stack, a_session(status=SessionStatus.REVOKED))
    fresh = a_session(created_at=now)
    store.redeem(token.id, fresh, now // 1000, 10**10, end_sessions=[live.id, gone.id, live.id], ended_ttl=99)
    assert store.get_session(fresh.id) == fresh
    ended = store.get_session(live.id)
    assert ended is not None
    assert (ended.status, ended.status_reason) == (SessionStatus.ENDED, "signed_in_again")
    assert store.get_session(gone.id) == gone  # not overwritten
