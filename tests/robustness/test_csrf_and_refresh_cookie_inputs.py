"""Property tests of the CSRF token and refresh cookie inputs, through the real accept handler on moto.

The ``csrf_token`` form and JSON field, the ``__Host-csrf`` cookie (repeated, prefixed, malformed
names and values), arriving from a browser without Fetch Metadata whose ``Origin`` is foreign: never
a 5xx, only ``403 origin_invalid`` (or a body's own 4xx), and the token stays pending. Refresh
cookies of any name, repeated, in one ``Cookie`` header or several, with any value: a 200 only for
the real token alone under this deployment's name, else a 401 that changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack, load_event
from tests.handlers import accept, accept_post_event, encoded, invoke, mint, status_of
from tests.strategies import tricky_text

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

HANDLER_PROPERTY = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
anything = st.text(st.characters(), max_size=80) | tricky_text
csrf_like = (
    st.sampled_from(
        ["", ".", "..", "1.2.3", "9" * 40 + ".AAAAAAAAAAAA." + "A" * 43, "1800000000.AAAAAAAAAAAA." + "A" * 43]
    )
    | anything
    | st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.integers(), anything, anything)
)
cookie_names = (
    st.sampled_from(
        ["__Host-csrf", "__host-csrf", "__Secure-csrf", "csrf", "__Host-csrf ", " __Host-csrf", "__Host-csrf\u0000"]
    )
    | anything
)
cookie_headers = st.lists(st.tuples(cookie_names, anything | st.just("A" * 22)), max_size=5).map(
    lambda pairs: [f"{name}={value}" for name, value in pairs]
)
foreign_origins = st.sampled_from(["null", "https://evil.example", "", "https://links.example.com.evil"]) | anything


@pytest.fixture
def pending(stack: Stack, context: Any) -> dict[str, Any]:
    return mint(context, user_id="user_csrf_property")


@HANDLER_PROPERTY
@given(
    field=csrf_like | st.none() | st.integers() | st.lists(st.text(max_size=5), max_size=2),
    cookies=cookie_headers,
    origin=foreign_origins,
    as_json=st.booleans(),
    repeated=st.booleans(),
)
@example(field="1800000000.AAAAAAAAAAAA." + "A" * 43, cookies=["__Host-csrf=" + "A" * 22], origin="null",
         as_json=False, repeated=False)  # fmt: skip
@example(field=["a", "b"], cookies=["__Host-csrf=x", "__Host-csrf=y"], origin="null", as_json=True, repeated=False)
def test_no_forged_csrf_token_or_cookie_lets_a_foreign_post_in(
    stack: Stack, context: Any, pending: dict[str, Any], field: Any, cookies: list[str], origin: str,
    as_json: bool, repeated: bool,
) -> None:  # fmt: skip
    if as_json:
        body = json.dumps({"token": pending["token"], "csrf_token": field})
        event = accept_post_event(body, content_type="application/json", accept="application/json", cookies=cookies)
    else:
        extra = "" if field is None else f"&csrf_token={encoded(str(field))}" * (2 if repeated else 1)
        event = accept_post_event(f"token={pending['token']}{extra}", cookies=cookies)
    for name in ("origin", "sec-fetch-site", "sec-fetch-mode"):
        event["headers"].pop(name, None)
    event["headers"]["origin"] = origin
    answer = invoke("accept_token", event, context)
    assert answer.status < 500, answer.body[:300]
    if origin.strip() in OWN_OR_ALLOWED:
        return  # no token is asked of the service's own or an allowed origin
    assert answer.status in (400, 403, 413, 422), answer.body[:300]
    assert status_of(stack, pending["id"]) == "pending"


OWN_OR_ALLOWED = (
    "https://links.example.com",
    "https://127.0.0.1:3000",
    "https://app.example.com",
    "http://127.0.0.1:3000",
)


# --- refresh cookies: repeated, prefixed and malformed names, any value ----------------------------

REFRESH_NAMES = ["__Host-refresh", "__Secure-refresh", "__refresh", "__host-refresh", "__Host-Refresh",
                 "__Host-refresh ", " __Host-refresh", "__Host-refresh\u0000", "refresh", "__Host-csrf"]  # fmt: skip
refresh_names = st.sampled_from(REFRESH_NAMES) | anything
refresh_values = anything | st.sampled_from(["", ".", "..", "sess_0000000000000000000000.0." + "A" * 43])


@pytest.fixture
def held(stack: Stack, context: Any) -> dict[str, Any]:
    """A real session (its refresh cookie's value) that random refreshes and sign-outs must leave as it is."""
    answer = accept(context, mint(context, user_id="user_refresh_property")["token"])
    value = answer.refresh_cookie()["__Host-refresh"].value
    session_id = answer.json()["created_session_id"]
    return {"id": session_id, "value": value, "item": stack.item(session_id)}


@HANDLER_PROPERTY
@given(
    pairs=st.lists(st.tuples(refresh_names, refresh_values | st.none()), max_size=5),
    one_header=st.booleans(),
)
@example(pairs=[("__Host-refresh", None), ("__Host-refresh", "x")], one_header=False)
@example(pairs=[("__Secure-refresh", None)], one_header=True)
@example(pairs=[(" __Host-refresh", None)], one_header=False)
def test_any_refresh_cookie_header_is_clean_and_only_the_real_token_alone_changes_anything(
    stack: Stack, context: Any, held: dict[str, Any], pairs: list[tuple[str, str | None]], one_header: bool
) -> None:
    """``None`` stands for the real session's token under that name. Every answer is a 200 or a 401 in
    the envelope; a 200 only for the real token alone under ``__Host-refresh`` (among duplicates of
    itself); anything else leaves the session's item as it was."""
    cookies = [f"{name}={held['value'] if value is None else value}" for name, value in pairs]
    event = load_event("refresh_session.json")
    event["cookies"] = ["; ".join(cookies)] if one_header and cookies else cookies
    for header in ("sec-fetch-site", "sec-fetch-mode", "origin"):
        event["headers"].pop(header, None)
    answer = invoke("accept_token", event, context)
    assert answer.status in (200, 401), (answer.status, answer.body[:300])
    # Whitespace before a name is the separator's ("a=1; b=2"), so " __Host-refresh" names that cookie
    # (as RFC 6265 reads a Cookie header); whitespace after a name makes another name.
    refresh_like = {"__Host-refresh", "__Secure-refresh", "__refresh"}
    named = [(name.lstrip(), value) for name, value in pairs]
    sent = {held["value"] if value is None else value.strip() for name, value in named if name in refresh_like}
    sent.discard("")
    only_the_real_one = sent == {held["value"]} and any(n == "__Host-refresh" and v is None for n, v in named)
    if answer.status == 200:
        assert only_the_real_one, cookies
        held["value"] = answer.refresh_cookie()["__Host-refresh"].value  # it rotated: the next example's token
        held["item"] = stack.item(held["id"])
    else:
        assert answer.code == "authentication_invalid"
        assert stack.item(held["id"]) == held["item"]
