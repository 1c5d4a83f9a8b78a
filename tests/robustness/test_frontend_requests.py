"""Property tests of every input of Clerk's Frontend API (functions/clerk_frontend).

Form bodies of any shape (repeated, prefixed and non-ASCII names, any value, any content type, base64
bodies), ``_method`` of any value, ``__Host-client`` cookies that are missing, forged, repeated or
another browser's, session ids of any shape in paths, ``Sec-Fetch-*``/``Origin`` headers, and the
handshake's and the client touch's ``redirect_url``: never a 5xx, only Clerk's envelope with a
documented 4xx, and a ticket is consumed (and a session ends) only by a request that carries what it
takes.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signin_links.errors import SignInLinksError
from signin_links.frontend_wire import SIGN_IN_FIELDS, effective_method, form_fields, parse_sign_in
from tests.conftest import Stack, load_event
from tests.handlers import Answer, invoke, mint, status_of
from tests.strategies import redirect_urls

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

PURE = settings(deadline=None)
HANDLER_PROPERTY = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
CLIENT = "__Host-client"
anything = st.text(st.characters(), max_size=80)
field_names = (
    st.sampled_from(["strategy", "ticket", "locale", "_method", "strategy[]", " strategy", "STRATEGY", "ticket\x00"])
    | anything
)
form_pairs = st.lists(
    st.tuples(field_names, anything | st.sampled_from(["ticket", "password", "oauth_google"])), max_size=6
)
methods = (
    st.sampled_from(["DELETE", "delete", "PATCH", "PUT", "GET", "POST", "TRACE", "", " DELETE", "DELETE\x00"])
    | anything
)
content_types = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "", "multipart/form-data", "x/y+json"]
)
session_ids = (
    st.sampled_from(["sess_0000000000000000000000", "sess_", "sess_" + "A" * 200, "user_1", "..", "%2e"]) | anything
)
client_values = (
    st.sampled_from(["", ".", "sess_0000000000000000000000.", "sess_0000000000000000000000." + "A" * 43])
    | anything
    | st.builds(lambda a, b: f"{a}.{b}", anything, anything)
)
sites = st.sampled_from(["same-origin", "same-site", "cross-site", "none", "", "CROSS-SITE"]) | anything
origins = st.sampled_from(["https://app.example.com", "https://evil.example", "null", "", "\ud800"]) | anything
fetch_headers = st.fixed_dictionaries(
    {}, optional={"sec-fetch-site": sites, "sec-fetch-mode": st.just("cors"), "origin": origins}
)

FRONTEND_CODES = {
    "form_param_missing",
    "form_param_value_invalid",
    "strategy_for_user_invalid",
    "request_body_invalid",
    "request_body_too_large",
    "method_not_allowed",
    "origin_invalid",
    "ticket_invalid_code",
    "resource_not_found",
    "authentication_invalid",
    "session_exists",
}


def encode_form(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}" for k, v in pairs)


def clean(value: str) -> str:
    """A value as it can arrive in a JSON event (API Gateway hands on valid UTF-8 only)."""
    return value.encode("utf-8", "replace").decode("utf-8")


def frontend(event: dict[str, Any], context: Any) -> Answer:
    return invoke("clerk_frontend", event, context)


def assert_clerk_4xx(answer: Answer) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body)
    assert answer.headers["Content-Type"] == "application/json"
    [error] = answer.json()["errors"]
    assert error["code"] in FRONTEND_CODES, error
    assert error["message"]
    assert error["long_message"]


def assert_no_harm(stack: Stack, answer: Answer, victim_id: str) -> None:
    """Never a 5xx, an error is Clerk's 4xx, and the victim's session is still active."""
    assert answer.status < 500, answer.body
    if answer.status >= 400:
        assert_clerk_4xx(answer)
    item = stack.item(victim_id)
    assert item is not None
    assert item["status"]["S"] == "active"


# --- pure parsers ----------------------------------------------------------------------------


@PURE
@given(method=methods, real=st.sampled_from(["GET", "POST", "PUT"]))
def test_a_tunnelled_method_is_one_of_three_or_a_405(method: str, real: str) -> None:
    try:
        found = effective_method(real, {"_method": method})
    except SignInLinksError as error:
        assert error.status == 405
    else:
        assert real == "POST"
        assert found in {"DELETE", "PATCH", "PUT"}


@PURE
@given(pairs=form_pairs, content_type=content_types, raw=st.binary(max_size=200))
@example(pairs=[("strategy", "ticket"), ("strategy", "ticket")], content_type="", raw=b"")
def test_any_body_is_fields_or_a_4xx(pairs: list[tuple[str, str]], content_type: str, raw: bytes) -> None:
    for body in (encode_form(pairs).encode("ascii"), raw):
        try:
            fields = form_fields(body, content_type, 16 * 1024, read=SIGN_IN_FIELDS)
            request = parse_sign_in(fields)
        except SignInLinksError as error:
            assert 400 <= error.status < 500
            assert error.code.wire_code in FRONTEND_CODES
        else:
            assert fields["strategy"] == "ticket"
            assert request.ticket == fields["ticket"].strip()
            assert request.ticket


# --- the handler, on moto ------------------------------------------------------------------------


@HANDLER_PROPERTY
@given(pairs=form_pairs, content_type=content_types, headers=fetch_headers, as_base64=st.booleans(), method=methods)
def test_any_sign_in_request_is_a_clerk_4xx_and_consumes_nothing(
    stack: Stack,
    context: Any,
    pairs: list[tuple[str, str]],
    content_type: str,
    headers: dict[str, str],
    as_base64: bool,
    method: str,
) -> None:
    minted = mint(context, "user_fapi_prop")
    # The real ticket appears only under a name the parser does not read as the ticket.
    body = encode_form([*pairs, ("ticket_", minted["token"])])
    event = load_event("frontend_sign_in.json")
    event["body"] = base64.b64encode(body.encode()).decode() if as_base64 else body
    event["isBase64Encoded"] = as_base64
    event["headers"]["content-type"] = content_type
    event["headers"].update({name: clean(value) for name, value in headers.items()})
    event["queryStringParameters"]["_method"] = clean(method)
    answer = frontend(event, context)
    if answer.status == 200:  # the form named another, real ticket: impossible here
        pytest.fail(f"a sign-in succeeded without the ticket: {answer.body}")
    assert_clerk_4xx(answer)
    assert status_of(stack, minted["id"]) == "pending"


@HANDLER_PROPERTY
@given(
    values=st.lists(client_values, max_size=3),
    session_id=session_ids,
    action=st.sampled_from(["tokens", "touch", "remove", "end", "verify", "tokens/template"]),
    headers=fetch_headers,
)
def test_forged_clients_and_foreign_sessions_get_4xx_and_change_nothing(
    stack: Stack, context: Any, values: list[str], session_id: str, action: str, headers: dict[str, str]
) -> None:
    signed_in = sign_in(context, mint(context, "user_fapi_victim")["token"])
    victim_id = signed_in.json()["response"]["created_session_id"]
    event = load_event("frontend_session_token.json")
    path = f"/v1/client/sessions/{quote(clean(session_id), safe='')}/{action}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"session_id": clean(session_id)}
    event["cookies"] = [f"{CLIENT}={clean(value)}" for value in values]
    event["headers"].update({name: clean(value) for name, value in headers.items()})
    assert_no_harm(stack, frontend(event, context), victim_id)


@HANDLER_PROPERTY
@given(
    values=st.lists(client_values, max_size=3),
    method=methods,
    path=st.sampled_from(["/v1/client", "/v1/client/sessions"]),
)
def test_sign_out_with_any_cookie_never_ends_anothers_session(
    stack: Stack, context: Any, values: list[str], method: str, path: str
) -> None:
    signed_in = sign_in(context, mint(context, "user_fapi_keep")["token"])
    victim_id = signed_in.json()["response"]["created_session_id"]
    event = load_event("frontend_sign_out.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["queryStringParameters"]["_method"] = clean(method)
    event["cookies"] = [f"{CLIENT}={clean(value)}" for value in values]
    assert_no_harm(stack, frontend(event, context), victim_id)


@HANDLER_PROPERTY
@given(
    redirect=redirect_urls | anything,
    route=st.sampled_from(["frontend_handshake.json", "frontend_client_touch.json"]),
    values=st.lists(client_values, max_size=3),
)
def test_the_handshake_and_client_touch_return_only_to_allowed_origins(
    stack: Stack, context: Any, redirect: str, route: str, values: list[str]
) -> None:
    event = load_event(route)
    event["queryStringParameters"]["redirect_url"] = clean(redirect)
    event["cookies"] = [f"{CLIENT}={clean(value)}" for value in values]
    answer = frontend(event, context)
    # None of these values names a live client: at most the cookie cleared, never one set.
    assert all(c.startswith(f"{CLIENT}=;") for c in answer.cookies), answer.cookies
    assert answer.status in (307, 422), answer.body
    if answer.status == 307:
        location = answer.headers["Location"]
        assert location.startswith(
            ("https://app.example.com/", "http://127.0.0.1:3000/", "https://app.example.com?", "http://127.0.0.1:3000?")
        ), location
    else:
        assert_clerk_4xx(answer)


def sign_in(context: Any, ticket: str) -> Answer:
    event = load_event("frontend_sign_in.json")
    event["body"] = f"strategy=ticket&ticket={quote(ticket)}"
    answer = frontend(event, context)
    assert answer.status == 200, answer.body
    return answer
