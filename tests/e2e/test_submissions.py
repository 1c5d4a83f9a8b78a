"""``tests/e2e/submissions.py`` sees a page that submits a form by itself, at once or on a timer, in
a real headless Chromium: the browser tests that claim "nothing submitted itself" rest on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.sites import Site
from tests.e2e.submissions import submissions_by_itself, watch_submissions

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><title>Form</title>
<form id="f" method="get" action="/landed"><input name="token" value="t"><button>Go</button></form>
<script>{script}</script>"""
SUBMITS = {
    "nothing": "",
    "at-once": 'document.getElementById("f").submit();',
    "request-submit": 'document.getElementById("f").requestSubmit();',
    "on-load": 'window.addEventListener("load", () => document.getElementById("f").submit());',
    "after-ten-seconds": 'setTimeout(() => document.getElementById("f").submit(), 10000);',
    "on-a-chain-of-timers": "setTimeout(() => setTimeout(() => document.getElementById('f').submit(), 20000), 20000);",
}


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    served = Site()
    served.pages["/landed"] = lambda query: "<!doctype html><title>Landed</title><p>landed</p>"
    for name, script in SUBMITS.items():
        served.pages[f"/{name}"] = lambda query, script=script: PAGE.format(script=script)
    yield served
    served.close()


def submitted(page: Any, url: str) -> bool:
    """Whether the page at ``url`` submitted its form by itself, by any of the signs the callers read."""
    try:
        count = submissions_by_itself(page)
    except PlaywrightError:  # the page is navigating away: the read's context is gone
        return True
    return count > 0 or page.url != url


@pytest.mark.parametrize("name", SUBMITS)
def test_a_page_that_submits_itself_is_seen_at_once_whatever_its_timer(site: Site, browser: Any, name: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    watch_submissions(page)
    url = f"{site.origin}/{name}"
    page.goto(url)
    assert submitted(page, url) is (name != "nothing")
    context.close()
