"""``AcceptConfirmation``: when the accept page names the link's user and waits.

``never`` (the default) keeps the one-click page; ``cross-site`` waits for an arrival from another
site (``Sec-Fetch-Site: cross-site``, or a browser that sends no fetch metadata) in a browser that
holds no session here; ``always`` always waits. A waiting page never submits itself, names the user
(escaped), still carries the CSRF token, and changes nothing until the click's POST.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Stack, reset_caches
from tests.handlers import accept_get_event, form_token, invoke, mint, status_of
from tests.session_calls import signed_in


def page(context: Any, token: str | None, site: str | None, cookies: list[str] | None = None) -> Any:
    event = accept_get_event(token)
    if site is not None:
        event["headers"]["sec-fetch-site"] = site
    if cookies:
        event["cookies"] = cookies
    return invoke("accept_token", event, context)


def waits(answer: Any) -> bool:
    """The page names the user and waits for the click (no auto-submit)."""
    assert answer.status == 200, answer.body
    confirming = 'id="link-user"' in answer.body
    assert 'data-auto-submit="false"' in answer.body or not confirming
    assert 'name="confirm"' not in answer.body  # not the 409 "Switch accounts?" page
    return confirming


@pytest.fixture
def mode(stack: Stack, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    value: str = request.param
    if value:
        monkeypatch.setenv("ACCEPT_CONFIRMATION", value)
    reset_caches()
    return value or "never"


ARRIVALS = ["cross-site", None, "same-site", "same-origin", "none"]
EXPECTED = {
    "never": dict.fromkeys(ARRIVALS, False),
    "cross-site": {"cross-site": True, None: True, "same-site": False, "same-origin": False, "none": False},
    "always": dict.fromkeys(ARRIVALS, True),
}


@pytest.mark.parametrize("mode", ["", "cross-site", "always"], indirect=True)
def test_which_arrivals_wait_in_each_mode(stack: Stack, context: Any, mode: str) -> None:
    for arrival, expected in EXPECTED[mode].items():
        minted = mint(context, user_id="user_<carol>")
        answer = page(context, minted["token"], arrival)
        assert waits(answer) is expected, (mode, arrival)
        if expected:
            assert 'id="link-user" dir="auto">user_&lt;carol&gt;<' in answer.body
            assert "<script" in answer.body  # the script fills a #token= link's user; it never submits
        form_token(answer)  # a waiting page's form carries its CSRF token like any other
        assert status_of(stack, minted["id"]) == "pending"


@pytest.mark.parametrize("mode", ["cross-site"], indirect=True)
def test_cross_site_does_not_wait_in_a_browser_that_holds_a_session(stack: Stack, context: Any, mode: str) -> None:
    held = signed_in(context, user_id="user_dave")
    cookies = [f"__session={held['session']}"]
    assert not waits(page(context, mint(context, user_id="user_dave")["token"], "cross-site", cookies))
    # Another user's link is not silently taken either: the POST asks first (409), as before.
    assert not waits(page(context, mint(context, user_id="user_erin")["token"], "cross-site", cookies))
    forged = [f"__session={held['session'][:-4]}AAAA"]
    assert waits(page(context, mint(context, user_id="user_dave")["token"], "cross-site", forged))


@pytest.mark.parametrize("mode", ["always"], indirect=True)
def test_a_fragment_link_waits_with_the_user_left_to_the_script(stack: Stack, context: Any, mode: str) -> None:
    answer = page(context, None, "cross-site")
    assert waits(answer)
    assert 'id="link-user" dir="auto"></strong>' in answer.body
    assert 'data-auto-submit="false"' in answer.body
    assert '" hidden>' in answer.body  # the form waits for the script to find the fragment's token


@pytest.mark.parametrize("mode", ["always"], indirect=True)
def test_the_click_signs_in(stack: Stack, context: Any, mode: str) -> None:
    from tests.handlers import accept

    minted = mint(context, user_id="user_frank")
    assert waits(page(context, minted["token"], "cross-site"))
    assert accept(context, minted["token"], as_json=False).status == 200  # the form's POST (same-origin)
    assert status_of(stack, minted["id"]) == "accepted"
