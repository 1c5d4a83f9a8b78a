"""What an open tab costs: session.js refreshes from visible tabs only, once per token.

In a real headless Chromium, on an application page that includes ``session.js`` (as in
``tests/e2e/session_app.py``), every ``POST /session/refresh`` the page sends is counted (by the
page as it calls ``fetch``, and by the browser's network events, which must agree) while
Playwright's clock (``page.clock``) moves the page's time forward, so many token lifetimes pass in a
few seconds; the stack answers for real, with 12 s tokens. The page's clock stands still while the
test waits for an answer, so a slow or loaded machine changes how long a test takes, not what it sees.

Headless Chromium reports every page as visible (a second tab, ``bring_to_front`` and a window
minimised through CDP all leave ``document.visibilityState`` at ``"visible"``), so an init script
puts the Page Visibility API's state under the test's control: ``document.visibilityState`` and
``document.hidden`` answer what the test set, and a change fires ``visibilitychange`` as the
browser would. Everything else is the browser's and session.js's own.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tests.e2e import session_app
from tests.e2e.conftest import LocalStackHandle
from tests.e2e.session_app import TOKEN_LIFETIME_S, sign_in_on_the_apps_page
from tests.e2e.sites import Site

pytestmark = pytest.mark.browser

# The application origin and its stack (12 s tokens), whose /app page includes session.js and shows
# "session:<id>" in #who once load() answers: this module's own (module-scoped fixtures).
app_site = session_app.app_site
stack = session_app.stack

LIFETIME_S = TOKEN_LIFETIME_S
# session.js refreshes between 1 and 1.5 margins before expiry, a margin being min(5 s, lifetime / 10).
MARGIN_S = min(5, LIFETIME_S / 10)
EARLIEST_S, LATEST_S = LIFETIME_S - 1.5 * MARGIN_S, LIFETIME_S - MARGIN_S
STEP_S = 0.5  # the page's clock moves in steps; an answer is handled at the end of its step

VISIBILITY = """(() => {
  let state = "%s";
  Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get() { return state; } });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get() { return state === "hidden"; } });
  window.__setVisibility = (next) => { state = next; document.dispatchEvent(new Event("visibilitychange")); };
})();"""

# The page's own count of its refreshes: sent when fetch() is called (in the very task that decided
# to refresh), answered when the answer's body has been read: the code that handles it runs in the
# microtasks right after, so by the test's next round trip to the page the answer has been handled.
COUNTER = """(() => {
  const count = { sent: 0, answered: 0, failed: 0 };
  window.__refreshes = count;
  const fetch = window.fetch;
  window.fetch = function (input, init) {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.endsWith("/session/refresh")) return fetch.call(this, input, init);
    count.sent += 1;
    return fetch.call(this, input, init).then(
      (response) => {
        const json = response.json.bind(response);
        response.json = () => json().finally(() => { count.answered += 1; });
        return response;
      },
      (error) => { count.answered += 1; count.failed += 1; throw error; },
    );
  };
})();"""


class Tab:
    """An application page with a session, its clock paused, its refresh requests counted.

    Nothing here depends on how fast the machine is: the page's clock moves only when the test moves
    it, and after each move the test waits (in real time, up to a minute) until every refresh the page
    sent has been answered and handled. The page counts its refreshes itself (a browser's network
    events reach the test later than the page's own answers); the network's count must agree."""

    def __init__(self, context: Any, stack: LocalStackHandle, app_site: Site, *, visibility: str) -> None:
        self.page = context.new_page()
        self.sent: list[str] = []  # what the browser's network saw (methods)
        refresh_url = f"{stack.base_url}/session/refresh"
        self.page.on("request", lambda r: self.sent.append(r.method) if r.url == refresh_url else None)
        self.page.add_init_script(VISIBILITY % visibility)
        self.page.add_init_script(COUNTER)
        start = time.time()
        self.page.clock.install(time=start)  # the context's clock (one Tab per context); Python: seconds
        self.page.clock.pause_at(start + 1)  # and it stands still from the start: the test moves it
        self.page.goto(f"{app_site.origin}/app")

    @property
    def refreshes(self) -> int:
        """The refreshes the page has sent so far, each answered and handled."""
        return self.settle()

    def settle(self) -> int:
        """Until every refresh the page sent has been answered (real time: the stack is real) and
        handled, and the browser's network saw exactly those requests (POSTs, none failed)."""
        deadline = time.monotonic() + 60
        while True:
            count = self.page.evaluate("window.__refreshes")
            assert len(self.sent) <= count["sent"], f"{self.sent} on the network, the page sent {count}"
            if count["answered"] == count["sent"] == len(self.sent):
                break
            assert time.monotonic() < deadline, f"after 60 s: {count}, {len(self.sent)} on the network"
            self.page.wait_for_timeout(25)
        assert count["failed"] == 0, "a refresh request failed"
        assert set(self.sent) <= {"POST"}
        return int(count["sent"])

    def run_for(self, seconds: float) -> None:
        """Moves the page's clock forward STEP_S at a time, letting each refresh complete."""
        for _ in range(math.ceil(seconds / STEP_S)):
            self.page.clock.run_for(int(STEP_S * 1000))
            self.settle()

    def run_until(self, refreshes: int, limit_s: float) -> None:
        """Moves the clock STEP_S at a time until the page has sent ``refreshes`` (within ``limit_s``)."""
        for _ in range(math.ceil(limit_s / STEP_S)):
            if self.refreshes >= refreshes:
                return
            self.page.clock.run_for(int(STEP_S * 1000))
            self.settle()
        assert self.refreshes >= refreshes, f"{self.refreshes} refreshes after {limit_s} s"

    def show(self, visibility: str) -> None:
        self.page.evaluate(f"window.__setVisibility({visibility!r})")
        self.settle()

    def who(self) -> str:
        return str(self.page.locator("#who").inner_text())


def test_a_visible_tab_refreshes_about_once_per_token_lifetime(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    session_id = sign_in_on_the_apps_page(context, stack, app_site, "user_visible_tab")
    tab = Tab(context, stack, app_site, visibility="visible")
    tab.page.get_by_text(f"session:{session_id}").wait_for()
    tab.settle()
    assert tab.refreshes == 1  # load(): the session from the refresh cookie

    span_s = 10 * LIFETIME_S
    tab.run_for(span_s)
    background = tab.refreshes - 1
    # One request per token, shortly before it expires: never more often than every EARLIEST_S,
    # never later than LATEST_S (plus the step in which its answer is handled).
    assert math.floor(span_s / (LATEST_S + STEP_S)) <= background <= math.ceil(span_s / EARLIEST_S), background
    assert tab.page.evaluate("SigninLinks.session.id") == session_id
    context.close()


def test_a_hidden_tab_sends_nothing_until_shown_then_one_refresh(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    session_id = sign_in_on_the_apps_page(context, stack, app_site, "user_hidden_tab")
    tab = Tab(context, stack, app_site, visibility="hidden")  # opened in the background
    tab.run_for(10 * LIFETIME_S)
    assert tab.refreshes == 0  # not even load()'s: it waits for the tab to be shown
    assert tab.who() == "loading"

    tab.show("visible")
    tab.page.get_by_text(f"session:{session_id}").wait_for()
    assert tab.refreshes == 1

    # Hidden again in the middle of a token's life: nothing, for ten lifetimes.
    tab.run_for(LIFETIME_S / 2)
    assert tab.refreshes == 1
    tab.show("hidden")
    tab.run_for(10 * LIFETIME_S)
    assert tab.refreshes == 1
    # Shown with an expired token: one refresh at once, and the page's token is valid again.
    tab.show("visible")
    assert tab.refreshes == 2
    token = tab.page.evaluate("SigninLinks.getToken()")
    assert tab.refreshes == 2  # the fresh token is held, not fetched again
    assert token.count(".") == 2
    context.close()


def test_a_tab_shown_again_before_its_token_is_stale_sends_nothing_until_it_is(
    stack: LocalStackHandle, app_site: Site, browser: Any
) -> None:
    context = browser.new_context()
    session_id = sign_in_on_the_apps_page(context, stack, app_site, "user_brief_hide")
    tab = Tab(context, stack, app_site, visibility="visible")
    tab.page.get_by_text(f"session:{session_id}").wait_for()
    tab.settle()
    assert tab.refreshes == 1
    tab.show("hidden")
    tab.run_for(2)
    tab.show("visible")
    shown_at = tab.page.evaluate("Date.now()")
    assert tab.refreshes == 1  # its token is still fresh: no request, the timer is set again
    tab.run_until(2, LATEST_S + STEP_S)  # at its stale point, no sooner
    assert tab.refreshes == 2
    assert tab.page.evaluate("Date.now()") >= shown_at + (EARLIEST_S - 2) * 1000
    renewed_at = tab.page.evaluate("Date.now()")  # the clock stood still since the answer: its receipt
    # Hidden, then past that token's stale point (at most LATEST_S) but before its expiry (LIFETIME_S):
    # no background refresh, and getToken() answers the token it holds (a visible tab would refresh).
    hidden_ms = int((LATEST_S + STEP_S) * 1000)
    tab.show("hidden")
    tab.page.clock.run_for(hidden_ms)
    tab.settle()
    assert tab.page.evaluate("Date.now()") - renewed_at == hidden_ms < LIFETIME_S * 1000
    held = tab.page.evaluate("SigninLinks.getToken()")
    assert tab.refreshes == 2
    assert held == tab.page.evaluate("SigninLinks.session.getToken()")
    assert tab.refreshes == 2
    tab.show("visible")  # stale: one refresh at once
    assert tab.refreshes == 3
    context.close()
