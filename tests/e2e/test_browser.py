"""A real headless Chromium (Debian's) opens minted links on the local stack.

The links redirect to a landing page served by this module on another origin of 127.0.0.1 (a
stand-in for the application), which records the cookies each request carried: cookies are per
host, not per port, so it sees the ``__session`` the accept page set. That second origin also
proves the page's CSP lets the form's redirect leave for an allowed origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.sites import Site
from tests.e2e.submissions import submissions_by_itself, watch_submissions

pytestmark = pytest.mark.browser


WELCOME = "<!doctype html><title>Welcome</title><h1>Welcome back</h1>"


@pytest.fixture(scope="module")
def landing() -> Iterator[Site]:
    """The application's page the links redirect to (any path); remembers the Cookie header of each visit."""
    page = Site(default=WELCOME)
    yield page
    page.close()


@pytest.fixture(scope="module")
def stack(landing: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    """A local stack whose allow-list also holds the landing page's origin."""
    env = {"LOCAL_PARAMETER_AllowedRedirectOrigins": landing.origin}
    with running_stack(tmp_path_factory.mktemp("browser-stack"), env=env) as handle:
        yield handle


def sid_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def session_cookie(context: Any) -> dict[str, Any]:
    (cookie,) = [cookie for cookie in context.cookies() if cookie["name"] == "__session"]
    return dict(cookie)


def test_link_signs_in_once_redirects_and_refuses_a_second_browser(
    stack: LocalStackHandle, landing: Site, browser: Any
) -> None:
    minted = stack.mint("user_browser", redirect_url=f"{landing.origin}/welcome?from=email")
    # A mail scanner opens the link first, as Safe Links does: nothing may change.
    httpx.get(minted["url"], headers={"user-agent": "scanner"})
    httpx.head(minted["url"], headers={"user-agent": "scanner"})
    assert stack.status(minted["id"]) == "pending"

    context = browser.new_context()
    page = context.new_page()
    page.goto(minted["url"])
    page.wait_for_url(f"{landing.origin}/welcome?from=email")
    assert page.locator("h1").inner_text() == "Welcome back"
    cookie = session_cookie(context)
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "127.0.0.1"
    assert cookie["expires"] > 0
    assert f"__session={cookie['value']}" in landing.cookies_of("/welcome?from=email")
    assert stack.status(minted["id"]) == "accepted"

    # Another browser (a forwarded email, a second device): the link is spent.
    other = browser.new_context()
    second = other.new_page()
    second.goto(minted["url"])
    second.get_by_text("This sign-in link was already used").wait_for()
    assert second.locator("#error-code").inner_text() == "sign_in_token_already_used_code"
    assert "Ask for a new sign-in link." in second.content()
    assert not [c for c in other.cookies() if c["name"] == "__session"]
    other.close()

    # The same browser clicking again (a reload, an in-app browser) is signed in again.
    again = context.new_page()
    again.goto(minted["url"])
    again.wait_for_url(f"{landing.origin}/welcome?from=email")
    # The same session, with a fresh short-lived token (sessions: __session is refreshed on a retry).
    assert sid_of(session_cookie(context)["value"]) == sid_of(cookie["value"])
    context.close()


def test_without_javascript_the_button_signs_in(stack: LocalStackHandle, landing: Site, browser: Any) -> None:
    minted = stack.mint("user_browser", redirect_url=f"{landing.origin}/no-js")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(minted["url"])
    page.get_by_text("Select \u201cSign in\u201d to continue.").wait_for()
    assert stack.status(minted["id"]) == "pending"  # nothing happens until the click
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{landing.origin}/no-js")
    assert session_cookie(context)["value"]
    assert stack.status(minted["id"]) == "accepted"
    context.close()


def test_token_in_the_fragment_is_submitted_by_the_script(stack: LocalStackHandle, landing: Site, browser: Any) -> None:
    minted = stack.mint("user_browser", redirect_url=f"{landing.origin}/fragment")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.base_url}/accept-token#token={minted['token']}")
    page.wait_for_url(f"{landing.origin}/fragment")
    assert session_cookie(context)["value"]
    assert stack.status(minted["id"]) == "accepted"
    context.close()


def test_no_token_and_a_broken_link_show_their_pages(stack: LocalStackHandle, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.base_url}/accept-token")
    assert page.locator("#status").inner_text() == "No token provided."
    assert not page.get_by_role("button", name="Sign in").is_visible()
    minted = stack.mint("user_browser")
    page.goto(minted["url"][:-4])
    assert page.locator("h1").inner_text() == "This sign-in link is not valid"
    assert page.locator("#error-code").inner_text() == "ticket_invalid_code"
    context.close()


def test_without_a_redirect_the_page_says_who_is_signed_in(stack: LocalStackHandle, browser: Any) -> None:
    minted = stack.mint("<b>ada</b>")
    context = browser.new_context()
    page = context.new_page()
    page.goto(minted["url"])
    page.get_by_text("Signed in as <b>ada</b>").wait_for()  # shown as text, not markup
    assert page.url == f"{stack.base_url}/accept-token"
    context.close()


def test_auto_submit_off_waits_for_the_click(landing: Site, browser: Any, tmp_path: Path) -> None:
    env = {"LOCAL_PARAMETER_AcceptAutoSubmit": "false", "LOCAL_PARAMETER_AllowedRedirectOrigins": landing.origin}
    with running_stack(tmp_path / "stack", env=env) as stack:
        minted = stack.mint("user_browser", redirect_url=f"{landing.origin}/clicked")
        context = browser.new_context()
        page = context.new_page()
        watch_submissions(page)
        page.goto(minted["url"])
        page.get_by_role("button", name="Sign in").wait_for()
        assert submissions_by_itself(page) == 0
        assert page.url == minted["url"]
        assert stack.status(minted["id"]) == "pending"
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{landing.origin}/clicked")
        assert stack.status(minted["id"]) == "accepted"
        context.close()
