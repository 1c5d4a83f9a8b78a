"""Redirects at accept: the Location sent is the ASCII URL that was checked, and a token
whose redirect cannot be sent is refused before the conditional write, so it stays pending.

Tokens minted before redirects were normalised can carry raw non-ASCII text in ``rdr``; ``craft``
signs such a token with the stack's real ticket key, as mint used to.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from signin_links.tickets import sign_ticket
from tests.conftest import Stack
from tests.handlers import craft, get, keyring, mint, post, session_claims, status_of

TOKEN_ID = "sit_0000000000000000000042"


def old_token(stack: Stack, redirect_url: str, token_id: str = TOKEN_ID) -> str:
    """A pending token whose signed ``rdr`` is ``redirect_url`` as it was sent, unchecked (as mint
    used to sign it); the stored record is an ordinary pending one."""
    craft(stack, token_id=token_id)
    key = keyring(stack, "TICKET_SIGNING_KEYRING_SECRET_ID").current()
    return sign_ticket(key, sid=token_id, issued_at=int(time.time()), expires_in_seconds=600, redirect_url=redirect_url)


def test_a_non_ascii_redirect_is_minted_and_sent_as_ascii(stack: Stack, context: Any) -> None:
    minted = mint(context, redirect_url="https://app.example.com/café?plat=crème#bas")
    item = stack.item(minted["id"])
    assert item is not None
    assert item["redirect_url"]["S"] == "https://app.example.com/caf%C3%A9?plat=cr%C3%A8me#bas"
    answer = post(context, minted["token"])
    assert answer.status == 303
    assert answer.headers["Location"] == "https://app.example.com/caf%C3%A9?plat=cr%C3%A8me#bas"
    assert status_of(stack, minted["id"]) == "accepted"


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("https://app.example.com/café", "https://app.example.com/caf%C3%A9"),
        ("https://app.example.com/日本?q=é", "https://app.example.com/%E6%97%A5%E6%9C%AC?q=%C3%A9"),
        ("https://APP.example.com:443/x", "https://app.example.com/x"),
    ],
)
def test_an_old_token_with_a_raw_redirect_is_sent_in_ascii(stack: Stack, context: Any, raw: str, sent: str) -> None:
    token = old_token(stack, raw)
    page = get(context, token)
    assert page.status == 200
    answer = post(context, token)
    assert answer.status == 303, answer.body
    assert answer.headers["Location"] == sent
    assert all(value.isascii() for value in answer.headers.values())
    claims = session_claims(stack, answer.session_cookie()["__session"].value)
    assert claims["azp"] == "https://app.example.com"
    as_json = post(context, old_token(stack, raw, "sit_0000000000000000000043"), accept="application/json")
    assert as_json.status == 200, as_json.body
    assert as_json.json()["redirect_url"] == sent


@pytest.mark.parametrize(
    "raw",
    [
        "https://app.example.com/\ud800",  # cannot be sent at all
        "https://[x/",  # cannot be parsed (urlsplit raises ValueError)
        "https://app.example.com:99999/",
        "https://app.example.com\uff0fevil.com/",
        "https://evil.example/",
    ],
)
def test_a_token_whose_redirect_cannot_be_sent_is_refused_and_stays_pending(
    stack: Stack, context: Any, raw: str
) -> None:
    token = old_token(stack, raw)
    page = get(context, token)
    assert page.status == 400, page.body
    assert page.code == "ticket_invalid_code"
    for accept in ("text/html", "application/json"):
        answer = post(context, token, accept=accept)
        assert answer.status == 400, answer.body
        assert answer.code == "ticket_invalid_code"
        assert answer.cookies == []
    assert status_of(stack, TOKEN_ID) == "pending"
