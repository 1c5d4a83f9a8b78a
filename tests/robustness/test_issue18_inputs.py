"""Property tests of issue 18's new inputs, through the real accept handler on moto.

The ``csrf_token`` form and JSON field, the ``__Host-csrf`` cookie (repeated, prefixed, malformed
names and values), arriving from a browser without Fetch Metadata whose ``Origin`` is foreign: never
a 5xx, only ``403 origin_invalid`` (or a body's own 4xx), and the token stays pending.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack
from tests.handlers import accept_post_event, encoded, invoke, mint, status_of
from tests.strategies import tricky_text

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

HANDLER_PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
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
