"""Sessions in a real headless Chromium.

An application origin (``http://127.0.0.1:<port>``, ``tests/e2e/session_app.py``) hosts the seed's own accept page
ported to ``session.js``: ``signIn.create({strategy: "ticket", ticket})`` then ``setActive``. Ports
do not change the site, so that origin is *same-site* with the stack (``http://127.0.0.1:<other
port>``): SameSite=Lax cookies flow with a credentialed ``fetch``, and the stack allows the origin
through ``LOCAL_PARAMETER_AllowedRedirectOrigins``. Session tokens live 12 s on this stack
(``LOCAL_PARAMETER_SessionTokenLifetimeSeconds``), so ``session.js`` refreshes them every ~10.5 s.

An attacker's origins: ``http://localhost:<port>`` (another site: cross-site) and another port of
127.0.0.1 that is not allowed (same-site, not allowed).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e import session_app
from tests.e2e.conftest import LocalStackHandle
from tests.e2e.session_app import TOKEN_LIFETIME_S, sign_in_on_the_apps_page
from tests.e2e.sites import ATTACK_FORM, Site

pytestmark = pytest.mark.browser

# This module's application origin and its stack (12 s tokens): module-scoped fixtures.
app_site = session_app.app_site
stack = session_app.stack

# The attacker's credentialed fetch (beside the auto-submitting form).
ATTACK_FETCH = """<!doctype html><title>Win a prize</title><p id="result">working</p>
<script>
fetch("{stack}/accept-token", {{method: "POST", credentials: "include",
  headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{token: "{token}"}})}})
  .then((r) => {{ document.getElementById("result").textContent = "status:" + r.status; }})
  .catch(() => {{ document.getElementById("result").textContent = "blocked"; }});
</script>"""


def cookies(context: Any, stack: LocalStackHandle) -> dict[str, str]:
    """The stack's session cookies in the browser (not the forms' ``__Host-csrf`` nonce)."""
    return {
        cookie["name"]: cookie["value"] for cookie in context.cookies(stack.base_url) if cookie["name"] != "__Host-csrf"
    }


def test_the_seeds_page_signs_in_session_js_refreshes_and_a_revoke_signs_the_page_out(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    session_id = sign_in_on_the_apps_page(context, stack, app_site, "user_chromium")
    jar = cookies(context, stack)
    assert set(jar) >= {"__session", "__Host-refresh"}
    assert jar["__Host-refresh"].startswith(session_id + ".0.")  # generation 0 (refresh_tokens.py)
    first = jwt.decode(jar["__session"], options={"verify_signature": False})
    assert first["sid"] == session_id
    assert first["exp"] - first["iat"] == TOKEN_LIFETIME_S

    app = context.new_page()
    app.goto(f"{app_site.origin}/app")
    app.get_by_text(f"session:{session_id}").wait_for()
    # Past the first token's expiry, session.js has refreshed it by itself: a newer token, same session.
    app.wait_for_timeout((TOKEN_LIFETIME_S + 2) * 1000)
    later = jwt.decode(cookies(context, stack)["__session"], options={"verify_signature": False})
    assert later["sid"] == session_id
    # Each refresh rotated the refresh cookie, and Chromium kept the new one.
    generation = int(cookies(context, stack)["__Host-refresh"].split(".")[1])
    assert generation >= 1
    item = stack.item(session_id)
    assert item is not None
    assert generation <= int(item["refresh_generation"]["N"]) <= generation + 1  # a refresh may run in between
    assert later["iat"] > first["iat"]
    assert later["exp"] > time.time()
    token = app.evaluate("SigninLinks.session.getToken()")
    assert jwt.decode(token, options={"verify_signature": False})["sid"] == session_id

    with stack.client() as api:
        assert api.post(f"/v1/sessions/{session_id}/revoke").json()["status"] == "revoked"
    # The next refresh (within ~11 s) fails: the page learns it is signed out, the cookies are gone.
    app.get_by_text("signed-out").wait_for(timeout=15_000)
    assert "__Host-refresh" not in cookies(context, stack)
    assert "__session" not in cookies(context, stack)
    assert app.evaluate("SigninLinks.session") is None
    context.close()


def test_sign_out_with_the_button_and_on_the_sign_out_page(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    session_id = sign_in_on_the_apps_page(context, stack, app_site, "user_sign_out")
    app = context.new_page()
    app.goto(f"{app_site.origin}/app")
    app.get_by_text(f"session:{session_id}").wait_for()
    app.get_by_role("button", name="Sign out").click()
    app.get_by_text("signed-out").wait_for()
    assert not cookies(context, stack)
    item = stack.item(session_id)
    assert item is not None
    assert item["status"]["S"] == "ended"

    # The service's own page: a GET shows a button (never signs out), the button does.
    again = sign_in_on_the_apps_page(context, stack, app_site, "user_sign_out")
    page = context.new_page()
    page.goto(f"{stack.base_url}/sign-out")
    assert stack.item(again)["status"]["S"] == "active"  # type: ignore[index]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Signed out.").wait_for()
    assert not cookies(context, stack)
    assert stack.item(again)["status"]["S"] == "ended"  # type: ignore[index]
    context.close()


def test_an_attackers_pages_leave_the_visitors_session_intact(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    visitor_session = sign_in_on_the_apps_page(context, stack, app_site, "user_visitor")
    before = cookies(context, stack)
    attacker_token = stack.mint("user_attacker")
    cross_site = Site(host="localhost")  # another site altogether
    not_allowed = Site()  # same site, an origin not on the allow-list
    try:
        for site in (cross_site, not_allowed):
            site.pages["/form"] = lambda query: ATTACK_FORM.format(stack=stack.base_url, token=attacker_token["token"])
            site.pages["/fetch"] = lambda query: ATTACK_FETCH.format(
                stack=stack.base_url, token=attacker_token["token"]
            )
            page = context.new_page()
            page.goto(f"{site.origin}/form")
            page.wait_for_load_state("load")
            page.locator("#error-code").wait_for()
            assert page.locator("#error-code").inner_text() == "origin_invalid"
            page.goto(f"{site.origin}/fetch")
            page.wait_for_function("document.getElementById('result').textContent !== 'working'")
            assert page.locator("#result").inner_text() in ("blocked", "status:403")
            page.close()
            assert stack.status(attacker_token["id"]) == "pending"
            assert cookies(context, stack) == before
    finally:
        cross_site.close()
        not_allowed.close()

    # A webmail click on the attacker's link (top-level GET, then the page's own POST) asks first.
    page = context.new_page()
    page.goto(attacker_token["url"])
    page.get_by_text("Switch accounts?").wait_for()
    assert page.locator("#signed-in-user").inner_text() == "user_visitor"
    assert page.locator("#link-user").inner_text() == "user_attacker"
    assert stack.status(attacker_token["id"]) == "pending"
    assert cookies(context, stack) == before
    page.get_by_role("button", name="Sign in as user_attacker").click()
    page.get_by_text("Signed in as user_attacker").wait_for()
    assert stack.status(attacker_token["id"]) == "accepted"
    assert (
        jwt.decode(cookies(context, stack)["__session"], options={"verify_signature": False})["sub"] == "user_attacker"
    )
    assert visitor_session
    context.close()


def test_the_session_script_is_served_from_the_stack(stack: LocalStackHandle) -> None:
    answer = httpx.get(f"{stack.base_url}/session.js")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/javascript")
    assert (
        Path(__file__).resolve().parents[2].joinpath("functions/accept_token/templates/session.js").read_text()
        == answer.text
    )
