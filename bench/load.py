"""A bounded wave on the local stack: many clients minting, accepting, refreshing and signing out at
once, over loopback.

Each simulated user, on its own keep-alive HTTP client:

1. mints a link (``POST /v1/sign_in_tokens`` with the stack's secret key);
2. opens it (``POST /accept-token``, JSON). For ``races`` of the users a second client posts the same
   token at the same instant (a barrier): exactly one of the two may sign in, the other must get
   ``400 sign_in_token_already_used_code``;
3. refreshes its session ``refreshes`` times (``POST /session/refresh``), keeping the newest cookies
   each answer sets, as a browser does (a refresh may rotate the refresh cookie);
4. signs out (``POST /sign-out``, JSON);
5. tries to refresh with the cookies it held before signing out: the session must be over (401).

Then, outside the timed wave, every session is read back (``GET /v1/sessions/{id}``): ended, each
one. The wave passes when no answer was a 5xx, each token was accepted exactly once, no session was
lost (every refresh before the sign-out succeeded) and none is left active after its sign-out.

Bounded: a fixed number of users and clients, a deadline after which no new request starts (the
wave then fails), a timeout on every request, loopback only. ``tests/e2e/test_load.py`` runs a small
wave in the suite; ``make bench`` (``load``) a bigger one, and reports its figures.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from bench import Figure, Options, benchmark, percentile

ROUTES = ("mint", "accept", "refresh", "sign-out", "refresh after sign-out", "read session")
# A request's answer may wait for a new execution environment of the local stack, whose start on a
# busy machine takes up to local.workers' INIT_TIMEOUT_S: no answer within this is a failure.
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WaveSize:
    users: int
    refreshes: int  # per user, between its sign-in and its sign-out
    races: int  # users whose link a second client opens at the same instant
    clients: int  # users in flight at once (each with its own HTTP client)
    deadline_s: float  # no request starts after this

    @property
    def requests(self) -> int:
        return self.users * (self.refreshes + 4) + self.races + self.users  # the wave, its rivals, the read-back


SUITE = WaveSize(users=16, refreshes=2, races=4, clients=8, deadline_s=120)
BENCH = WaveSize(users=200, refreshes=3, races=40, clients=32, deadline_s=300)
QUICK = WaveSize(users=40, refreshes=2, races=8, clients=16, deadline_s=120)


class CookieJar:
    """What a browser keeps of the stack's cookies: the newest value of each, gone once cleared
    (``Max-Age=0``). The cookies are ``Secure``; the local stack is plain http on loopback, so they
    are kept here rather than by httpx's jar, which holds Secure cookies back from http."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def update(self, response: Any) -> None:
        for header in response.headers.get_list("set-cookie"):
            try:
                parsed = SimpleCookie()
                parsed.load(header)
            except CookieError:
                continue
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.values.pop(name, None)
                else:
                    self.values[name] = morsel.value

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.values.items())} if self.values else {}

    def copy(self) -> CookieJar:
        jar = CookieJar()
        jar.values = dict(self.values)
        return jar


@dataclass
class Call:
    route: str
    status: int
    ms: float


@dataclass
class WaveReport:
    size: WaveSize
    calls: list[Call] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # token id -> 200 answers to its accept
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> user id
    signed_out: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, route: str, status: int, ms: float) -> None:
        with self._lock:
            self.calls.append(Call(route, status, ms))

    def fail(self, why: str) -> None:
        with self._lock:
            self.failures.append(why)

    @property
    def server_errors(self) -> int:
        return sum(1 for call in self.calls if call.status >= 500)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.server_errors and not self.timed_out

    def route(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.route == name]

    def summary(self) -> dict[str, Any]:
        routes = {}
        for name in ROUTES:
            calls = self.route(name)
            if not calls:
                continue
            statuses: dict[str, int] = {}
            for call in calls:
                statuses[str(call.status)] = statuses.get(str(call.status), 0) + 1
            latencies = [call.ms for call in calls]
            routes[name] = {
                "requests": len(calls),
                "statuses": statuses,
                "p50_ms": round(percentile(latencies, 0.5), 1),
                "p99_ms": round(percentile(latencies, 0.99), 1),
            }
        return {
            "users": self.size.users,
            "clients": self.size.clients,
            "seconds": round(self.seconds, 2),
            "requests": len(self.calls),
            "server_errors": self.server_errors,
            "sign_ins": sum(self.accepted.values()),
            "signed_out": self.signed_out,
            "failures": self.failures[:20],
            "timed_out": self.timed_out,
            "routes": routes,
        }


class Wave:
    """One bounded wave against a running local stack (see the module's docstring)."""

    def __init__(self, base_url: str, secret_key: str, size: WaveSize) -> None:
        self.base_url = base_url
        self.auth = {"Authorization": f"Bearer {secret_key}"}
        self.size = size
        self.report = WaveReport(size)
        self._deadline = 0.0

    def run(self) -> WaveReport:
        started = time.monotonic()
        self._deadline = started + self.size.deadline_s
        with ThreadPoolExecutor(self.size.clients, thread_name_prefix="wave-user") as users:
            list(users.map(self._user, range(self.size.users)))
        self.report.seconds = time.monotonic() - started
        self._deadline = time.monotonic() + self.size.deadline_s  # the read-back's own bound
        self._read_back()
        return self.report

    # -- one user ---------------------------------------------------------------------------------

    def _call(self, route: str, send: Callable[[], Any]) -> Any | None:
        """One request, timed and recorded; ``None`` (and the wave marked late) past the deadline,
        or (a failure) when the stack did not answer within ``REQUEST_TIMEOUT_S``."""
        import httpx

        if time.monotonic() > self._deadline:
            self.report.timed_out = True
            return None
        began = time.perf_counter()
        try:
            response = send()
        except httpx.TransportError as exc:
            self.report.fail(f"{route}: no answer ({type(exc).__name__})")
            return None
        self.report.record(route, response.status_code, (time.perf_counter() - began) * 1000)
        if response.status_code >= 500:
            self.report.fail(f"{route}: {response.status_code}")
        return response

    def _user(self, n: int) -> None:
        import httpx

        user_id = f"user_wave_{n:05d}"
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S) as client:
            minted = self._call(
                "mint", lambda: client.post("/v1/sign_in_tokens", json={"user_id": user_id}, headers=self.auth)
            )
            if minted is None or minted.status_code != 200:
                self.report.fail(f"mint for {user_id}: {getattr(minted, 'status_code', 'late')}")
                return
            token, token_id = minted.json()["token"], minted.json()["id"]
            signed_in = self._sign_in(client, token, token_id, rival=n < self.size.races)
            if signed_in is None:
                return
            jar, session_id = signed_in
            with self.report._lock:
                self.report.sessions[session_id] = user_id
            for number in range(self.size.refreshes):
                refreshed = self._call("refresh", lambda: client.post("/session/refresh", headers=jar.header()))
                if refreshed is None:
                    return
                if refreshed.status_code != 200 or refreshed.json().get("object") != "token":
                    self.report.fail(f"session {session_id} lost at refresh {number + 1}: {refreshed.status_code}")
                    return
                jar.update(refreshed)  # the newest cookies, as a browser keeps them
            before = jar.copy()
            out = self._call(
                "sign-out",
                lambda: client.post("/sign-out", json={}, headers={"Accept": "application/json", **jar.header()}),
            )
            if out is None:
                return
            if out.status_code != 200 or out.json().get("object") != "sign_out":
                self.report.fail(f"sign-out of {session_id}: {out.status_code}")
                return
            jar.update(out)
            with self.report._lock:
                self.report.signed_out += 1
            again = self._call(
                "refresh after sign-out", lambda: client.post("/session/refresh", headers=before.header())
            )
            if again is not None and again.status_code != 401:
                self.report.fail(f"session {session_id} still refreshes after its sign-out: {again.status_code}")

    def _sign_in(self, client: Any, token: str, token_id: str, *, rival: bool) -> tuple[CookieJar, str] | None:
        """Open the link; with a rival, two clients post it at once and exactly one may win. The
        winner's cookies and session id."""
        import httpx

        def accept(http: Any, barrier: threading.Barrier | None) -> tuple[Any, CookieJar]:
            jar = CookieJar()
            if barrier is not None:
                barrier.wait(timeout=30)
            response = self._call(
                "accept",
                lambda: http.post("/accept-token", data={"token": token}, headers={"Accept": "application/json"}),
            )
            if response is not None:
                jar.update(response)
            return response, jar

        if rival:
            barrier = threading.Barrier(2)
            with (
                httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S) as other,
                ThreadPoolExecutor(2) as both,
            ):
                answers = list(both.map(lambda http: accept(http, barrier), [client, other]))
        else:
            answers = [accept(client, None)]
        winners = [(response, jar) for response, jar in answers if response is not None and response.status_code == 200]
        losers = [response for response, _ in answers if response is not None and response.status_code != 200]
        with self.report._lock:
            self.report.accepted[token_id] = self.report.accepted.get(token_id, 0) + len(winners)
        for loser in losers:
            code = _error_code(loser)
            if loser.status_code != 400 or code != "sign_in_token_already_used_code":
                self.report.fail(f"accept of {token_id}: {loser.status_code} {code}")
        if len(winners) != 1:
            if all(response is not None for response, _ in answers):
                self.report.fail(f"token {token_id} accepted {len(winners)} times")
            return None
        response, jar = winners[0]
        return jar, str(response.json()["created_session_id"])

    # -- after the wave ---------------------------------------------------------------------------

    def _read_back(self) -> None:
        """Every session the wave created, as the backend sees it: none may be left active."""
        import httpx

        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S, headers=self.auth) as client:
            for session_id in list(self.report.sessions):
                response = self._call("read session", partial(client.get, f"/v1/sessions/{session_id}"))
                if response is None:
                    continue
                status = response.json().get("status") if response.status_code == 200 else None
                if status != "ended":
                    self.report.fail(f"session {session_id} is {status or response.status_code} after its sign-out")
        for token_id, wins in self.report.accepted.items():
            if wins != 1:
                self.report.fail(f"token {token_id} accepted {wins} times")


def _error_code(response: Any) -> str:
    try:
        errors = response.json().get("errors") or [{}]
        return str(errors[0].get("code", ""))
    except (ValueError, AttributeError):
        return ""


def run_wave(base_url: str, secret_key: str, size: WaveSize) -> WaveReport:
    return Wave(base_url, secret_key, size).run()


@benchmark("load", order=45)
def load(options: Options) -> list[Figure]:
    from bench.throughput import start_stack, stop_stack

    size = QUICK if options.quick else BENCH
    with tempfile.TemporaryDirectory(prefix="bench-load-") as workdir:
        stack = start_stack(Path(workdir))
        try:
            # Warm up: every execution environment of every function the wave uses (LOCAL_CONCURRENCY,
            # 4), so that the wave's figures hold no cold start.
            run_wave(stack.url, stack.secret_key, WaveSize(users=16, refreshes=1, races=2, clients=8, deadline_s=300))
            report = run_wave(stack.url, stack.secret_key, size)
        finally:
            stop_stack(stack.process)
    summary = report.summary()
    verdict = "pass" if report.ok else f"FAIL: {'; '.join(report.failures[:3]) or 'late'}"
    note = (
        f"{size.users} users, {size.clients} at once, {size.refreshes} refreshes each, {size.races} links opened "
        f"twice at once; {summary['server_errors']} 5xx; {verdict}"
    )
    sign_ins = summary["sign_ins"]
    figures = [
        Figure("load", "wave: requests per second", len(report.calls) / report.seconds, "req/s", note=note,
               target="0 5xx", detail=summary),
        Figure("load", "wave: sign-ins per second", sign_ins / report.seconds, "sign-ins/s", note=note,
               detail={"sign_ins": sign_ins, "seconds": summary["seconds"]}),
        Figure("load", "wave: 5xx answers", float(summary["server_errors"]), "answers", note=note, target="== 0"),
    ]  # fmt: skip
    for name in ("accept", "refresh"):
        route = summary["routes"].get(name)
        if route:
            figures.append(
                Figure(
                    "load",
                    f"wave: {name} p99 latency",
                    route["p99_ms"],
                    "ms",
                    note=json.dumps(route["statuses"]),
                    detail=route,
                )
            )
    return figures
