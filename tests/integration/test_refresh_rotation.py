"""Refresh tokens that rotate, reuse detection, planted cookies and sign-ins over a held session, on
the real handlers and moto.

moto honours what these tests rely on: an ``UpdateItem``'s condition (the refresh's one write) with
``ReturnValuesOnConditionCheckFailure: ALL_OLD`` (the item as it stood comes back in the error), and
a ``TransactWriteItems`` that writes nothing when one condition fails, naming it in
``CancellationReasons`` (``tests/integration/test_session_store.py`` checks both directly).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from signin_links import audit
from tests.conftest import Stack, load_function
from tests.handlers import Answer, accept, invoke, mint
from tests.robustness.faults import injected
from tests.session_calls import api, browser_event, cleared, refresh, signed_in

GRACE_S = 10  # RefreshReuseGraceSeconds' default


def refresh_with(context: Any, *cookies: str) -> Answer:
    return invoke("accept_token", browser_event("refresh_session.json", cookies=list(cookies)), context)


def rotated(answer: Answer) -> str:
    assert answer.status == 200, answer.body
    return str(answer.refresh_cookie()["__Host-refresh"].value)


def status(stack: Stack, session_id: str) -> tuple[str, str | None]:
    item = stack.item(session_id)
    assert item is not None
    return item["status"]["S"], item.get("status_reason", {}).get("S")


def after_the_grace(monkeypatch: pytest.MonkeyPatch, seconds: float = GRACE_S + 1) -> None:
    """The accept function's clock, ``seconds`` ahead (the sessions use case shares it)."""
    later = time.time() + seconds
    monkeypatch.setattr(load_function("accept_token").sessions(), "clock", lambda: later)


def dynamodb_operations(faults: Any) -> list[str]:
    return [operation for service, operation, _ in faults.calls if service == "dynamodb"]


# --- rotation and the grace --------------------------------------------------------------------


def test_two_tabs_racing_both_succeed_and_the_losers_answer_keeps_the_winners_token(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = signed_in(context, user_id="user_tabs")
    winner = rotated(refresh(context, session["refresh"]))
    with injected(monkeypatch) as faults:
        loser = refresh(context, session["refresh"])  # the other tab, with the same (now previous) token
    assert loser.status == 200, loser.body
    assert dynamodb_operations(faults) == ["UpdateItem"]  # the refused write told it all: no second call
    # The loser's answer carries the token the winner got (the same value), never an older one.
    assert rotated(loser) == winner
    assert stack.item(session["id"])["refresh_generation"] == {"N": "1"}  # type: ignore[index]
    assert status(stack, session["id"]) == ("active", None)
    assert rotated(refresh(context, winner)).startswith(session["id"] + ".2.")


def test_an_answer_lost_while_the_page_navigated_is_handed_again_within_the_grace(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = signed_in(context, user_id="user_lost_answer")
    current = rotated(refresh(context, session["refresh"]))  # the browser never stored this answer
    after_the_grace(monkeypatch, GRACE_S - 1)
    recovered = rotated(refresh(context, session["refresh"]))
    assert recovered == current
    assert rotated(refresh(context, recovered)).startswith(session["id"] + ".2.")


@pytest.mark.parametrize("older_by", [1, 3])
def test_a_reused_refresh_token_revokes_the_session_and_the_newest_token_stops_too(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, older_by: int
) -> None:
    """A copied token used beside the real one: whichever copy comes second is a reuse."""
    session = signed_in(context, user_id="user_reused")
    tokens = [session["refresh"]]
    for _ in range(older_by):
        tokens.append(rotated(refresh(context, tokens[-1])))
    after_the_grace(monkeypatch)
    with injected(monkeypatch) as faults:
        reused = refresh(context, tokens[-1 - older_by])
    assert reused.status == 401, reused.body
    assert reused.code == "authentication_invalid"
    assert cleared(reused)
    assert dynamodb_operations(faults) == ["UpdateItem", "UpdateItem"]  # the refused write, then the revocation
    assert status(stack, session["id"]) == ("revoked", "refresh_token_reused")
    newest = refresh(context, tokens[-1])
    assert newest.status == 401, newest.body
    # The audit event says why (the record the table's stream carries to the pipe).
    item = stack.item(session["id"])
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"pk": item["pk"]}, "OldImage": {**item, "status": {"S": "active"}}, "NewImage": item},  # type: ignore[index]
    }
    event = audit.audit_event(record)
    assert event is not None
    assert event.detail_type == "SessionRevoked"
    assert event.detail["reason"] == "refresh_token_reused"


def test_the_metric_and_log_of_a_reuse(
    stack: Stack,
    context: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = signed_in(context, user_id="user_reuse_metric")
    rotated(refresh(context, session["refresh"]))
    after_the_grace(monkeypatch)
    capsys.readouterr()
    caplog.clear()
    assert refresh(context, session["refresh"]).status == 401
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(line.get("SessionRefreshReuseDetected") == [1.0] for line in lines)
    [warning] = [record for record in caplog.records if record.getMessage() == "refresh token reused: session revoked"]
    assert warning.levelname == "WARNING"
    assert warning.session_id == session["id"]  # type: ignore[attr-defined]
    assert (warning.presented_generation, warning.current_generation) == (0, 1)  # type: ignore[attr-defined]


def test_forged_mangled_and_foreign_tokens_are_refused_before_any_dynamodb_call(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = signed_in(context, user_id="user_forged")
    other = signed_in(context, user_id="user_forged_other")
    sid, generation, proof = session["refresh"].split(".")
    forged = [
        f"{sid}.1.{proof}",  # a later generation with the old proof
        f"{sid}.{generation}.{other['refresh'].split('.')[2]}",  # another session's proof
        f"{other['id']}.0.{proof}",
        f"{sid}.00.{proof}",  # another spelling of generation 0
        f"{sid}.{proof}",  # no generation: the shape of earlier versions' refresh cookies
    ]
    for value in forged:
        with injected(monkeypatch) as faults:
            answer = refresh(context, value)
        assert answer.status == 401, value
        assert dynamodb_operations(faults) == [], value
    assert status(stack, session["id"]) == ("active", None)
    assert stack.item(session["id"])["refresh_generation"] == {"N": "0"}  # type: ignore[index]


# --- planted cookies (cookie tossing) ---------------------------------------------------------


def test_two_different_refresh_cookies_refresh_nothing_and_sign_out_ends_both(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = signed_in(context, user_id="user_victim")
    attacker = signed_in(context, user_id="user_attacker")
    plantings = [
        (f"__Host-refresh={victim['refresh']}", f"__Host-refresh={attacker['refresh']}"),  # same name, longer Path
        (f"__Host-refresh={victim['refresh']}", f"__Secure-refresh={attacker['refresh']}"),  # the parent domain's
        (f"__Host-refresh={victim['refresh']}", f"__refresh={attacker['refresh']}"),  # an unprefixed one
        (f"__Host-refresh={victim['refresh']}; __Host-refresh={attacker['refresh']}",),  # in one Cookie header
    ]
    before = (stack.item(victim["id"]), stack.item(attacker["id"]))
    for cookies in plantings:
        with injected(monkeypatch) as faults:
            answer = refresh_with(context, *cookies)
        assert answer.status == 401, cookies
        assert answer.code == "authentication_invalid"
        assert answer.cookies == [], cookies  # nothing changes, not even the browser's cookies
        assert dynamodb_operations(faults) == []
    assert (stack.item(victim["id"]), stack.item(attacker["id"])) == before
    # The same value twice is one cookie: it refreshes.
    assert (
        refresh_with(context, f"__Host-refresh={victim['refresh']}", f"__Host-refresh={victim['refresh']}").status
        == 200
    )

    event = browser_event(
        "sign_out.json", cookies=[f"__Host-refresh={victim['refresh']}", f"__Host-refresh={attacker['refresh']}"]
    )
    event["body"] = ""
    event["headers"]["accept"] = "application/json"
    out = invoke("accept_token", event, context)
    assert out.status == 200, out.body
    assert sorted(out.json()["session_ids"]) == sorted([victim["id"], attacker["id"]])
    assert status(stack, victim["id"]) == ("ended", "signed_out")
    assert status(stack, attacker["id"]) == ("ended", "signed_out")
    assert cleared(out)


def test_a_refresh_cookie_of_another_name_alone_is_not_read(stack: Stack, context: Any) -> None:
    """Without SessionCookieDomain the cookie is __Host-refresh: a __Secure-refresh (which a sibling
    host can set for the parent domain) or an old __refresh alone signs nobody in."""
    planted = signed_in(context, user_id="user_planted")
    for name in ("__Secure-refresh", "__refresh", "__host-refresh", "__Host-Refresh"):
        answer = refresh_with(context, f"{name}={planted['refresh']}")
        assert answer.status == 401, name
        assert cleared(answer)
    assert status(stack, planted["id"]) == ("active", None)


def test_with_a_cookie_domain_the_refresh_cookie_is_secure_prefixed_and_read(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import reset_caches

    monkeypatch.setenv("SESSION_COOKIE_DOMAIN", "example.com")
    reset_caches()
    answer = accept(context, mint(context, user_id="user_domain")["token"])
    cookie = answer.refresh_cookie("__Secure-refresh")["__Secure-refresh"]
    assert cookie["domain"] == "example.com"
    assert not [value for value in answer.cookies if value.startswith("__Host-refresh=")]
    refreshed = refresh_with(context, f"__Secure-refresh={cookie.value}")
    assert refreshed.status == 200, refreshed.body
    assert refreshed.refresh_cookie("__Secure-refresh")["__Secure-refresh"]["domain"] == "example.com"
    assert refresh_with(context, f"__Host-refresh={cookie.value}").status == 401  # not this deployment's name


# --- a sign-in over a held session -------------------------------------------------------------


def test_a_sign_in_in_a_browser_that_holds_a_session_ends_it_in_the_same_write(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = signed_in(context, user_id="user_again")
    cookies = [f"__session={held['session']}", f"__Host-refresh={held['refresh']}"]
    minted = mint(context, user_id="user_again")
    with injected(monkeypatch) as faults:
        again = accept(context, minted["token"], cookies=cookies)
    assert again.status == 200, again.body
    calls = [(operation, params) for service, operation, params in faults.calls if service == "dynamodb"]
    assert [operation for operation, _ in calls] == ["TransactWriteItems"]
    assert len(calls[0][1]["TransactItems"]) == 3  # the token, the new session, the held session's end
    assert status(stack, held["id"]) == ("ended", "signed_in_again")
    assert status(stack, again.json()["created_session_id"]) == ("active", None)
    assert refresh(context, held["refresh"]).status == 401


def test_a_confirmed_switch_ends_the_other_users_session(stack: Stack, context: Any) -> None:
    alice = signed_in(context, user_id="user_alice_switch")
    cookies = [f"__session={alice['session']}", f"__Host-refresh={alice['refresh']}"]
    minted = mint(context, user_id="user_bob_switch")
    asked = accept(context, minted["token"], cookies=cookies)
    assert asked.status == 409
    assert status(stack, alice["id"]) == ("active", None)  # asking changes nothing
    confirmed = accept(context, minted["token"], cookies=cookies, confirm="switch_user")
    assert confirmed.status == 200, confirmed.body
    assert status(stack, alice["id"]) == ("ended", "signed_in_again")


def test_a_held_session_that_already_ended_keeps_its_status_and_the_sign_in_succeeds(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = signed_in(context, user_id="user_stale")
    assert api(context, "revoke_session.json", held["id"]).status == 200
    minted = mint(context, user_id="user_stale")
    with injected(monkeypatch) as faults:
        again = accept(context, minted["token"], cookies=[f"__Host-refresh={held['refresh']}"])
    assert again.status == 200, again.body
    assert dynamodb_operations(faults) == ["TransactWriteItems", "TransactWriteItems"]  # again without it
    assert status(stack, held["id"]) == ("revoked", None)
    assert status(stack, again.json()["created_session_id"]) == ("active", None)


def test_forged_refresh_cookies_end_nothing_at_a_sign_in(stack: Stack, context: Any) -> None:
    victim = signed_in(context, user_id="user_not_ended")
    forged = f"{victim['id']}.0.{'A' * 43}"
    answer = accept(context, mint(context, user_id="user_forger")["token"], cookies=[f"__Host-refresh={forged}"])
    assert answer.status == 200, answer.body
    assert status(stack, victim["id"]) == ("active", None)


# --- the backend's refresh (Clerk's POST /v1/sessions/{id}/refresh) -------------------------------


def backend_refresh(context: Any, session: dict[str, str], value: str, response_format: str | None) -> Answer:
    body: dict[str, Any] = {
        "expired_token": session["session"],
        "refresh_token": value,
        "request_origin": "https://app.example.com",
    }
    if response_format is not None:
        body["format"] = response_format
    return api(context, "refresh_session_backend.json", session["id"], body)


def test_format_token_never_rotates_so_a_server_rendered_app_reuses_its_only_token_forever(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = signed_in(context, user_id="user_backend")
    for step in range(3):
        if step:
            later = time.time() + step * 3600
            monkeypatch.setattr(load_function("sessions").sessions(), "clock", lambda later=later: later)
        answer = backend_refresh(context, session, session["refresh"], None)
        assert answer.status == 200, answer.body
        assert answer.json()["object"] == "token"
    item = stack.item(session["id"])
    assert item is not None
    assert item["refresh_generation"] == {"N": "0"}
    assert item["status"]["S"] == "active"


def test_format_cookie_rotates_and_answers_both_cookies(stack: Stack, context: Any) -> None:
    session = signed_in(context, user_id="user_backend_cookie")
    answer = backend_refresh(context, session, session["refresh"], "cookie")
    assert answer.status == 200, answer.body
    cookies = answer.json()["cookies"]
    assert [cookie.split("=", 1)[0] for cookie in cookies] == ["__session", "__Host-refresh"]
    new_refresh = cookies[1].split(";", 1)[0].split("=", 1)[1]
    assert new_refresh.startswith(session["id"] + ".1.")
    assert "HttpOnly" in cookies[1]
    assert "Secure" in cookies[1]
    assert stack.item(session["id"])["refresh_generation"] == {"N": "1"}  # type: ignore[index]
    # The browser's own refresh takes the new token; the previous one, within the grace, still works.
    assert refresh(context, session["refresh"]).status == 200
    assert rotated(refresh(context, new_refresh)).startswith(session["id"] + ".2.")
