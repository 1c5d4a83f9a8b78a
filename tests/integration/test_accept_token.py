"""GET/HEAD/POST /accept-token and the JWKS through the real handler, with the events/ files, on moto.

Every state of a sign-in token and every failure of the accept flow: success (cookie, 303, JSON,
claims), expired, already used, revoked, invalid, redirect no longer allowed, same-browser retry,
scanner-safe GET and HEAD.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.conftest import Stack, load_event, reset_caches
from tests.handlers import call_accept, craft, get, head, mint, post, revoke, session_claims, status_of


@pytest.fixture
def dynamodb_calls(stack: Stack) -> Iterator[list[str]]:
    """Names of the DynamoDB operations the accept function makes."""
    from signin_links import aws

    calls: list[str] = []
    client = aws.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    yield calls


# --- success -------------------------------------------------------------------------------


def test_post_redeems_once_sets_the_session_cookie_and_redirects(stack: Stack, context: Any) -> None:
    minted = mint(context, redirect_url="https://app.example.com/welcome?x=1")
    answer = post(context, minted["token"])
    assert answer.status == 303
    assert answer.headers["Location"] == "https://app.example.com/welcome?x=1"
    cookie = answer.session_cookie()["__session"]
    assert cookie["path"] == "/"
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == "604800"
    assert not cookie["domain"]
    claims = session_claims(stack, cookie.value)
    assert claims["sub"] == "user_123"
    assert claims["sid"].startswith("sess_")
    assert claims["v"] == 2
    assert claims["sts"] == "active"
    assert "aud" not in claims
    assert "o" not in claims
    # The token lives SessionTokenLifetimeSeconds (60 s); the cookie lives as long as the session.
    assert claims["nbf"] == claims["iat"] - 10
    assert claims["exp"] == claims["iat"] + 60
    assert claims["iss"] == "https://links.example.com"
    assert claims["azp"] == "https://app.example.com"
    header = jwt.get_unverified_header(cookie.value)
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header["kid"]
    item = stack.item(minted["id"])
    assert item is not None
    assert item["status"]["S"] == "accepted"
    assert item["session_id"]["S"] == claims["sid"]
    assert int(item["accepted_at"]["N"]) >= minted["created_at"]
    refresh = answer.refresh_cookie()["__Host-refresh"]
    assert refresh["path"] == "/"
    assert refresh["secure"]
    assert refresh["httponly"]
    assert not refresh["domain"]
    assert refresh["samesite"] == "Lax"
    assert refresh["max-age"] == "604800"
    assert refresh.value.startswith(claims["sid"] + ".0.")  # generation 0 (refresh_tokens.py)
    session = stack.item(claims["sid"])
    assert session is not None
    assert session["status"]["S"] == "active"
    assert session["user_id"]["S"] == "user_123"
    assert session["sign_in_token_id"]["S"] == minted["id"]
    assert session["azp"]["S"] == "https://app.example.com"
    assert refresh.value.split(".", 1)[1] not in json.dumps(session)  # only a hash is stored


def test_json_answer_carries_the_session(stack: Stack, context: Any) -> None:
    minted = mint(context, org_id="org_7")
    answer = post(context, minted["token"], accept="application/json", as_json=True)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["object"] == "sign_in"
    assert body["status"] == "complete"
    assert body["user_id"] == "user_123"
    assert body["created_session_id"].startswith("sess_")
    assert body["redirect_url"] is None
    claims = session_claims(stack, body["session_token"])
    assert claims["sid"] == body["created_session_id"]
    assert claims["o"] == {"id": "org_7"}
    assert "azp" not in claims
    assert answer.session_cookie()["__session"].value == body["session_token"]


def test_no_redirect_shows_signed_in_as_the_user_escaped(stack: Stack, context: Any) -> None:
    minted = mint(context, user_id='<img src=x onerror="alert(1)">&co')
    answer = post(context, minted["token"])
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"].startswith("text/html")
    assert (
        'Signed in as <strong id="user-id" dir="auto">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;co</strong>'
        in (answer.body)
    )
    assert "<img" not in answer.body
    assert answer.session_cookie()["__session"].value


def test_form_body_may_arrive_base64_encoded(stack: Stack, context: Any) -> None:
    minted = mint(context)
    answer = post(context, minted["token"], accept="application/json", base64_body=True)
    assert answer.status == 200, answer.body
    assert answer.json()["user_id"] == "user_123"


def test_session_issuer_and_cookie_domain_come_from_settings(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_ISSUER", "https://clerk.example.com/")
    monkeypatch.setenv("SESSION_COOKIE_DOMAIN", "example.com")
    monkeypatch.setenv("SESSION_LIFETIME_SECONDS", "3600")
    reset_caches()
    answer = post(context, mint(context)["token"])
    cookie = answer.session_cookie()["__session"]
    assert cookie["domain"] == "example.com"
    assert cookie["max-age"] == "3600"
    # With a cookie domain the refresh cookie cannot be __Host-: it is __Secure-refresh, on that domain.
    refresh = answer.refresh_cookie("__Secure-refresh")["__Secure-refresh"]
    assert refresh["domain"] == "example.com"
    assert refresh["max-age"] == "3600"
    assert refresh["secure"]
    claims = session_claims(stack, cookie.value)
    assert claims["iss"] == "https://clerk.example.com"
    assert claims["exp"] - claims["iat"] == 60
    monkeypatch.setenv("SESSION_TOKEN_LIFETIME_SECONDS", "300")
    reset_caches()
    claims = session_claims(stack, post(context, mint(context)["token"]).session_cookie()["__session"].value)
    assert claims["exp"] - claims["iat"] == 300


# --- same-browser retry ---------------------------------------------------------------------


def test_same_browser_retry_succeeds_again_without_a_write(stack: Stack, context: Any) -> None:
    minted = mint(context, redirect_url="https://app.example.com/home")
    first = post(context, minted["token"])
    session = first.session_cookie()["__session"].value
    item_before = stack.item(minted["id"])
    retry = post(context, minted["token"], cookie=session)
    assert retry.status == 303, retry.body
    assert retry.headers["Location"] == "https://app.example.com/home"
    # A fresh token for the same session; the browser keeps its refresh cookie.
    assert (
        session_claims(stack, retry.session_cookie()["__session"].value)["sid"] == session_claims(stack, session)["sid"]
    )
    assert not [cookie for cookie in retry.cookies if "refresh=" in cookie.split(";")[0]]
    assert stack.item(minted["id"]) == item_before
    # Two __session cookies (say host-only and Domain=example.com): the one that matches counts.
    other_session = post(context, mint(context)["token"]).session_cookie()["__session"].value
    both = post(context, minted["token"], cookie=session, extra_cookies=(other_session,))
    assert both.status == 303, both.body
    assert both.headers["Location"] == "https://app.example.com/home"
    as_json = post(context, minted["token"], cookie=session, accept="application/json")
    assert as_json.status == 200, as_json.body
    assert as_json.json()["created_session_id"] == session_claims(stack, session)["sid"]


def test_another_browser_gets_already_used(stack: Stack, context: Any) -> None:
    minted = mint(context)
    assert post(context, minted["token"]).status == 200
    other = mint(context)
    other_session = post(context, other["token"]).session_cookie()["__session"].value
    for cookie in (None, other_session, "garbage.cookie.value"):
        answer = post(context, minted["token"], cookie=cookie)
        assert answer.status == 400, answer.body
        assert answer.code == "sign_in_token_already_used_code"
        assert "already used" in answer.body
        assert "Ask for a new sign-in link." in answer.body
    envelope = post(context, minted["token"], accept="application/json").json()
    assert envelope["errors"][0]["code"] == "sign_in_token_already_used_code"
    assert envelope["clerk_trace_id"] == "req-0103"


# --- failures -------------------------------------------------------------------------------


def test_revoked_token(stack: Stack, context: Any) -> None:
    minted = mint(context)
    revoke(context, minted["id"])
    answer = post(context, minted["token"])
    assert answer.status == 400, answer.body
    assert answer.code == "sign_in_token_revoked_code"
    assert "cancelled" in answer.body
    assert status_of(stack, minted["id"]) == "revoked"


def test_expired_by_signature_is_caught_before_any_write(stack: Stack, context: Any, dynamodb_calls: list[str]) -> None:
    token = craft(stack, issued_at=int(time.time()) - 4000, expires_in=600)
    page = get(context, token)
    assert page.status == 400, page.body
    assert page.code == "ticket_expired_code"
    assert "has expired" in page.body
    answer = post(context, token, accept="application/json")
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_expired_code"
    assert dynamodb_calls == []
    assert status_of(stack, "sit_0000000000000000000042") == "pending"


def test_expired_within_the_leeway_is_refused_by_the_conditional_write(stack: Stack, context: Any) -> None:
    # The JWT is still inside the verification leeway; the table's expires_at is not.
    token = craft(stack, issued_at=int(time.time()) - 610, expires_in=600)
    answer = post(context, token)
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_expired_code"
    assert status_of(stack, "sit_0000000000000000000042") == "pending"


def test_token_unknown_to_the_table_is_invalid(stack: Stack, context: Any) -> None:
    answer = post(context, craft(stack, store=False), accept="application/json")
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_invalid_code"


def test_redirect_no_longer_allowed_is_refused_and_leaves_the_token_pending(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(context, redirect_url="https://app.example.com/welcome")
    monkeypatch.setenv("ALLOWED_REDIRECT_ORIGINS", "http://127.0.0.1:3000")
    reset_caches()
    page = get(context, minted["token"])
    assert page.status == 400, page.body
    assert page.code == "ticket_invalid_code"
    assert "no longer allowed" in page.body
    answer = post(context, minted["token"])
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_invalid_code"
    assert answer.cookies == []
    assert status_of(stack, minted["id"]) == "pending"


def test_missing_session_key_fails_before_consuming(stack: Stack, context: Any) -> None:
    minted = mint(context)
    stack.secretsmanager.put_secret_value(
        SecretId=stack.env["SESSION_KEYRING_SECRET_ID"], SecretString='{"kind": "rsa", "keys": []}'
    )
    reset_caches()
    answer = post(context, minted["token"], accept="application/json")
    assert answer.status == 503, answer.body
    assert answer.code == "service_unavailable"
    assert answer.headers["Retry-After"]
    assert status_of(stack, minted["id"]) == "pending"


# --- GET and HEAD never consume ---------------------------------------------------------------


def test_get_renders_the_form_without_touching_the_table(stack: Stack, context: Any, dynamodb_calls: list[str]) -> None:
    minted = mint(context)
    dynamodb_calls.clear()
    before = stack.item(minted["id"])
    page = get(context, minted["token"])
    assert page.status == 200, page.body
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    form = '<form id="accept" method="post" action="accept-token" data-auto-submit="true"'
    assert f'{form} data-working="Signing you in...">' in page.body
    assert f'<input type="hidden" name="token" value="{minted["token"]}">' in page.body
    assert '<button type="submit" id="sign-in">Sign in</button>' in page.body
    assert dynamodb_calls == []
    assert stack.item(minted["id"]) == before


def test_head_answers_200_with_no_body_and_no_side_effect(
    stack: Stack, context: Any, dynamodb_calls: list[str]
) -> None:
    minted = mint(context)
    dynamodb_calls.clear()
    answer = head(context, minted["token"])
    assert answer.status == 200, answer.body
    assert answer.body == ""
    assert answer.cookies == []
    assert dynamodb_calls == []
    assert status_of(stack, minted["id"]) == "pending"


def test_page_without_a_token_waits_for_the_fragment(stack: Stack, context: Any) -> None:
    page = get(context)
    assert page.status == 200, page.body
    assert "No token provided." in page.body
    assert 'data-working="Signing you in..." hidden>' in page.body
    assert 'name="token" value=""' in page.body
    assert "window.location.hash" in page.body


def test_auto_submit_can_be_switched_off(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEPT_AUTO_SUBMIT", "false")
    reset_caches()
    page = get(context, mint(context)["token"])
    assert 'data-auto-submit="false" ' in page.body
    assert "Select \u201cSign in\u201d to continue." in page.body


# --- JWKS -----------------------------------------------------------------------------------


def test_jwks_lists_the_session_keys_with_cache_headers(stack: Stack, context: Any) -> None:
    answer = call_accept(load_event("jwks.json"), context)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "public, max-age=240"  # 600 s delay - 300 s max age - 60 s margin
    (key,) = answer.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["e"] == "AQAB"
    assert len(base64.urlsafe_b64decode(key["n"] + "==")) == 256  # RSA-2048
    token = post(context, mint(context)["token"], accept="application/json").json()["session_token"]
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    assert jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"])["sub"] == "user_123"
