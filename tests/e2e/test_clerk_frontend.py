"""Clerk's browser SDK (clerk-js), unchanged, against the local stack's Frontend API in Chromium.

Both supported majors (``tests/e2e/clerk_js/package.json`` pins them through npm aliases: Core 3 is
clerk-js 6, Core 2 is clerk-js 5), loaded from ``node_modules`` as ``NEXT_PUBLIC_CLERK_JS_URL`` would
serve them: load, ``signIn.create({strategy: 'ticket'})``, ``setActive``, ``user.id``, ``getToken()``
verified against ``/v1/jwks``, a reload restores the session, ``signOut()`` ends the server-side
session (the Backend API says so), and a used ticket raises Clerk's ``ClerkAPIResponseError``.

This module covers Clerk's proxy setup: the page is on the service's own origin and ``proxyUrl``
points at it (what an app that forwards ``/__clerk/*`` looks like to the browser: same origin).
``test_clerk_frontend_subdomain.py`` covers the other way (the service on the app's subdomain).

Skipped, and said so, where npm is absent (``tests/e2e/clerk_js`` is installed with ``npm ci``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from signin_links.frontend_wire import publishable_key
from signin_links.http import CLIENT_COOKIE_NAME
from tests.e2e.clerk_browser import (
    MAJORS,
    SIGN_IN,
    backend_session,
    clerk_js_dist,
    load,
    open_app,
    sign_out,
    verify_with_jwks,
)
from tests.e2e.conftest import LocalStackHandle

# The first test may also run npm ci for clerk_js (~60 s from nothing) and start a stack.
pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("major", list(MAJORS))
def test_clerk_js_signs_in_by_ticket_through_the_proxy(local_stack: LocalStackHandle, browser: Any, major: str) -> None:
    dist = clerk_js_dist(major)
    base = local_stack.base_url
    host = base.split("://", 1)[1]
    context = browser.new_context()
    try:
        page = open_app(context, base, dist, publishable_key(host), base)
        assert page.evaluate("() => window.Clerk.loaded && window.Clerk.user === null")

        minted = local_stack.mint(f"user_clerk_js_{major}")
        result = page.evaluate(SIGN_IN, minted["token"])
        assert result.get("status") == "complete", result
        assert result["userId"] == f"user_clerk_js_{major}"
        claims = verify_with_jwks(base, result["token"])
        assert (claims["sub"], claims["sid"]) == (f"user_clerk_js_{major}", result["sessionId"])
        assert local_stack.status(minted["id"]) == "accepted"
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies[CLIENT_COOKIE_NAME]["httpOnly"] is True
        assert cookies[CLIENT_COOKIE_NAME]["secure"] is True
        assert cookies["__session"]["httpOnly"] is False  # written by clerk-js itself

        load(page, base)  # a reload restores the session from the client
        assert page.evaluate("() => window.Clerk.user && window.Clerk.user.id") == f"user_clerk_js_{major}"
        assert backend_session(local_stack, result["sessionId"])["status"] == "active"

        sign_out(page, base)  # returns on the after-sign-out page, loaded afresh: nobody signed in
        assert page.evaluate("() => window.Clerk.loaded && window.Clerk.user") is None
        assert backend_session(local_stack, result["sessionId"])["status"] == "ended"

        used = page.evaluate(SIGN_IN, minted["token"])
        assert used["error"] == {
            "clerkError": True,
            "status": 400,
            "code": "sign_in_token_already_used_code",
            "longMessage": "The sign-in link has already been used to sign in.",
        }
    finally:
        context.close()


SIGN_IN_AND_GO = """async ([ticket, redirectUrl]) => {
  const signIn = await window.Clerk.client.signIn.create({strategy: 'ticket', ticket});
  window.Clerk.setActive({session: signIn.createdSessionId, redirectUrl});  // navigates: not awaited
}"""


def test_set_active_with_a_redirect_url_goes_through_the_client_touch(
    local_stack: LocalStackHandle, browser: Any
) -> None:
    """clerk-js 6's ``setActive({session, redirectUrl})``: the client's cookie expires within 8 days
    (the session's lifetime, 7 days by default), so it goes to ``GET /v1/client/touch`` first (Clerk's
    Safari ITP workaround), which sets the client cookie again and sends the browser on to the app's
    page. (clerk-js 5.128 goes straight to the redirect URL in this flow.)"""
    major = "core3"
    base = local_stack.base_url
    context = browser.new_context()
    try:
        page = open_app(context, base, clerk_js_dist(major), publishable_key(base.split("://", 1)[1]), base)
        after = f"{base}/app/index.html?signed_in"
        with page.expect_response(lambda r: "/v1/client/touch?" in r.url, timeout=30_000) as touched:
            page.evaluate(SIGN_IN_AND_GO, [local_stack.mint(f"user_touch_{major}")["token"], after])
        assert (touched.value.status, touched.value.headers["location"]) == (307, after)
        assert (touched.value.header_value("set-cookie") or "").startswith(f"{CLIENT_COOKIE_NAME}=sess_")
        # The browser follows to `after` (the test's stand-in app page is not served on a redirect:
        # playwright routes no redirected request), then the app's page shows the user signed in.
        page.wait_for_url(lambda url: url.startswith(after), wait_until="commit", timeout=30_000)
        load(page, base)
        assert page.evaluate("() => window.Clerk.user && window.Clerk.user.id") == f"user_touch_{major}"
    finally:
        context.close()


def test_a_foreign_origin_gets_no_client(local_stack: LocalStackHandle) -> None:
    """Credentialed CORS from an origin not on the allow-list: no CORS headers, and sign-in refused."""
    minted = local_stack.mint("user_foreign")
    with httpx.Client(base_url=local_stack.base_url, timeout=30) as http:
        refused = http.post(
            "/v1/client/sign_ins",
            data={"strategy": "ticket", "ticket": minted["token"]},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
        )
        environment = http.get("/v1/environment", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert json.loads(refused.text)["errors"][0]["code"] == "origin_invalid"
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in environment.headers
    assert local_stack.status(minted["id"]) == "pending"
