"""A tour of every page state of a running local stack in Chromium: ``make screenshots`` writes a
picture of each for docs/customising.md, and tests/e2e/test_browser_pages.py runs axe-core on each.

It drives the stack as a person does (mints a link with the stack's secret key, opens it, clicks)
and stops at each state a person can see:

    no-token, accept, signing-in, signed-in, confirm-switch, sign-out, signed-out, already-used,
    revoked, invalid

``signing-in`` is the accept page once its form is submitted (the tour answers that POST itself with
204 No Content, so the page stays as it was while signing in, then submits it to the stack).
The stack must run with ``LOCAL_PARAMETER_AcceptAutoSubmit=false`` (so that the form stays on
screen) and Debian's Chromium must be installed (``make chromium``)::

    LOCAL_PARAMETER_AcceptAutoSubmit=false LOCAL_PARAMETER_AppName=Acme \\
      LOCAL_PARAMETER_BrandColor='#6d28d9' make local
    make screenshots   # in another terminal: docs/images/pages/<language>-<state>.png
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from local.emulator import aws_client
from local.state_file import running_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
STATES = (
    "no-token",
    "accept",
    "signing-in",
    "signed-in",
    "confirm-switch",
    "sign-out",
    "signed-out",
    "already-used",
    "renewal-sent",
    "renewal-already-sent",
    "revoked",
    "invalid",
)
RENEWAL_STATES = ("renewal-sent", "renewal-already-sent")  # with delivery by email only
WIDTH, HEIGHT = 480, 640
OUT = Path("docs/images/pages")
# A stand-in logo, served by the tour for LogoUrl (the stack's pages load it from that URL).
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32" viewBox="0 0 120 32">'
    '<rect width="32" height="32" rx="8" fill="#6d28d9"/><text x="40" y="23" font-family="sans-serif" '
    'font-size="20" font-weight="700" fill="#1f2328">Acme</text></svg>'
)

Visit = Callable[[str, Any], None]  # (state, page showing it)


@dataclass
class Tour:
    """The states of the stack at ``base_url``, walked in one browser context per language."""

    base_url: str
    secret_key: str
    logo_url: str = ""
    emails: Any = None  # an EventBridge client on the stack's moto when delivery by email is on
    bus: str = ""
    batch_source: str = ""

    @classmethod
    def of(cls, state: dict[str, Any]) -> Tour:
        """The tour of the stack a state file (or ``LocalStackHandle.state``) describes."""
        accept = state["functions"]["AcceptTokenFunction"]["environment"]
        mint = state["functions"]["MintLinkFunction"]["environment"]
        tour = cls(str(state["url"]), str(state["secret_key"]), logo_url=accept.get("LOGO_URL", ""))
        if accept.get("LINK_RENEWAL") == "email":
            tour.emails = aws_client("events", state["moto_endpoint"], state["region"])
            tour.bus, tour.batch_source = mint["EVENT_BUS_NAME"], mint["BATCH_EVENT_SOURCE"]
        return tour

    def mint(self, user_id: str, **fields: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.secret_key}"}
        answer = httpx.post(
            f"{self.base_url}/v1/sign_in_tokens", json={"user_id": user_id, **fields}, headers=headers, timeout=30
        )
        answer.raise_for_status()
        minted: dict[str, Any] = answer.json()
        return minted

    def revoke(self, token_id: str) -> None:
        headers = {"Authorization": f"Bearer {self.secret_key}"}
        httpx.post(
            f"{self.base_url}/v1/sign_in_tokens/{token_id}/revoke", headers=headers, timeout=30
        ).raise_for_status()

    def context(self, browser: Any, language: str, **options: Any) -> Any:
        """A browser context whose Accept-Language asks for ``language``."""
        context = browser.new_context(**{"locale": language, "viewport": {"width": WIDTH, "height": HEIGHT}, **options})
        if self.logo_url:
            context.route(self.logo_url, lambda route: route.fulfill(content_type="image/svg+xml", body=LOGO_SVG))
        return context

    def walk(self, context: Any, visit: Visit) -> None:
        """Bring ``context`` to every state of :data:`STATES` in turn, calling ``visit`` at each."""
        page = context.new_page()
        page.goto(f"{self.base_url}/accept-token")
        visit("no-token", page)

        minted = self.mint("user_ada")
        page.goto(minted["url"])
        form = page.locator("#accept")
        form.wait_for()
        if form.get_attribute("data-auto-submit") != "false":
            raise SystemExit("the tour needs the stack started with LOCAL_PARAMETER_AcceptAutoSubmit=false")
        visit("accept", page)

        # The POST answered 204 by the tour: the browser stays on the page as it was while signing in.
        page.route(f"{self.base_url}/accept-token", lambda route: route.fulfill(status=204))
        page.locator("#sign-in").click()
        page.wait_for_function("document.getElementById('sign-in').disabled")
        visit("signing-in", page)
        page.unroute(f"{self.base_url}/accept-token")
        with page.expect_navigation():
            page.evaluate("document.getElementById('accept').submit()")  # the same form, now to the stack
        page.locator("#user-id").wait_for()
        visit("signed-in", page)

        other = self.mint("user_grace")  # this browser holds user_ada's session: the link asks first
        page.goto(other["url"])
        with page.expect_navigation():
            page.locator("#sign-in").click()
        page.locator("#switch-user").wait_for()
        visit("confirm-switch", page)

        page.goto(f"{self.base_url}/sign-out")
        visit("sign-out", page)
        with page.expect_navigation():
            page.locator("#sign-out").click()
        visit("signed-out", page)
        self._dead_links(page, minted["url"], visit)
        page.close()

    def _dead_links(self, page: Any, used_url: str, visit: Visit) -> None:
        """Signed out, this browser is no longer the one that used the link: it is dead here. An
        emailed link (delivery by email on) offers "Email me a new link" on its dead page."""
        if self.emails:
            dead = self.emailed_link("user_ada")
            self._sign_in_and_out(page, dead)
            self._click_dead_link(page, dead)
        else:
            self._click_dead_link(page, used_url)
        visit("already-used", page)
        if self.emails:
            with page.expect_navigation():
                page.locator("#renew-link").click()
            visit("renewal-sent", page)
            self._click_dead_link(page, dead)
            with page.expect_navigation():
                page.locator("#renew-link").click()
            visit("renewal-already-sent", page)
        revoked = self.mint("user_ada")
        self.revoke(revoked["id"])
        self._click_dead_link(page, revoked["url"])
        visit("revoked", page)
        page.goto(f"{self.base_url}/accept-token?token=not.a.token")
        visit("invalid", page)

    def _sign_in_and_out(self, page: Any, url: str) -> None:
        page.goto(url)
        with page.expect_navigation():
            page.locator("#sign-in").click()
        page.locator("#user-id").wait_for()
        page.goto(f"{self.base_url}/sign-out")
        with page.expect_navigation():
            page.locator("#sign-out").click()

    def emailed_link(self, user_id: str) -> str:
        """The link of a one-user batch put on the stack's bus, once its email is in the outbox."""
        address = f"tour.{uuid.uuid4().hex[:8]}@example.com"
        batch = {
            "batch_id": f"tour-{uuid.uuid4().hex[:8]}",
            "users": [{"user_id": user_id, "metadata": {"email": address}}],
        }
        entry = {"Source": self.batch_source, "DetailType": "MintSignInLinks", "Detail": json.dumps(batch),
                 "EventBusName": self.bus}  # fmt: skip
        assert self.emails is not None
        self.emails.put_events(Entries=[entry])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            outbox = httpx.get(f"{self.base_url}/_local/outbox", headers={"Accept": "application/json"}, timeout=30)
            for mail in outbox.json():
                if mail["to"] == [address]:
                    found = re.search(r'href="([^"]+/accept-token\?token=[^"]+)"', mail["body"])
                    if found:
                        return html.unescape(found.group(1))
            time.sleep(0.5)
        raise SystemExit(f"no email to {address} within 90 s: is delivery by email on (LOCAL_PARAMETER_EmailSender)?")

    @staticmethod
    def _click_dead_link(page: Any, url: str) -> None:
        page.goto(url)  # a GET never reads the token's state: the page offers the button
        with page.expect_navigation():
            page.locator("#sign-in").click()
        page.locator("#error-code").wait_for()


def email_screenshot(browser: Any, state: dict[str, Any], language: str, out: Path) -> Path:
    """The link email in ``language`` with the stack's brand, in a 375 px wide client."""
    from signin_links.branding import Brand
    from signin_links.link_email import EmailTemplates, MintedLink

    function = state["functions"]["SendLinkEmailFunction"]
    environment = function["environment"]
    brand = Brand(
        app_name=environment.get("APP_NAME", ""),
        color=environment.get("BRAND_COLOR") or Brand().color,
        logo_url=environment.get("LOGO_URL", ""),
    )
    templates = EmailTemplates.load(Path(function["source_dir"]) / "templates", brand=brand)
    url = f"{state['url']}/accept-token?token=eyJhbGciOiJFZERTQSIsImtpZCI6IjEifQ.eyJzaWQiOiJzaXRfMSJ9.c2lnbmF0dXJl"
    link = MintedLink("sit_1", "user_ada", url, "t", int(time.time() + 30 * 86400) * 1000, None,
                      {"first_name": "Ada", "locale": language})  # fmt: skip
    context = browser.new_context(viewport={"width": 375, "height": 640})
    if brand.logo_url:
        context.route(brand.logo_url, lambda route: route.fulfill(content_type="image/svg+xml", body=LOGO_SVG))
    page = context.new_page()
    page.set_content(templates.render(link).html, wait_until="load")
    path = out / f"{language}-email.png"
    page.screenshot(path=str(path), full_page=True)
    context.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of every page state of the running local stack.")
    parser.add_argument("--languages", default="en,ar", help="comma-separated (default: en,ar)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder of the PNG files (default: {OUT})")
    args = parser.parse_args(argv)
    state = running_stack()
    if state is None:
        return 1
    if not CHROMIUM.exists():
        print("Debian's chromium is not installed: make chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    tour = Tour.of(state)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        for language in args.languages.split(","):
            context = tour.context(browser, language)

            def shoot(name: str, page: Any, language: str = language) -> None:
                path = args.out / f"{language}-{name}.png"
                page.screenshot(path=str(path))
                print(path)

            tour.walk(context, shoot)
            context.close()
            print(email_screenshot(browser, state, language, args.out))
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
