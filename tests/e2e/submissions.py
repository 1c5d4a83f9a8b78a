"""Whether a page submitted a form by itself, without waiting for it to have had the time to.

An init script counts every form submission of the page: ``form.submit()`` (which fires no event),
``requestSubmit()`` and a button's click (which fire ``submit``). The page's clock is Playwright's:
once the page has loaded (its scripts have run), the test runs that clock a minute ahead, so every
timer the page set for that minute fires at once; then it reads the count. Whatever the machine's
speed, a page that submitted itself then shows it: in the count, in a read that fails because the
page is navigating away, or (once the answer has come) in a URL and a token status that changed,
which the callers check too.
"""

from __future__ import annotations

from typing import Any

COUNT_SUBMISSIONS = """(() => {
  let count = 0;
  const seen = () => { count += 1; };
  const submit = HTMLFormElement.prototype.submit;
  HTMLFormElement.prototype.submit = function () { seen(); return submit.call(this); };
  window.addEventListener("submit", seen, true);
  Object.defineProperty(window, "__formSubmissions", { get: () => count });
})();"""


def watch_submissions(page: Any) -> None:
    """Before ``page`` opens anything: count its form submissions, its clock under the test's control
    (Playwright's clock is the whole context's; time flows as usual until the test moves it)."""
    page.clock.install()
    page.add_init_script(COUNT_SUBMISSIONS)


def submissions_by_itself(page: Any) -> int:
    """The page's form submissions once it has loaded and every timer it set for a minute has fired."""
    page.wait_for_load_state("load")
    page.clock.run_for(60_000)
    return int(page.evaluate("window.__formSubmissions"))
