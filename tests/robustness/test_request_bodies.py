"""Property tests of every /v1 request through the real mint_link handler, on moto.

Whatever the body, headers or path: never a 5xx, never an exception out of the handler; errors
come in the Clerk envelope with ``Content-Type: application/json`` exactly; a rejected request
writes nothing to the table; an accepted one makes exactly one write, of the pending item it returns
as the Clerk object. Writes are counted where they are made (every botocore call, recorded by
``tests/robustness/faults.py``): a rejected request that changed an existing item would show.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack, load_event
from tests.handlers import call_mint, create_event
from tests.robustness.faults import Injector, injected
from tests.strategies import json_values as hostile_json_values
from tests.strategies import redirect_urls, tricky_text

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

HANDLER_PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLIENT_ERRORS = {400, 401, 404, 405, 413, 422}
SIGN_IN_TOKEN_FIELDS = {"object", "id", "status", "user_id", "token", "url", "created_at", "updated_at"}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "\u0000", "\u2028", "user_1", "https://app.example.com/x", "sit_x", "60"])
)
json_values = (
    st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    )
    | hostile_json_values
)
# Every field reaches the shapes that break URL parsers (a malformed redirect_url must be a 4xx):
# bracketed hosts, IPv6 literals, fullwidth and non-ASCII characters, bad ports, user info.
field_values = {
    "user_id": st.text(max_size=300) | tricky_text | json_values,
    "expires_in_seconds": st.integers(min_value=-10, max_value=2**40) | json_values,
    "org_id": st.none() | st.text(max_size=300) | tricky_text | json_values,
    "redirect_url": st.sampled_from(
        [
            "https://app.example.com/welcome",
            "https://app.example.com.evil.test/",
            "https://user:pw@app.example.com/",
            "javascript:alert(1)",
            "//app.example.com/",
            "http://127.0.0.1:3000/done",
            "https://APP.example.com/Case",
            "https://app.example.com/\u0000",
        ]
    )
    | redirect_urls
    | json_values,
}
mint_objects = st.fixed_dictionaries({}, optional=field_values) | st.dictionaries(
    st.text(max_size=20), json_values, max_size=5
)
raw_bodies = (
    st.text(max_size=200)
    | st.binary(max_size=200).map(lambda data: data.decode("latin-1"))
    | st.sampled_from(["{", "[]", "null", "1e999", '{"user_id": NaN}', '{"user_id": "\\ud800"}', "{" * 5000])
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Injector]:
    """Every AWS call of the test, all its examples: each example counts the writes it made."""
    with injected(monkeypatch) as calls:
        yield calls


def check_answer(stack: Stack, writes: int, status: int, headers: dict[str, str], body: Any) -> None:
    """``writes``: the DynamoDB writes the request made."""
    assert status < 500, (status, body)
    assert headers.get("Content-Type") == "application/json"
    if status == 200:
        assert set(body) == SIGN_IN_TOKEN_FIELDS
        assert body["status"] == "pending"
        assert writes == 1
        item = stack.item(body["id"])
        assert item is not None
        assert item["user_id"]["S"] == body["user_id"]
        return
    assert status in CLIENT_ERRORS, status
    assert set(body) == {"errors", "clerk_trace_id"}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    for name in ("message", "long_message", "code"):
        assert isinstance(error[name], str), name
        assert error[name], name
    assert writes == 0, "a rejected request wrote to the table"


def call(aws: Injector, event: dict[str, Any], context: Any) -> tuple[int, int, dict[str, str], Any]:
    """The mint handler's answer to ``event``, after the number of DynamoDB writes it made."""
    before = aws.table_writes()
    status, headers, body = call_mint(event, context)
    return aws.table_writes() - before, status, headers, body


@HANDLER_PROPERTY
@given(mint_objects)
@example({"user_id": "user_1", "expires_in_seconds": 10**400})
@example({"user_id": "user_1", "expires_in_seconds": float("inf")})
@example({"user_id": "\ud800"})
@example({"user_id": "u", "org_id": "o", "redirect_url": "https://app.example.com/w", "expires_in_seconds": 1})
@example({"user_id": "u", "redirect_url": "https://[x/"})
@example({"user_id": "u", "redirect_url": "https://app.example.com\uff0fevil.com/"})
@example({"user_id": "u", "redirect_url": "https://app.example.com/café"})
def test_any_json_object_is_answered_cleanly(
    stack: Stack, aws: Injector, context: Any, payload: dict[str, Any]
) -> None:
    writes, status, headers, body = call(aws, create_event(json.dumps(payload)), context)
    check_answer(stack, writes, status, headers, body)
    if status == 200:  # what was accepted is what the contract allows
        assert isinstance(payload["user_id"], str)
        assert 0 < len(payload["user_id"]) <= 256
        expires = payload.get("expires_in_seconds")
        if expires is not None:
            assert type(expires) is int, expires
            assert 1 <= expires <= 2592000
        redirect = stack.item(body["id"]).get("redirect_url", {}).get("S")  # type: ignore[union-attr]
        if redirect is not None:
            assert redirect.isascii(), redirect
            assert len(redirect) <= 2048


@HANDLER_PROPERTY
@given(raw_bodies)
def test_any_raw_body_is_answered_cleanly(stack: Stack, aws: Injector, context: Any, raw: str) -> None:
    check_answer(stack, *call(aws, create_event(raw), context))


@HANDLER_PROPERTY
@given(st.binary(max_size=300) | st.sampled_from([b"\xff\xfe", b'{"user_id": "\xc3\x28"}', b'{"user_id": "u\xe9"}']))
@example(b'{"user_id": "user_b64"}')
def test_base64_encoded_bodies_are_answered_cleanly(stack: Stack, aws: Injector, context: Any, data: bytes) -> None:
    """API Gateway base64-encodes bodies of binary content types: any bytes may arrive."""
    event = create_event(base64.b64encode(data).decode("ascii"), base64_encoded=True)
    event["headers"]["content-type"] = "application/octet-stream"
    check_answer(stack, *call(aws, event, context))


@HANDLER_PROPERTY
@given(st.text(max_size=60) | st.sampled_from(["garbage!!", "====", "e30"]))
def test_malformed_base64_bodies_are_answered_cleanly(stack: Stack, aws: Injector, context: Any, text: str) -> None:
    check_answer(stack, *call(aws, create_event(text, base64_encoded=True), context))


header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@HANDLER_PROPERTY
@given(
    authorization=st.none() | header_text | header_text.map(lambda key: f"Bearer {key}"),
    content_type=st.none() | header_text,
)
def test_any_authorization_and_content_type_are_answered_cleanly(
    stack: Stack, aws: Injector, context: Any, authorization: str | None, content_type: str | None
) -> None:
    event = create_event(json.dumps({"user_id": "user_1"}))
    if authorization is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = authorization
    if content_type is None:
        del event["headers"]["content-type"]
    else:
        event["headers"]["content-type"] = content_type
    writes, status, headers, body = call(aws, event, context)
    check_answer(stack, writes, status, headers, body)
    if authorization != f"Bearer {stack.secret_key}":
        assert status == 401


@HANDLER_PROPERTY
@given(
    token_id=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80).filter(
        lambda value: "/" not in value
    ),
    body=st.none() | st.sampled_from(["", "{}", "null", "[", '{"x": 1}']),
)
def test_revoke_of_any_id_is_answered_cleanly(
    stack: Stack, aws: Injector, context: Any, token_id: str, body: str | None
) -> None:
    event = load_event("revoke_sign_in_token.json")
    event["pathParameters"] = {"sign_in_token_id": token_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{token_id}/revoke"
    event["body"] = body
    writes, status, headers, answer = call(aws, event, context)
    check_answer(stack, writes, status, headers, answer)
    assert status in (400, 404), (status, answer)


@HANDLER_PROPERTY
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS"]),
    path=st.sampled_from(["/v1/sign_in_tokens", "/v1/sign_in_tokens/", "/v1", "/", "/v1/sign_in_tokens/x"])
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).map(lambda tail: "/v1/" + tail),
)
def test_any_route_is_answered_cleanly(stack: Stack, aws: Injector, context: Any, method: str, path: str) -> None:
    event = create_event(json.dumps({"user_id": "user_route"}))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    writes, status, headers, body = call(aws, event, context)
    check_answer(stack, writes, status, headers, body)
