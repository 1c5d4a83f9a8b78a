"""Property tests of the local stack's own inputs: the ``/_local/`` routes (the outbox, the rotation
endpoint) with any path, method, header and body, and ``make events``' rendering of any event.

Whatever arrives: an answer (never an exception, never a 5xx), the rotation endpoint refuses
without the stack's key and without a rotated secret's name, and no printed event line holds a
token or a JWT.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from local.apigw import HttpRequest
from local.emulator import MotoServer
from local.follow import JWT, line_for, redact
from local.stack import LocalStack

ROUTE_PROPERTY = settings(deadline=None, suppress_health_check=list(HealthCheck))
KEY = "sk_test_local_signin_links_0001"

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
odd_segments = st.sampled_from(
    ["outbox", "outbox.json", "rotate", "", "..", "%2e%2e", "%00", "%ff", "%ud800", "\u00e9", "outbox/x/y", "?a=b", "#"]
) | st.text(max_size=30).filter(lambda text: "?" not in text)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    saved = dict(os.environ)
    with MotoServer() as moto:
        # Not activated: nothing is imported or started; only the routes' own checks run.
        local = LocalStack.build(url="http://127.0.0.1:3997", endpoint=moto.endpoint, env={})
        yield local
    os.environ.clear()
    os.environ.update(saved)


@ROUTE_PROPERTY
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "get"]),
    segments=st.lists(odd_segments, min_size=1, max_size=3),
    accept=st.none() | st.sampled_from(["application/json", "text/html", "*/*", "\x00"]) | st.text(max_size=20),
    body=st.binary(max_size=200),
)
@example(method="GET", segments=["outbox", "no-such-message"], accept=None, body=b"")
def test_any_local_route_request_gets_an_answer(
    stack: LocalStack, method: str, segments: list[str], accept: str | None, body: bytes
) -> None:
    headers = [("Host", "127.0.0.1:3997"), *([("Accept", accept)] if accept is not None else [])]
    request = HttpRequest(method, "/_local/" + "/".join(segments), headers, body)
    answered = stack.local_route(request)
    assert answered is not None
    response, route_key = answered
    assert response.status in {200, 400, 401, 404, 405}
    assert route_key.split(" ", 1)[1] in {
        "/_local (no route)",
        "/_local/outbox",
        "/_local/outbox.json",
        "/_local/rotate",
        "/_local/outbox/{id}",
        "/_local/outbox.json/{id}",
        "/_local/rotate/{id}",
    }


LOOPBACK_HOSTS = ["127.0.0.1:3997", "localhost:3997", "LOCALHOST", "[::1]:3997", "127.0.0.2", "localhost"]


@ROUTE_PROPERTY
@given(
    host=st.none()
    | st.sampled_from(
        [
            "evil.example",
            "evil.example:3997",
            "127.0.0.1.nip.io:3997",
            "localhost.evil.example",
            "0.0.0.0:3997",
            "[::1",
            "[::ffff:127.0.0.1]:3997",
            "127.0.0.1:3997,evil.example",
            "127.0.0.1:99999",
            "127.0.0.1:",
            "127.0.0.1:x",
            "\u0131ocalhost",
            "localhost:3997 ",
            "",
            " ",
            "[::1]x",
        ]
    )
    | st.text(max_size=40),
    path=st.sampled_from(["/_local/outbox", "/_local/outbox.json", "/_local/rotate", "/_local/outbox/x", "/_local"]),
)
@example(host="evil.example:3997", path="/_local/outbox.json")
def test_local_routes_answer_only_a_loopback_host(stack: LocalStack, host: str | None, path: str) -> None:
    """A DNS-rebinding page (its name resolving to 127.0.0.1) reaches the port with its own Host, and
    must not read the outbox's live links."""
    headers = [("Host", host)] if host is not None else []
    answered = stack.local_route(HttpRequest("GET", path, headers, b""))
    assert answered is not None
    response, _ = answered
    if host is not None and host.strip() in LOOPBACK_HOSTS:
        assert response.status != 403
    else:
        assert response.status == 403, host
        assert b"loopback" in response.body
    for loopback in LOOPBACK_HOSTS:
        answer = stack.local_route(HttpRequest("GET", "/_local/outbox.json", [("Host", loopback)], b""))
        assert answer is not None
        assert answer[0].status == 200, loopback


@ROUTE_PROPERTY
@given(
    body=json_values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=100)
    | st.sampled_from([b"{", b'{"secret": "\\ud800"}', b'{"secret": null}', b"[]"]),
    authorization=st.none()
    | st.sampled_from([KEY, f"Bearer {KEY} ", f"bearer {KEY}", "Bearer ", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}"])
    | st.text(max_size=60),
)
def test_the_rotation_endpoint_refuses_what_is_not_a_rotation(
    stack: LocalStack, body: bytes, authorization: str | None
) -> None:
    headers = [("Authorization", authorization)] if authorization is not None else []
    response = stack.rotate(HttpRequest("POST", "/_local/rotate", headers, body))
    assert response.status in {400, 401}
    if authorization is None or authorization.removeprefix("Bearer ").strip() != KEY:
        assert response.status == 401


@settings(deadline=None)
@given(
    event=st.fixed_dictionaries(
        {"source": json_values, "detail-type": json_values, "detail": json_values},
        optional={"time": json_values},
    ),
    token=st.from_regex(r"eyJ[A-Za-z0-9_-]{2,20}\.eyJ[A-Za-z0-9_-]{2,20}\.[A-Za-z0-9_-]{0,20}", fullmatch=True),
    as_json=st.booleans(),
)
def test_make_events_prints_any_event_without_its_tokens(event: dict[str, Any], token: str, as_json: bool) -> None:
    event = {
        **event,
        "detail": {"inner": event["detail"], "url": f"https://x/accept-token?token={token}", "raw": token},
    }
    line = line_for(event, as_json=as_json)
    assert token not in line
    assert not JWT.search(line)
    assert "\n" not in line
    assert redact(line) == line
