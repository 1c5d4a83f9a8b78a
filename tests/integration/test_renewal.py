"""A way back from a dead link, through the accept handler on moto: the page of an expired or used
link the stack emailed offers "Email me a new link"; POST /accept-token/renew records one renewal
per token in one conditional write (its stream record becomes SignInLinkRenewalRequested), and
answers the same neutral page for every token it cannot renew, writing nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from signin_links.keyring import generate_key
from signin_links.models import SignInTokenRecord, TokenStatus
from signin_links.store import TokenStore
from signin_links.tickets import sign_ticket
from tests import handlers
from tests.conftest import Stack, reset_caches
from tests.handlers import JSON, Answer, accept, accept_post_event, encoded, mint

RENEW_FORM = '<form id="renew" method="post" action="accept-token/renew">'
SENDING = "<h1>A new link is on its way</h1>"
ALREADY = "<h1>A new link was already sent</h1>"


@pytest.fixture
def renewal(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LINK_RENEWAL", "email")
    reset_caches()
    yield "email"


def renew(context: Any, token: str, *, as_json: bool = False, **headers: str) -> Answer:
    event = accept_post_event(f"token={encoded(token)}", accept=JSON if as_json else handlers.HTML)
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/accept-token/renew"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /accept-token/renew"
    event["headers"].update(headers)
    return handlers.invoke("accept_token", event, context)


def emailed(stack: Stack, token_id: str, status: str = "sent") -> None:
    """The email marker the email function leaves once it sent the token's email."""
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={"pk": {"S": f"email#{token_id}"}, "status": {"S": status}, "updated_at": {"N": "1"}},
    )


def renewals(stack: Stack) -> list[dict[str, Any]]:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("renew#")]


def used(context: Any, **fields: Any) -> dict[str, Any]:
    minted = mint(context, user_id="user_ada", **fields)
    assert accept(context, minted["token"]).status == 200
    return minted


def crafted(stack: Stack, token_id: str, *, age: int, lifetime: int = 600, user_id: str = "user_ada") -> str:
    """A token of this stack issued ``age`` seconds ago, with its record in the table."""
    issued = int(time.time()) - age
    key = handlers.keyring(stack, "TICKET_SIGNING_KEYRING_SECRET_ID").current()
    token = sign_ticket(key, sid=token_id, issued_at=issued, expires_in_seconds=lifetime, user_id=user_id)
    record = SignInTokenRecord(
        id=token_id,
        user_id=user_id,
        status=TokenStatus.PENDING,
        created_at=issued * 1000,
        updated_at=issued * 1000,
        expires_at=issued + lifetime,
        expires_in_seconds=lifetime,
    )
    TokenStore(stack.dynamodb, stack.table_name).create(record, ttl=issued + lifetime + 3600)
    return token


def test_a_used_emailed_link_offers_a_new_one_once(stack: Stack, context: Any, renewal: str) -> None:
    minted = used(context, redirect_url="https://app.example.com/cart")
    emailed(stack, minted["id"])
    dead = accept(context, minted["token"], as_json=False)  # another browser opens the used link
    assert dead.status == 400
    assert dead.code == "sign_in_token_already_used_code"
    assert RENEW_FORM in dead.body
    assert f'<input type="hidden" name="token" value="{minted["token"]}">' in dead.body
    assert "Email me a new link</button>" in dead.body

    first = renew(context, minted["token"])
    assert first.status == 200, first.body
    assert SENDING in first.body
    (item,) = renewals(stack)
    assert item["pk"]["S"] == f"renew#{minted['id']}"
    assert item["status"]["S"] == "requested"
    assert item["user_id"]["S"] == "user_ada"
    assert item["redirect_url"]["S"] == "https://app.example.com/cart"
    assert item["delivery"]["S"] == "email"

    again = renew(context, minted["token"])
    assert ALREADY in again.body
    assert len(renewals(stack)) == 1
    assert renew(context, minted["token"], as_json=True).json() == {
        "object": "sign_in_token_renewal",
        "status": "already_requested",
    }


def test_an_expired_emailed_link_offers_renewal_from_the_get_page_which_writes_nothing(
    stack: Stack, context: Any, renewal: str
) -> None:
    token = crafted(stack, "sit_0000000000000000000077", age=7200)
    emailed(stack, "sit_0000000000000000000077")
    calls: list[str] = []
    from signin_links import aws

    aws.client("dynamodb").meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    event = handlers.accept_get_event(token)
    page = handlers.invoke("accept_token", event, context)
    assert page.status == 400 and page.code == "ticket_expired_code"
    assert RENEW_FORM in page.body
    assert calls == ["GetItem"]  # whether the link was emailed: a read, never a write
    assert renew(context, token, as_json=True).json() == {"object": "sign_in_token_renewal", "status": "requested"}
    assert [item["pk"]["S"] for item in renewals(stack)] == ["renew#sit_0000000000000000000077"]


def test_links_that_cannot_be_renewed_get_the_neutral_page_and_nothing_is_written(
    stack: Stack, context: Any, renewal: str
) -> None:
    never_emailed = used(context)
    revoked = mint(context, user_id="user_ada")
    emailed(stack, revoked["id"])
    assert handlers.invoke("mint_link", handlers.revoke_event(revoked["id"]), context).status == 200
    live = mint(context, user_id="user_ada")
    emailed(stack, live["id"])
    failed_email = used(context)
    emailed(stack, failed_email["id"], status="failed")
    foreign_key = generate_key("ed25519", now=int(time.time()) - 10)
    foreign = sign_ticket(
        foreign_key, sid=live["id"], issued_at=int(time.time()), expires_in_seconds=60, user_id="user_ada"
    )
    tokens = {
        "never emailed": never_emailed["token"],
        "revoked": revoked["token"],
        "still usable": live["token"],
        "email failed": failed_email["token"],
        "another stack's": foreign,
        "forged": "eyJhbGciOiJub25lIn0.eyJzaWQiOiJzaXRfMSJ9.",
        "malformed": "not a token",
        "empty": "",
    }
    for name, token in tokens.items():
        answer = renew(context, token)
        assert answer.status in (200, 422), (name, answer.status)
        if answer.status == 200:
            assert SENDING in answer.body, name
    assert renewals(stack) == []
    # and their pages offer nothing
    assert RENEW_FORM not in accept(context, never_emailed["token"], as_json=False).body
    assert RENEW_FORM not in accept(context, revoked["token"], as_json=False).body


def test_without_renewal_nothing_is_offered_or_recorded(stack: Stack, context: Any) -> None:
    minted = used(context)
    emailed(stack, minted["id"])
    assert RENEW_FORM not in accept(context, minted["token"], as_json=False).body
    assert SENDING in renew(context, minted["token"]).body
    assert renewals(stack) == []


def test_for_the_application_any_dead_link_is_renewable_and_the_page_names_the_app(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINK_RENEWAL", "application")
    monkeypatch.setenv("APP_NAME", "Acme")
    reset_caches()
    minted = used(context)  # never emailed by the stack: the application sends its own emails
    assert RENEW_FORM in accept(context, minted["token"], as_json=False).body
    answer = renew(context, minted["token"], **{"accept-language": "de"})
    assert "<h1>Ihre Anfrage wurde weitergeleitet</h1>" in answer.body
    assert "kann Acme Ihnen einen neuen senden" in answer.body
    (item,) = renewals(stack)
    assert item["delivery"]["S"] == "application"


def test_a_cross_site_renewal_post_is_refused_before_anything_is_read(stack: Stack, context: Any, renewal: str) -> None:
    minted = used(context)
    emailed(stack, minted["id"])
    answer = renew(context, minted["token"], **{"sec-fetch-site": "cross-site", "origin": "https://evil.example"})
    assert answer.status == 403
    assert answer.code == "origin_invalid"
    assert renewals(stack) == []
