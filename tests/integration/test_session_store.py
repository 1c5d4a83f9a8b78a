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
from signin_links.models import SessionStatus, SignInTokenRecord, TokenStatus
from signin_links.store import TokenStore, session_item, to_item
from tests.conftest import Stack
from tests.stored_sessions import HOUR_MS, a_session, put, sessions_of


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
    listed = store.list_sessions(user_id="user_list", now_ms=0)[0]
    assert [s.id for s in listed] == [newer.id, older.id]
    by_client = store.list_sessions(client_id="client_shared0000000001", now_ms=0)[0]
    assert [s.user_id for s in by_client] == ["user_other", "user_list"]
    assert store.list_sessions(user_id="user_nobody", now_ms=0, count=True) == ([], 0)
    both = store.list_sessions(user_id="user_list", client_id="client_shared0000000001", now_ms=0, count=True)
    assert ([s.id for s in both[0]], both[1]) == ([newer.id], 1)


@pytest.mark.parametrize("page_limit", [None, 97])
def test_the_list_reads_past_a_thousand_sessions_filters_in_the_query_and_counts_them_all(
    stack: Stack, store: TokenStore, page_limit: int | None
) -> None:
    """The list reads every page and filters in the query: a cap at 1,000 items, or a filter applied
    after it, would hide the 1,001st session of a user (active, refreshable) from the leaked-key
    playbook."""
    store.query_page_limit = page_limit  # 97: DynamoDB's cursor walked across many pages
    oldest_active = sessions_of(stack, "user_many", 1)[0]
    ended = sessions_of(stack, "user_many", 1_000, first_created_at=2_000, status=SessionStatus.ENDED)
    now = HOUR_MS // 2
    page, total = store.list_sessions(user_id="user_many", status="active", now_ms=now, count=True)
    assert ([s.id for s in page], total) == ([oldest_active.id], 1)
    page, total = store.list_sessions(user_id="user_many", now_ms=now, offset=1_000, limit=10, count=True)
    assert ([s.id for s in page], total) == ([oldest_active.id], 1_001)
    page, total = store.list_sessions(user_id="user_many", status="ended", now_ms=now, offset=995, limit=10, count=True)
    assert ([s.id for s in page], total) == ([s.id for s in reversed(ended[:5])], 1_000)
    assert store.list_sessions(user_id="user_many", now_ms=now, offset=5_000, limit=10, count=True) == ([], 1_001)
    assert store.list_sessions(user_id="user_many", status="removed", now_ms=now, count=True) == ([], 0)


@pytest.mark.parametrize(
    ("stored", "expire_in", "abandon_in", "status_now"),
    [
        ("active", HOUR_MS, HOUR_MS, "active"),
        ("active", -1, HOUR_MS, "expired"),
        ("active", HOUR_MS, -1, "abandoned"),
        ("active", -1, -1, "expired"),  # expiry comes first, as SessionRecord.status_at says
        ("expired", HOUR_MS, HOUR_MS, "expired"),
        ("revoked", -1, HOUR_MS, "revoked"),
    ],
)
def test_the_status_filter_is_the_status_a_session_has_now(
    stack: Stack, store: TokenStore, stored: str, expire_in: int, abandon_in: int, status_now: str
) -> None:
    now = 10 * HOUR_MS
    record = put(stack, a_session(user_id="user_filter", status=SessionStatus(stored),
                                  expire_at=now + expire_in, abandon_at=now + abandon_in))  # fmt: skip
    assert record.status_at(now).value == status_now
    for status in ("active", "ended", "revoked", "expired", "abandoned", "pending"):
        found = store.list_sessions(user_id="user_filter", status=status, now_ms=now, count=True)
        assert found == (([record], 1) if status == status_now else ([], 0)), status


# --- The refresh's one write: what moto must honour for it -----------------------------------------


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
