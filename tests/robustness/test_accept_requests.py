"""Property tests of every /accept-token request through the real accept handler, on moto.

Whatever the body, content type, Accept header, cookies or query: never a 5xx, never an exception
out of the handler; errors carry their wire code (JSON envelope or HTML page); GET and HEAD never
change a token; a POST consumes a token only when it answers success for it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack
from tests.handlers import (
    HTML,
    JSON,
    WRAPPINGS,
    Answer,
    accept_get_event,
    accept_post_event,
    encoded,
    invoke,
    mint,
    status_of,
    wrapped,
)
from tests.strategies import tricky_text

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

HANDLER_PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WIRE_CODES = {
    "ticket_invalid_code",
    "ticket_expired_code",
    "sign_in_token_already_used_code",
    "sign_in_token_revoked_code",
    "form_param_missing",
    "request_body_invalid",
    "request_body_too_large",
}
# With the hostile characters of tests/strategies.py (fullwidth delimiters, lone surrogates, ...).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120) | tricky_text
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        "application/x-www-form-urlencoded; charset=latin-1",
    ]
) | text.map(lambda value: value[:60])
accepts = st.sampled_from([HTML, JSON, "*/*", "", "text/html", "application/json, text/html", "image/png"])
cookies = st.none() | st.lists(
    st.sampled_from(["__session=", "__session=eyJ.eyJ.x", "theme=dark", "__session=a; __session=b"]) | text, max_size=3
)


def check(answer: Answer) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    assert answer.status in (200, 303, 400, 404, 405, 413, 422), answer.status
    if answer.status >= 400:
        assert answer.code in WIRE_CODES | {"resource_not_found", "method_not_allowed", "form_param_value_invalid"}, (
            answer.code,
            answer.body[:300],
        )
        assert not answer.cookies
    content_type = answer.headers.get("Content-Type", "")
    assert content_type == JSON or content_type.startswith("text/html"), content_type


@pytest.fixture
def pending(stack: Stack, context: Any) -> dict[str, Any]:
    """A real pending token (with a redirect) that the random requests must never consume."""
    return mint(context, redirect_url="https://app.example.com/welcome")


@HANDLER_PROPERTY
@given(body=text | st.binary(max_size=200).map(lambda data: data.decode("latin-1")), content_type=content_types,
       accept=accepts, cookie_list=cookies, base64_encoded=st.booleans())  # fmt: skip
@example(body="token=%ZZ", content_type="application/x-www-form-urlencoded", accept=HTML, cookie_list=None,
         base64_encoded=False)  # fmt: skip
@example(body='{"token": "\\ud800"}', content_type=JSON, accept=JSON, cookie_list=None, base64_encoded=False)
@example(body='{"token": ["a"]}', content_type=JSON, accept=JSON, cookie_list=None, base64_encoded=False)
@example(body="token=a&token=b", content_type="", accept="", cookie_list=["__session=x"], base64_encoded=True)
def test_any_post_is_answered_cleanly_and_consumes_nothing(
    stack: Stack, context: Any, pending: dict[str, Any], body: str, content_type: str, accept: str,
    cookie_list: list[str] | None, base64_encoded: bool,
) -> None:  # fmt: skip
    event = accept_post_event(body, content_type=content_type, accept=accept, cookies=cookie_list,
                              base64_encoded=base64_encoded)  # fmt: skip
    answer = invoke("accept_token", event, context)
    check(answer)
    assert answer.status >= 400, "accepted a made-up token"
    assert status_of(stack, pending["id"]) == "pending"


@HANDLER_PROPERTY
@given(
    wrapper=st.sampled_from(WRAPPINGS),
    accept=accepts,
    junk=text,
)
@example(wrapper="form+junk", accept=HTML, junk="\ud800")  # escaped in CI: the junk's bytes are not UTF-8
@example(wrapper="form-duplicate", accept=JSON, junk="\udfff")
def test_a_real_token_in_any_wrapping_is_consumed_only_on_success(
    stack: Stack, context: Any, wrapper: str, accept: str, junk: str
) -> None:
    minted = mint(context)
    token = minted["token"]
    body, content_type = wrapped(token, wrapper, junk)
    answer = invoke("accept_token", accept_post_event(body, content_type=content_type, accept=accept), context)
    check(answer)
    consumed = status_of(stack, minted["id"]) == "accepted"
    assert consumed == (answer.status in (200, 303)), (wrapper, answer.status, answer.code)
    if consumed:
        assert sorted(cookie.split("=", 1)[0] for cookie in answer.cookies) == ["__Host-refresh", "__session"]


@HANDLER_PROPERTY
@given(
    token=st.none() | text | st.sampled_from(["", "eyJ", "a.b.c", "x" * 5000]),
    method=st.sampled_from(["GET", "HEAD"]),
    accept=accepts,
    use_real=st.booleans(),
)
@example(token=None, method="GET", accept=HTML, use_real=True)
@example(token="\ud800", method="GET", accept=JSON, use_real=False)  # escaped in CI: not UTF-8
def test_get_and_head_never_consume(
    stack: Stack, context: Any, pending: dict[str, Any], token: str | None, method: str, accept: str, use_real: bool
) -> None:
    value = pending["token"] if use_real else token
    answer = invoke("accept_token", accept_get_event(value, accept=accept, method=method), context)
    check(answer)
    assert all(cookie.startswith("__Host-csrf=") for cookie in answer.cookies)  # the form's, never a session's
    assert status_of(stack, pending["id"]) == "pending"
    if method == "HEAD":
        assert answer.status == 200, answer.body
        assert not answer.body


@HANDLER_PROPERTY
@given(data=st.binary(max_size=200), valid_base64=st.booleans(), content_type=content_types)
@example(data=b"token=\xff\xfe", valid_base64=True, content_type="application/x-www-form-urlencoded")
@example(data=b'{"token": "\xc3\x28"}', valid_base64=True, content_type=JSON)
@example(data=b"not base64!", valid_base64=False, content_type="application/x-www-form-urlencoded")
def test_any_bytes_base64_encoded_are_answered_cleanly(
    stack: Stack, context: Any, pending: dict[str, Any], data: bytes, valid_base64: bool, content_type: str
) -> None:
    """API Gateway base64-encodes bodies of binary content types: any bytes may arrive."""
    event = accept_post_event("", content_type=content_type, accept=JSON)
    event["body"] = base64.b64encode(data).decode("ascii") if valid_base64 else data.decode("latin-1")
    event["isBase64Encoded"] = True
    check(invoke("accept_token", event, context))
    assert status_of(stack, pending["id"]) == "pending"


# Everything str.strip() removes, the page and the POST alike (a mail client may append a %0A to a
# link: the GET page must not refuse a token that the POST accepts).
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
padding = st.text(st.sampled_from(WHITESPACE), max_size=4)


@HANDLER_PROPERTY
@given(before=padding, after=padding, accept=accepts, as_json=st.booleans())
@example(before="", after="\n", accept=HTML, as_json=False)
def test_the_page_and_the_post_treat_surrounding_whitespace_alike(
    stack: Stack, context: Any, before: str, after: str, accept: str, as_json: bool
) -> None:
    minted = mint(context)
    padded = before + minted["token"] + after
    page = invoke("accept_token", accept_get_event(padded, accept=HTML), context)
    check(page)
    assert page.status == 200, (page.status, page.code)
    assert f'name="token" value="{minted["token"]}"' in page.body  # the form posts the token itself
    assert status_of(stack, minted["id"]) == "pending"
    body, content_type = (json.dumps({"token": padded}), JSON) if as_json else (f"token={encoded(padded)}", None)
    event = accept_post_event(body, accept=accept, **({"content_type": content_type} if content_type else {}))
    answer = invoke("accept_token", event, context)
    check(answer)
    assert answer.status in (200, 303), (answer.status, answer.code)
    assert status_of(stack, minted["id"]) == "accepted"
