"""``AcceptConfirmation`` and CSRF tokens in a real headless Chromium.

A cross-site arrival is made as an attacker (or a webmail) makes it: a page on another site
(``http://localhost:<port>``; the stacks are on ``127.0.0.1``) navigates the browser to the link.
``page.goto`` alone is a typed URL (``Sec-Fetch-Site: none``).

A browser without Fetch Metadata (Safari before 16.4) is Chromium with its ``Sec-Fetch-*`` request
headers removed on the way out (``context.route``): its POSTs then carry only ``Origin``, as such a
browser's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.sites import ATTACK_FORM, Site
from tests.e2e.submissions import submissions_by_itself, watch_submissions

pytestmark = pytest.mark.browser

NAVIGATE = """<!doctype html><title>Your mail</title>
<script>window.location.assign({url!r});</script>"""


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Site]:
    """Another site (localhost, not 127.0.0.1): a webmail, or an attacker's page."""
    site = Site(host="localhost")
    yield site
    site.close()


@pytest.fixture(scope="module")
def cross_site_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    env = {"LOCAL_PARAMETER_AcceptConfirmation": "cross-site", "LOCAL_PARAMETER_EmailSender": ""}
    with running_stack(tmp_path_factory.mktemp("confirm-cross-site"), env=env) as handle:
        yield handle


@pytest.fixture(scope="module")
def always_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    env = {"LOCAL_PARAMETER_AcceptConfirmation": "always", "LOCAL_PARAMETER_EmailSender": ""}
    with running_stack(tmp_path_factory.mktemp("confirm-always"), env=env) as handle:
        yield handle


def arrive_from_elsewhere(context: Any, elsewhere: Site, url: str, *, watch: bool = False) -> Any:
    """Open ``url`` the way a webmail's link (or an attacker's page) does: another site navigates.
    ``watch``: count the page's form submissions (``tests/e2e/submissions.py``; once per context)."""
    elsewhere.pages["/mail"] = lambda query: NAVIGATE.format(url=url)
    page = context.new_page()
    if watch:
        watch_submissions(page)
    page.goto(f"{elsewhere.origin}/mail")
    page.wait_for_url(url.split("?", 1)[0].split("#", 1)[0] + "*")
    page.wait_for_load_state("load")
    return page


def waits_for_the_click(page: Any, stack: LocalStackHandle, minted: dict[str, Any], user_id: str) -> None:
    page.locator("form#accept #sign-in").wait_for()
    assert page.locator("form#confirm").count() == 0  # the confirmation page, not the 409 "Switch accounts?"
    assert page.locator("#link-user").inner_text() == user_id
    assert submissions_by_itself(page) == 0
    assert stack.status(minted["id"]) == "pending"
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text(f"Signed in as {user_id}").wait_for()
    assert stack.status(minted["id"]) == "accepted"


def test_never_signs_a_cross_site_arrival_in_at_once(
    local_stack: LocalStackHandle, elsewhere: Site, browser: Any
) -> None:
    """The default (``never``): today's one-click behaviour, for a webmail click too."""
    context = browser.new_context()
    minted = local_stack.mint("user_one_click")
    page = arrive_from_elsewhere(context, elsewhere, minted["url"])
    page.get_by_text("Signed in as user_one_click").wait_for()
    assert local_stack.status(minted["id"]) == "accepted"
    context.close()


def test_cross_site_waits_for_a_click_from_another_site_only(
    cross_site_stack: LocalStackHandle, elsewhere: Site, browser: Any
) -> None:
    context = browser.new_context()
    minted = cross_site_stack.mint("user_webmail")
    page = arrive_from_elsewhere(context, elsewhere, minted["url"], watch=True)
    waits_for_the_click(page, cross_site_stack, minted, "user_webmail")

    # A #token= link from another site waits too; the page's script names the link's user.
    fragment = cross_site_stack.mint("user_fragment")
    url = fragment["url"].replace("accept-token?token=", "accept-token#token=")
    other = browser.new_context()
    page = arrive_from_elsewhere(other, elsewhere, url, watch=True)
    waits_for_the_click(page, cross_site_stack, fragment, "user_fragment")
    other.close()

    # Typed or opened by a desktop mail app (Sec-Fetch-Site: none): one click, as before.
    typed = cross_site_stack.mint("user_typed")
    fresh = browser.new_context()
    page = fresh.new_page()
    page.goto(typed["url"])
    page.get_by_text("Signed in as user_typed").wait_for()
    assert cross_site_stack.status(typed["id"]) == "accepted"

    # A browser that holds a session here is not asked for its own user's link.
    again = cross_site_stack.mint("user_webmail")
    page = arrive_from_elsewhere(context, elsewhere, again["url"])
    page.get_by_text("Signed in as user_webmail").wait_for()
    assert cross_site_stack.status(again["id"]) == "accepted"
    context.close()
    fresh.close()


def test_always_waits_even_for_a_typed_link(always_stack: LocalStackHandle, browser: Any) -> None:
    context = browser.new_context()
    minted = always_stack.mint("user_always")
    page = context.new_page()
    watch_submissions(page)
    page.goto(minted["url"])
    waits_for_the_click(page, always_stack, minted, "user_always")
    context.close()


def without_fetch_metadata(context: Any) -> None:
    """Every request of ``context`` leaves without ``Sec-Fetch-*``: a browser that does not send them."""

    def strip(route: Any, request: Any) -> None:
        headers = {name: value for name, value in request.all_headers().items() if not name.startswith("sec-fetch-")}
        route.continue_(headers=headers)

    context.route("**/*", strip)


def test_an_old_browser_signs_in_through_the_page_and_a_cross_site_form_is_refused(
    local_stack: LocalStackHandle, elsewhere: Site, browser: Any
) -> None:
    context = browser.new_context()
    without_fetch_metadata(context)
    attacker = local_stack.mint("user_attacker_old_browser")
    elsewhere.pages["/prize"] = lambda query: ATTACK_FORM.format(stack=local_stack.base_url, token=attacker["token"])
    page = context.new_page()
    page.goto(f"{elsewhere.origin}/prize")
    page.locator("#error-code").wait_for()
    assert page.locator("#error-code").inner_text() == "origin_invalid"
    assert local_stack.status(attacker["id"]) == "pending"
    assert not [cookie for cookie in context.cookies(local_stack.base_url) if cookie["name"] == "__session"]

    # The service's own page posts with Origin: null and its CSRF token: it signs in.
    minted = local_stack.mint("user_old_safari")
    page.goto(minted["url"])
    page.get_by_text("Signed in as user_old_safari").wait_for()
    assert local_stack.status(minted["id"]) == "accepted"
    names = {cookie["name"] for cookie in context.cookies(local_stack.base_url)}
    assert "__Host-csrf" in names
    context.close()
