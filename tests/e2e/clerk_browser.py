"""Helpers of the clerk-js browser tests: the pinned clerk-js builds, an app page that loads one, the
calls the tests make in the page, and the checks they make from outside (JWKS, Backend API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from tests.e2e.conftest import LocalStackHandle
from tests.e2e.npm import npm_ci

JS_DIR = Path(__file__).parent / "clerk_js"
MAJORS = {"core3": "clerk-js-core3", "core2": "clerk-js-core2"}  # npm aliases in clerk_js/package.json


def clerk_js_dist(major: str) -> Path:
    """``dist/`` of the pinned clerk-js major, installed from package-lock.json (``npm ci``) if needed."""
    dist = JS_DIR / "node_modules" / MAJORS[major] / "dist"
    npm_ci(JS_DIR, dist / "clerk.browser.js", why="clerk-js")
    return dist


def page_html(key: str, proxy_url: str | None) -> str:
    """An app's page that loads clerk-js as ``ClerkProvider`` does (with ``proxyUrl`` when given)."""
    proxy = f' data-clerk-proxy-url="{proxy_url}"' if proxy_url else ""
    return (
        "<!doctype html><html><head><title>clerk-js</title></head><body>"
        f'<script src="/app/clerk/clerk.browser.js" data-clerk-publishable-key="{key}"{proxy} '
        'crossorigin="anonymous"></script></body></html>'
    )


def open_app(context: Any, app_origin: str, dist: Path, key: str, proxy_url: str) -> Any:
    """A page of an app at ``app_origin`` that loads clerk-js from ``dist`` (served by the test)."""
    html = page_html(key, proxy_url)

    def serve(route: Any) -> None:
        path = route.request.url.split("/app/", 1)[1].split("?", 1)[0]
        if path == "index.html":
            route.fulfill(status=200, content_type="text/html", body=html)
            return
        file = (dist / path.removeprefix("clerk/")).resolve()
        if path.startswith("clerk/") and dist.resolve() in file.parents and file.is_file():
            route.fulfill(status=200, content_type="text/javascript", body=file.read_bytes())
        else:
            route.fulfill(status=404, body="")

    context.route(f"{app_origin}/app/**", serve)
    page = context.new_page()
    load(page, app_origin)
    return page


def load(page: Any, app_origin: str) -> None:
    page.goto(f"{app_origin}/app/index.html")
    page.wait_for_function("window.Clerk !== undefined", timeout=30_000)
    page.evaluate("async () => { await window.Clerk.load(); }")


SIGN_IN = """async (ticket) => {
  try {
    const signIn = await window.Clerk.client.signIn.create({strategy: 'ticket', ticket});
    if (signIn.status !== 'complete') return {status: signIn.status};
    await window.Clerk.setActive({session: signIn.createdSessionId});
    return {status: signIn.status, sessionId: signIn.createdSessionId, userId: window.Clerk.user.id,
            token: await window.Clerk.session.getToken()};
  } catch (error) {
    return {error: {clerkError: error.clerkError === true, status: error.status,
                    code: error.errors && error.errors[0] && error.errors[0].code,
                    longMessage: error.errors && error.errors[0] && error.errors[0].longMessage}};
  }
}"""


def verify_with_jwks(base_url: str, token: str) -> dict[str, Any]:
    jwks = jwt.PyJWKClient(f"{base_url}/v1/jwks")
    claims: dict[str, Any] = jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"])
    return claims


def backend_session(stack: LocalStackHandle, session_id: str) -> dict[str, Any]:
    with stack.client() as api:
        response = api.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def sign_out(page: Any, app_origin: str) -> None:
    """``Clerk.signOut()`` to the app's page, and that page, loaded: what the user sees once signed out.

    clerk-js clears ``Clerk.user`` when signOut() starts (Core 3 before its request to the Frontend
    API even leaves), then ends the session, then navigates to the redirect URL: only that navigation
    says sign-out is over. Waiting for it (not for ``Clerk.user``) means the server has answered, and
    no navigation of clerk-js's is still pending to interrupt the test's next ``goto``.
    """
    after = f"{app_origin}/app/index.html?signed_out"
    with page.expect_navigation(url=lambda url: url.startswith(after), timeout=30_000):
        # Not awaited: the navigation ends the page's script, so the promise never settles.
        page.evaluate("(redirectUrl) => { window.Clerk.signOut({redirectUrl}); }", after)
    page.wait_for_function("window.Clerk !== undefined", timeout=30_000)
    page.evaluate("async () => { await window.Clerk.load(); }")
