"""The session record an accept writes: one TransactWriteItems with the token's conditional update.

What these tests pin down:
* a successful accept makes exactly ONE DynamoDB call, a ``TransactWriteItems`` of the token's update
  and the session's put; the session item has Clerk's fields and only a hash of the refresh token;
* a failed condition writes neither item, and the cause (used / revoked / expired) comes from the
  item DynamoDB returns in ``CancellationReasons`` (``ReturnValuesOnConditionCheckFailure``), still
  in one call;
* a token minted before tickets carried ``uid`` still works (one read more);
* the same-browser retry succeeds only while the session that link created is active;
* a browser holding another user's session is asked first (409 / a page), and nothing is written.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from signin_links.models import SessionStatus, SignInTokenRecord, TokenStatus
from signin_links.store import RedeemRejected, TokenStore
from signin_links.tickets import sign_ticket
from tests.conftest import Stack
from tests.handlers import accept, keyring, mint, revoke_event, status_of
from tests.handlers import invoke as invoke_handler
from tests.robustness.faults import injected


def session_items(stack: Stack) -> list[dict[str, Any]]:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("sess_")]


def sid_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def test_an_accept_is_one_transaction_of_the_token_and_its_session(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(context, user_id="user_tx", org_id="org_tx", redirect_url="https://app.example.com/in")
    accept(context, mint(context)["token"])  # warm the keyring caches: only the accept's own calls count
    with injected(monkeypatch) as faults:
        answer = accept(context, minted["token"])
    assert answer.status == 200, answer.code
    dynamodb_calls = [(operation, params) for service, operation, params in faults.calls if service == "dynamodb"]
    assert [operation for operation, _ in dynamodb_calls] == ["TransactWriteItems"]
    actions = dynamodb_calls[0][1]["TransactItems"]
    assert [next(iter(action)) for action in actions] == ["Update", "Put"]
    assert actions[0]["Update"]["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"

    body = answer.json()
    session = stack.item(body["created_session_id"])
    assert session is not None
    refresh = next(c for c in answer.cookies if c.startswith("__Host-refresh=")).split(";")[0].split("=", 1)[1]
    assert {name: next(iter(value.values())) for name, value in session.items()} == {
        "pk": body["created_session_id"],
        "kind": "session",
        "user_id": "user_tx",
        "session_user_id": "user_tx",
        "client_id": session["client_id"]["S"],
        "status": "active",
        "created_at": session["created_at"]["N"],
        "updated_at": session["created_at"]["N"],
        "last_active_at": session["created_at"]["N"],
        "expire_at": str(int(session["created_at"]["N"]) + 7 * 24 * 3600 * 1000),
        "abandon_at": str(int(session["created_at"]["N"]) + 7 * 24 * 3600 * 1000),  # inactivity off
        "sign_in_token_id": minted["id"],
        "refresh_generation": "0",
        "rotated_at": session["created_at"]["N"],
        "org_id": "org_tx",
        "azp": "https://app.example.com",
        "ttl": str(int(session["created_at"]["N"]) // 1000 + 7 * 24 * 3600 + 7 * 24 * 3600),
    }
    assert session["client_id"]["S"].startswith("client_")
    proof = refresh.split(".")[2]  # <session id>.<generation>.<proof>: the proof is derived, never stored
    assert refresh.split(".")[:2] == [body["created_session_id"], "0"]
    assert proof not in json.dumps(session)
    assert stack.item(minted["id"])["session_id"]["S"] == body["created_session_id"]  # type: ignore[index]


@pytest.mark.parametrize("state", ["used", "revoked", "expired"])
def test_a_failed_condition_writes_neither_and_still_tells_why_in_one_call(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    minted = mint(context, user_id="user_failed")
    if state == "used":
        assert accept(context, minted["token"]).status == 200
    elif state == "revoked":
        assert invoke_handler("mint_link", revoke_event(minted["id"]), context).status == 200
    else:  # expired in the table, although the JWT itself is still valid
        stack.dynamodb.update_item(
            TableName=stack.table_name,
            Key={"pk": {"S": minted["id"]}},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 5)}},
        )
    before_token, before_sessions = stack.item(minted["id"]), session_items(stack)
    with injected(monkeypatch) as faults:
        answer = accept(context, minted["token"])
    expected = {
        "used": "sign_in_token_already_used_code",
        "revoked": "sign_in_token_revoked_code",
        "expired": "ticket_expired_code",
    }[state]
    assert answer.status == 400, answer.body
    assert answer.code == expected
    assert not answer.cookies
    assert [op for service, op, _ in faults.calls if service == "dynamodb"] == ["TransactWriteItems"]
    assert stack.item(minted["id"]) == before_token
    assert session_items(stack) == before_sessions


def test_the_store_reads_the_old_item_from_the_cancellation_reasons(stack: Stack) -> None:
    """moto returns ``CancellationReasons[i].Item`` for ``ReturnValuesOnConditionCheckFailure`` (as
    DynamoDB does: API reference, ``CancellationReason.Item``) and botocore puts the modeled
    ``CancellationReasons`` on the ``ClientError``'s response: the store needs no second read."""
    store = TokenStore(stack.dynamodb, stack.table_name)
    now = int(time.time())
    record = SignInTokenRecord("sit_0000000000000000000001", "user_old", TokenStatus.REVOKED, 1, 2, now + 60, 60)
    from signin_links.store import to_item

    stack.dynamodb.put_item(TableName=stack.table_name, Item=to_item(record, now + 120))
    from tests.stored_sessions import a_session

    with pytest.raises(RedeemRejected) as raised:
        store.redeem(record.id, a_session(user_id="user_old"), now, now + 3600)
    assert raised.value.current == record
    with pytest.raises(RedeemRejected) as missing:
        store.redeem("sit_0000000000000000000002", a_session(user_id="user_old"), now, now + 3600)
    assert missing.value.current is None
    assert session_items(stack) == []


def test_a_token_minted_before_uid_claims_still_signs_in_with_one_read_more(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(context, user_id="user_legacy", org_id="org_legacy")
    claims = jwt.decode(minted["token"], options={"verify_signature": False})
    ring = keyring(stack, "TICKET_SIGNING_KEYRING_SECRET_ID")
    legacy = sign_ticket(
        ring.current(), sid=claims["sid"], issued_at=claims["iat"], expires_in_seconds=claims["eis"]
    )  # no uid, no oid: what mint signed before sessions
    assert "uid" not in jwt.decode(legacy, options={"verify_signature": False})
    with injected(monkeypatch) as faults:
        answer = accept(context, legacy)
    assert answer.status == 200, answer.body
    assert answer.json()["user_id"] == "user_legacy"
    assert [op for service, op, _ in faults.calls if service == "dynamodb"] == ["GetItem", "TransactWriteItems"]
    session = stack.item(answer.json()["created_session_id"])
    assert session is not None
    assert session["org_id"]["S"] == "org_legacy"


def test_the_same_browser_retry_works_only_while_its_session_is_active(stack: Stack, context: Any) -> None:
    minted = mint(context, user_id="user_retry")
    first = accept(context, minted["token"])
    session_token = first.json()["session_token"]
    cookie = [f"__session={session_token}"]
    again = accept(context, minted["token"], cookies=cookie)
    assert again.status == 200, again.body
    assert again.json()["created_session_id"] == sid_of(session_token)
    store = TokenStore(stack.dynamodb, stack.table_name)
    now_ms = int(time.time() * 1000)
    new, _ = store.end_session(sid_of(session_token), SessionStatus.REVOKED, now_ms, now_ms // 1000 + 60)
    assert new is not None
    assert new.status is SessionStatus.REVOKED
    refused = accept(context, minted["token"], cookies=cookie)
    assert refused.status == 400, refused.body
    assert refused.code == "sign_in_token_already_used_code"
    assert not refused.cookies


def test_another_users_session_is_not_replaced_without_confirmation(stack: Stack, context: Any) -> None:
    signed_in = accept(context, mint(context, user_id="user_alice")["token"]).json()["session_token"]
    cookie = [f"__session={signed_in}"]
    minted = mint(context, user_id="user_mallory")
    before = session_items(stack)
    asked = accept(context, minted["token"], cookies=cookie)
    assert asked.status == 409, asked.body
    assert asked.code == "another_user_signed_in"
    assert not asked.cookies
    assert status_of(stack, minted["id"]) == "pending"
    assert session_items(stack) == before
    page = accept(context, minted["token"], cookies=cookie, as_json=False)
    assert page.status == 409, page.body
    assert all(cookie.startswith("__Host-csrf=") for cookie in page.cookies)  # its form's; no session changes
    assert status_of(stack, minted["id"]) == "pending"
    # The same user's own link, or an explicit confirmation, signs in.
    assert accept(context, mint(context, user_id="user_alice")["token"], cookies=cookie).status == 200
    confirmed = accept(context, minted["token"], cookies=cookie, confirm="switch_user")
    assert confirmed.status == 200, confirmed.body
    assert confirmed.json()["user_id"] == "user_mallory"
    assert status_of(stack, minted["id"]) == "accepted"
