"""``GET /v1/sessions`` past a thousand sessions, and ``POST /v1/sessions/revoke``, on the sessions
handler and moto."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from signin_links.models import SessionStatus
from tests.conftest import Stack, load_event, load_function
from tests.handlers import Answer, invoke
from tests.session_calls import api, refresh, set_attribute, signed_in
from tests.stored_sessions import sessions_of


def revoke_all(context: Any, body: Any, *, key: str | None = None) -> Answer:
    event = load_event("revoke_all_sessions.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if key is not None:
        event["headers"]["authorization"] = key
    return invoke("sessions", event, context)


def test_the_list_shows_the_thousand_and_first_session_with_a_true_total(stack: Stack, context: Any) -> None:
    load_function("sessions").sessions().store.query_page_limit = 211  # several pages of DynamoDB's cursor
    live = signed_in(context, user_id="user_crowded")
    set_attribute(stack, live["id"], "created_at", 500)  # the oldest: the 1,001st in the list, newest first
    sessions_of(stack, "user_crowded", 1_000, status=SessionStatus.ENDED)
    active = api(context, "list_sessions.json", query={"user_id": "user_crowded", "status": "active",
                                                       "paginated": "true"})  # fmt: skip
    assert active.status == 200, active.body
    assert [s["id"] for s in active.json()["data"]] == [live["id"]]
    assert active.json()["total_count"] == 1
    everything = api(context, "list_sessions.json", query={"user_id": "user_crowded", "paginated": "true",
                                                           "limit": "500", "offset": "1000"})  # fmt: skip
    assert everything.json()["total_count"] == 1_001
    assert [s["id"] for s in everything.json()["data"]] == [live["id"]]
    beyond = api(context, "list_sessions.json", query={"user_id": "user_crowded", "offset": "100000"})
    assert beyond.status == 200, beyond.body
    assert beyond.json() == []


def test_revoke_all_ends_every_active_session_of_the_user_and_only_those(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_function("sessions").sessions().store.query_page_limit = 2
    sessions = [signed_in(context, user_id="user_leaked") for _ in range(5)]
    ended = sessions[0]
    assert api(context, "revoke_session.json", ended["id"]).status == 200
    set_attribute(stack, sessions[1]["id"], "expire_at", int(time.time() * 1000) - 1)  # expired by time
    bystander = signed_in(context, user_id="user_bystander")
    answer = revoke_all(context, {"user_id": "user_leaked"})
    assert answer.status == 200, answer.body
    assert answer.json() == {"object": "session_revocation", "user_id": "user_leaked", "revoked_sessions": 3}
    assert answer.headers["Cache-Control"] == "no-store"
    for session in sessions[2:]:
        item = stack.item(session["id"])
        assert item is not None
        assert (item["status"]["S"], item["status_reason"]["S"]) == ("revoked", "all_sessions_revoked")
        assert refresh(context, session["refresh"]).status == 401
    assert stack.item(sessions[1]["id"])["status"]["S"] == "active"  # type: ignore[index]  # expired: left to time
    assert stack.item(bystander["id"])["status"]["S"] == "active"  # type: ignore[index]
    again = revoke_all(context, {"user_id": "user_leaked"})
    assert again.json()["revoked_sessions"] == 0
    assert revoke_all(context, {"user_id": "user_nobody"}).json()["revoked_sessions"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "form_param_missing"),
        ({"user_id": ""}, 422, "form_param_value_invalid"),
        ({"user_id": 7}, 422, "form_param_value_invalid"),
        ({"user_id": "user_1", "all": True}, 422, "form_param_unknown"),
        ("not json", 400, "request_body_invalid"),
        ("[]", 400, "request_body_invalid"),
    ],
)
def test_revoke_all_refusals_change_nothing(stack: Stack, context: Any, body: Any, status: int, code: str) -> None:
    session = signed_in(context, user_id="user_1")
    answer = revoke_all(context, body)
    assert answer.status == status, answer.body
    assert answer.code == code
    assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]


def test_revoke_all_needs_the_secret_key_and_other_methods_are_405(stack: Stack, context: Any) -> None:
    session = signed_in(context, user_id="user_guarded")
    assert revoke_all(context, {"user_id": "user_guarded"}, key="Bearer sk_test_wrong").status == 401
    assert revoke_all(context, {"user_id": "user_guarded"}, key="").status == 401
    assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]
    event = load_event("revoke_all_sessions.json")
    event["requestContext"]["http"]["method"] = "PUT"
    event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /v1/sessions/{proxy+}"
    answer = invoke("sessions", event, context)
    assert answer.status == 405, answer.body
    assert answer.headers["Allow"] == "POST"
