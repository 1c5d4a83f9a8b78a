"""Login CSRF from browsers without Fetch Metadata, on the real accept handler.

Such a browser (Safari before 16.4, Firefox before 90) sends no ``Sec-Fetch-Site``; a cross-site form
POST carries the attacker's ``Origin``, or ``null`` from a sandboxed frame, the same value the
service's own pages send. Every cookie-carrying POST with a foreign ``Origin`` and no fetch metadata
must show the per-render CSRF token that only the service's own page put in its form (bound to the
``__Host-csrf`` cookie); curl and server-side clients (neither ``Origin`` nor fetch metadata) pass.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from signin_links import csrf
from tests.conftest import Stack, load_function
from tests.handlers import accept_get_event, accept_post_event, form_token, invoke, mint, status_of
from tests.session_calls import ALLOWED, browser_event, refresh, signed_in

OLD_BROWSER_ORIGINS = ["null", "https://evil.example", "https://links.example.com.evil.example", ""]


def old_browser_post(token: str, *, origin: str | None, csrf_field: str | None, cookies: list[str]) -> dict[str, Any]:
    """The accept form's POST from a browser without Fetch Metadata."""
    body = f"token={token}" + (f"&csrf_token={csrf_field}" if csrf_field is not None else "")
    event = accept_post_event(body, cookies=cookies)
    for name in ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest"):
        event["headers"].pop(name, None)
    if origin is not None:
        event["headers"]["origin"] = origin
    return event


def test_the_csrf_cookie_is_host_only_secure_and_lax(stack: Stack, context: Any) -> None:
    page = invoke("accept_token", accept_get_event(mint(context)["token"]), context)
    assert page.status == 200, page.body
    (cookie,) = page.cookies
    assert cookie.startswith("__Host-csrf=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert attributes == {"path", "max-age", "httponly", "secure", "samesite"}  # no Domain: __Host-
    assert "Path=/;" in cookie
    assert "SameSite=Lax" in cookie
    assert f"Max-Age={csrf.LIFETIME_SECONDS}" in cookie


@pytest.mark.parametrize("origin", OLD_BROWSER_ORIGINS)
def test_a_cross_site_post_without_fetch_metadata_is_refused_without_the_pages_token(
    stack: Stack, context: Any, origin: str
) -> None:
    minted = mint(context, user_id="user_victim_of_csrf")
    answer = invoke(
        "accept_token", old_browser_post(minted["token"], origin=origin, csrf_field=None, cookies=[]), context
    )
    assert answer.status == 403, answer.body
    assert answer.code == "origin_invalid"
    assert not answer.cookies
    assert status_of(stack, minted["id"]) == "pending"


def test_the_pages_own_form_signs_in_from_a_browser_without_fetch_metadata(stack: Stack, context: Any) -> None:
    minted = mint(context, user_id="user_old_safari")
    field, cookie = form_token(invoke("accept_token", accept_get_event(minted["token"]), context))
    event = old_browser_post(minted["token"], origin="null", csrf_field=field, cookies=[cookie])
    answer = invoke("accept_token", event, context)
    assert answer.status == 200, answer.body
    assert status_of(stack, minted["id"]) == "accepted"


def test_a_token_counts_only_with_its_own_cookie_while_it_is_fresh(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(context, user_id="user_csrf_shapes")
    field, cookie = form_token(invoke("accept_token", accept_get_event(minted["token"]), context))
    _, other_cookie = form_token(invoke("accept_token", accept_get_event(minted["token"]), context))
    issued, salt, mac = field.split(".")
    tampered = {
        "another browser's cookie": (field, [other_cookie]),
        "no cookie": (field, []),
        "a changed salt": (f"{issued}.{salt[::-1]}.{mac}", [cookie]),
        "a changed time": (f"{int(issued) + 1}.{salt}.{mac}", [cookie]),
        "the nonce itself": (cookie.split("=", 1)[1], [cookie]),
        "empty": ("", [cookie]),
    }
    for label, (value, cookies) in tampered.items():
        answer = invoke("accept_token", old_browser_post(minted["token"], origin="null", csrf_field=value,
                                                          cookies=cookies), context)  # fmt: skip
        assert answer.status == 403, label
        assert status_of(stack, minted["id"]) == "pending", label
    later = time.time() + csrf.LIFETIME_SECONDS + 1
    monkeypatch.setattr(load_function("accept_token").redemptions(), "clock", lambda: later)
    stale = invoke("accept_token", old_browser_post(minted["token"], origin="null", csrf_field=field, cookies=[cookie]),
                   context)  # fmt: skip
    assert stale.status == 403, "a token older than its lifetime"
    assert stale.code == "origin_invalid"
    assert status_of(stack, minted["id"]) == "pending"


def test_a_second_tab_keeps_the_first_tabs_token_valid(stack: Stack, context: Any) -> None:
    first_link, second_link = mint(context, user_id="user_tabs"), mint(context, user_id="user_tabs")
    field, cookie = form_token(invoke("accept_token", accept_get_event(first_link["token"]), context))
    second = accept_get_event(second_link["token"])
    second["cookies"] = [cookie]
    second_field, second_cookie = form_token(invoke("accept_token", second, context))
    assert second_cookie == cookie  # the browser's nonce is kept: the first tab's form still works
    assert second_field != field  # each render its own token
    for link, value in ((first_link, field), (second_link, second_field)):
        event = old_browser_post(link["token"], origin="null", csrf_field=value, cookies=[cookie])
        assert invoke("accept_token", event, context).status == 200


@pytest.mark.parametrize(
    ("headers", "passes"),
    [
        ({}, True),  # curl, server-side clients: the README's tour
        ({"origin": "https://links.example.com"}, True),  # the accept base URL's origin (own page)
        ({"origin": "https://127.0.0.1:3000"}, True),  # the request's own host
        ({"origin": ALLOWED}, True),  # an allowed application origin
        ({"origin": "null"}, False),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null", "sec-fetch-site": "same-origin"}, True),  # a current browser: fetch metadata decides
    ],
)
def test_which_origins_need_a_token(stack: Stack, context: Any, headers: dict[str, str], passes: bool) -> None:
    minted = mint(context, user_id="user_origins")
    event = old_browser_post(minted["token"], origin=None, csrf_field=None, cookies=[])
    event["headers"].update(headers)
    answer = invoke("accept_token", event, context)
    assert (answer.status == 200) is passes, (answer.status, answer.body[:200])
    assert status_of(stack, minted["id"]) == ("accepted" if passes else "pending")


def test_sign_out_and_refresh_from_a_foreign_origin_without_fetch_metadata_change_nothing(
    stack: Stack, context: Any
) -> None:
    session = signed_in(context, user_id="user_logout_csrf")
    cookies = [f"__session={session['session']}", f"__Host-refresh={session['refresh']}"]
    for origin in ("null", "https://evil.example"):
        assert refresh(context, session["refresh"], origin=origin).status == 403
        event = browser_event("sign_out.json", cookies=cookies, origin=origin)
        event["body"] = ""
        refused = invoke("accept_token", event, context)
        assert refused.status == 403, refused.body
        assert not refused.cookies
        assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]
    # The sign-out page's own form works from such a browser.
    page = invoke("accept_token", browser_event("sign_out_page.json", cookies=cookies), context)
    field, csrf_cookie = form_token(page)
    event = browser_event("sign_out.json", cookies=[*cookies, csrf_cookie], origin="null")
    event["body"] = f"csrf_token={field}"
    done = invoke("accept_token", event, context)
    assert done.status == 200, done.body
    assert stack.item(session["id"])["status"]["S"] == "ended"  # type: ignore[index]


def test_the_switch_confirmation_form_carries_a_working_token(stack: Stack, context: Any) -> None:
    alice = signed_in(context, user_id="user_alice_csrf")
    minted = mint(context, user_id="user_bob_csrf")
    first = old_browser_post(minted["token"], origin=None, csrf_field=None, cookies=[f"__session={alice['session']}"])
    asked = invoke("accept_token", first, context)
    assert asked.status == 409, asked.body
    field, cookie = form_token(asked)
    confirm = old_browser_post(minted["token"], origin="null", csrf_field=field,
                               cookies=[f"__session={alice['session']}", cookie])  # fmt: skip
    confirm["body"] += "&confirm=switch_user"
    answer = invoke("accept_token", confirm, context)
    assert answer.status == 200, answer.body
    assert status_of(stack, minted["id"]) == "accepted"
