"""Clerk's browser SDK with the service on the app's subdomain, and the accept page in the same browser.

The app on ``https://app.example.test``, the service on ``https://clerk.example.test`` (one site, two
origins), behind ``tests/e2e/tls_front.py``: clerk-js finds the Frontend API from the publishable key
alone (no ``proxyUrl``), calls it with credentialed CORS, and the service's cookies stay host-only on
its own host. A module of its own: its Chromium needs flags (host mapping, the front's certificate)
that the shared ``browser`` fixture does not take, and playwright runs one instance at a time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signin_links.cookies import REFRESH_HOST_ONLY as REFRESH_COOKIE_NAME
from signin_links.cookies import SESSION as COOKIE_NAME
from signin_links.frontend_wire import publishable_key
from signin_links.http import CLIENT_COOKIE_NAME
from tests.e2e.clerk_browser import (
    SIGN_IN,
    backend_session,
    clerk_js_dist,
    load,
    page_html,
    sign_out,
    verify_with_jwks,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, LocalStackHandle, running_stack
from tests.e2e.tls_front import APP_HOST, SERVICE_HOST, Front, start_front
from tests.e2e.tls_front import CHROMIUM_ARGS as FRONT_ARGS

# The first test may also run npm ci for clerk_js (~60 s from nothing) and start a stack.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def subdomain() -> Iterator[tuple[LocalStackHandle, Front, Any]]:
    """The service on ``clerk.example.test`` (an HTTPS front for a stack of its own) and an app on
    ``app.example.test`` (same site, another origin, on ``AllowedRedirectOrigins``), and a Chromium
    that resolves both to the front and accepts its self-signed certificate."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make chromium)")
    dist = clerk_js_dist("core3")
    front = start_front(dist)
    env = {"LOCAL_PARAMETER_EmailSender": "", "LOCAL_PARAMETER_AllowedRedirectOrigins": front.app_origin}
    from playwright.sync_api import sync_playwright

    try:
        with tempfile.TemporaryDirectory() as workdir, running_stack(Path(workdir), env=env) as stack:
            front.server.upstream = ("127.0.0.1", int(stack.base_url.rsplit(":", 1)[1]))
            # No proxyUrl: clerk-js finds the Frontend API from the publishable key alone, over https.
            front.server.app_html = page_html(publishable_key(f"{SERVICE_HOST}:{front.port}"), None)
            with sync_playwright() as playwright:
                instance = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *FRONT_ARGS], headless=True
                )
                try:
                    yield stack, front, instance
                finally:
                    instance.close()
    finally:
        front.close()


def test_clerk_js_on_the_apps_subdomain_and_the_accept_page_in_one_browser(
    subdomain: tuple[LocalStackHandle, Front, Any],
) -> None:
    """The service on the app's subdomain, found from the publishable key: clerk-js signs in with
    credentialed CORS; the accept page signs another link in on the service's host in the same
    browser; each flow keeps its cookies on its own host, and ending one session leaves the other."""
    stack, front, chromium = subdomain
    service, app = front.service_origin, front.app_origin
    context = chromium.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        load(page, app)
        minted = stack.mint("user_subdomain")
        result = page.evaluate(SIGN_IN, minted["token"])
        assert result.get("status") == "complete", result
        assert page.evaluate("() => window.Clerk.user.id") == "user_subdomain"

        # The accept page, in the same browser, on the service's host (a link of another user).
        link = stack.mint("user_accept_page")["url"].replace(stack.base_url, service)
        accept_page = context.new_page()
        accept_page.goto(link)
        accept_page.wait_for_selector("text=Signed in", timeout=30_000)

        by_host: dict[str, set[str]] = {}
        for cookie in context.cookies():
            by_host.setdefault(cookie["domain"], set()).add(cookie["name"])
        # The service's host: the client (Frontend API) and the accept page's two cookies.
        assert {CLIENT_COOKIE_NAME, COOKIE_NAME, REFRESH_COOKIE_NAME} <= by_host[SERVICE_HOST], by_host
        # The app's host: what clerk-js writes itself (its __session), never the service's credentials.
        app_cookies = {c["name"]: c for c in context.cookies() if c["domain"] in (APP_HOST, f".{APP_HOST}")}
        assert "__session" in app_cookies, by_host
        assert not {REFRESH_COOKIE_NAME, CLIENT_COOKIE_NAME} & set(app_cookies)
        assert verify_with_jwks(stack.base_url, app_cookies["__session"]["value"])["sub"] == "user_subdomain"

        # A reload of the app restores its session from the client cookie on the service's host.
        load(page, app)
        assert page.evaluate("() => window.Clerk.user && window.Clerk.user.id") == "user_subdomain"

        # Signing out of clerk-js ends its session only; the accept page's session still refreshes.
        sign_out(page, app)
        assert page.evaluate("() => window.Clerk.loaded && window.Clerk.user") is None
        assert backend_session(stack, result["sessionId"])["status"] == "ended"
        refresh = next(c["value"] for c in context.cookies() if c["name"] == REFRESH_COOKIE_NAME)
        assert backend_session(stack, refresh.split(".", 1)[0])["status"] == "active"
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            assert http.post("/session/refresh", cookies={REFRESH_COOKIE_NAME: refresh}).status_code == 200
    finally:
        context.close()
