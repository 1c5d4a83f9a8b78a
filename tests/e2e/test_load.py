"""The bounded wave of ``bench/load.py`` on the session's local stack: many clients at once minting,
opening (some links twice at the same instant), refreshing and signing out.

Pass: no 5xx, each token accepted exactly once (by the answers and in the table), no session lost
before its sign-out, none left active after it. ``make bench`` runs a bigger wave and reports its
figures (``load``)."""

from __future__ import annotations

from bench.load import SUITE, CookieJar, run_wave
from tests.e2e.conftest import LocalStackHandle


def test_a_bounded_wave_of_sign_ins_refreshes_and_sign_outs_loses_nothing(local_stack: LocalStackHandle) -> None:
    report = run_wave(local_stack.base_url, local_stack.secret_key, SUITE)
    assert report.failures == []
    assert report.server_errors == 0
    assert not report.timed_out
    # Each token accepted exactly once: one 200 each, and the rival of each raced link refused.
    assert len(report.accepted) == SUITE.users
    assert set(report.accepted.values()) == {1}
    accepts = report.route("accept")
    assert len(accepts) == SUITE.users + SUITE.races
    assert sum(1 for call in accepts if call.status == 400) == SUITE.races
    for token_id in report.accepted:
        assert local_stack.status(token_id) == "accepted"
    # No session lost before its sign-out, none alive after it.
    assert all(call.status == 200 for call in report.route("refresh"))
    assert len(report.route("refresh")) == SUITE.users * SUITE.refreshes
    assert report.signed_out == len(report.sessions) == SUITE.users
    assert all(call.status == 401 for call in report.route("refresh after sign-out"))
    assert all(call.status == 200 for call in report.route("read session"))


class Answer:
    def __init__(self, *set_cookies: str) -> None:
        self.headers = self
        self._cookies = list(set_cookies)

    def get_list(self, name: str) -> list[str]:
        assert name == "set-cookie"
        return self._cookies


def test_the_wave_keeps_the_newest_cookies_as_a_browser_does() -> None:
    jar = CookieJar()
    jar.update(Answer("__session=a.b.c; Path=/; Max-Age=60; HttpOnly; Secure", "__refresh=sess_1.one; Path=/; Secure"))
    jar.update(Answer("__refresh=sess_1.two; Path=/; Max-Age=604800; HttpOnly; Secure; SameSite=Lax"))
    assert jar.values == {"__session": "a.b.c", "__refresh": "sess_1.two"}
    assert jar.header() == {"Cookie": "__session=a.b.c; __refresh=sess_1.two"}
    old = jar.copy()
    jar.update(Answer("__session=; Path=/; Max-Age=0", "__refresh=; Path=/; Max-Age=0", "bad cookie;;=;"))
    assert jar.values == {}
    assert jar.header() == {}
    assert old.values["__refresh"] == "sess_1.two"
