"""Property tests of every input of the session routes and of login CSRF.

Cookies (the refresh cookie, ``__session``) and headers (``Sec-Fetch-*``, ``Origin``) of any shape, session
ids in paths, ``limit``/``offset``/``status``/``paginated`` values, and refresh bodies of any JSON type:
never a 5xx, never an exception out of a handler, only the documented 4xx codes, and nothing stored
changes unless the request carried the real credentials for it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signin_links import refresh_tokens
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.fetch_metadata import check_cookie_post, preflight_headers
from signin_links.wire import REFRESH_FIELDS, parse_session_query, parse_session_refresh
from tests.conftest import Stack, load_event
from tests.handlers import Answer, accept, invoke, mint, status_of

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

PURE = settings(deadline=None)
HANDLER_PROPERTY = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
ALLOWED = ("https://app.example.com", "http://127.0.0.1:3000")
OWN = ("https://links.example.com",)

# Anything a header or cookie can hold once API Gateway (or a JSON event) delivers it: lone
# surrogates, fullwidth and non-ASCII characters, bracketed hosts, control characters, huge strings.
anything = st.text(st.characters(), max_size=80)
weird_origins = st.sampled_from(
    [
        "null", "", " ", "https://app.example.com", "https://app.example.com/", "HTTPS://APP.EXAMPLE.COM",
        "https://app.example.com.evil.example", "https://[::1]", "http://[::1", "https://app.example.com\uff0fevil",
        "https://app.example.com:443", "https://\u0430pp.example.com", "http://127.0.0.1:3000", "\ud800",
        "x" * 5000,
    ]
) | anything  # fmt: skip
sites = (
    st.sampled_from(["same-origin", "same-site", "cross-site", "none", "", "CROSS-SITE", " same-origin "]) | anything
)
modes = st.sampled_from(["cors", "navigate", "no-cors", "same-origin", "websocket", "", "CORS"]) | anything
headers = st.fixed_dictionaries(
    {}, optional={"sec-fetch-site": sites, "sec-fetch-mode": modes, "origin": weird_origins}
)
refresh_values = (
    st.sampled_from(["", ".", "sess_.x", "sess_0000000000000000000000.", "sess_0000000000000000000000.\uff21" * 3])
    | anything
    | st.builds(
        lambda generation, proof: f"sess_0000000000000000000000.{generation}.{proof}",
        st.integers(min_value=-5, max_value=2 * refresh_tokens.MAX_GENERATION)
        | st.sampled_from(["01", "+1", "\uff11"]),
        st.text(st.sampled_from("AZaz09-_+/="), min_size=40, max_size=46),
    )
    | st.builds(lambda a, b, c: f"{a}.{b}.{c}", anything, anything, anything)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | anything,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(anything, children, max_size=3),
    max_leaves=8,
)


QUERY_NAMES = st.sampled_from(["user_id", "client_id", "status", "limit", "offset", "paginated"])
QUERY_VALUES = st.sampled_from(["10", "0", "500", "501", "-1", "1e3", "\uff11\uff10", "9" * 40, "", "active", "true"])
SIGN_OUT_CODES = {"origin_invalid", "form_param_value_invalid", "request_body_invalid", "request_body_too_large"}


# --- pure parsers ----------------------------------------------------------------------------


@PURE
@given(value=refresh_values | json_values)
def test_a_refresh_value_of_any_shape_parses_or_is_none(value: Any) -> None:
    parsed = refresh_tokens.parse(value)
    if parsed is not None:
        assert parsed.value == value.strip()
        assert len(parsed.proof) == 43
        assert 0 <= parsed.generation <= refresh_tokens.MAX_GENERATION


@PURE
@given(request_headers=headers)
@example(
    request_headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "cors", "origin": "https://app.example.com"}
)
@example(request_headers={"sec-fetch-site": "same-site", "sec-fetch-mode": "cors", "origin": "null"})
def test_fetch_metadata_refuses_or_names_an_allowed_origin(request_headers: dict[str, str]) -> None:
    try:
        post = check_cookie_post(request_headers, ALLOWED, OWN)
    except SignInLinksError as error:
        assert error.code is ErrorCode.ORIGIN_INVALID
        assert error.status == 403
        site = request_headers.get("sec-fetch-site", "").strip().lower()
        assert site not in ("same-origin", "none")
        assert "sec-fetch-site" in request_headers  # without it, a CSRF token is asked for instead
        return
    origin = post.cors_origin
    assert origin is None or origin in ALLOWED
    site = request_headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() in ("same-site", "cross-site"):
        assert origin in ALLOWED
        assert request_headers.get("sec-fetch-mode", "").strip().lower() == "cors"
    # A browser without fetch metadata needs a CSRF token exactly when it sent an Origin that is
    # neither the service's own nor allowed ("null" included).
    sent = request_headers.get("origin")
    foreign = sent is not None and sent.strip() not in (*ALLOWED, *OWN)
    assert post.needs_csrf_token is (site is None and foreign)
    preflight = preflight_headers({**request_headers, "access-control-request-method": "POST"}, ALLOWED)
    assert preflight is None or preflight["Access-Control-Allow-Origin"] in ALLOWED


@PURE
@given(
    body=st.dictionaries(
        st.sampled_from(sorted(REFRESH_FIELDS)) | anything, json_values | refresh_values | st.none(), max_size=7
    )
)
@example(body={"expired_token": "a", "refresh_token": "b", "request_origin": "", "format": "cookie"})
@example(body={"expired_token": "a", "refresh_token": "b", "request_origin": "", "format": ["cookie"]})
def test_any_refresh_body_parses_or_is_a_422_naming_a_field(body: dict[str, Any]) -> None:
    try:
        request = parse_session_refresh(body)
    except SignInLinksError as error:
        assert error.status == 422
        assert error.param is not None
        assert error.param in REFRESH_FIELDS or error.param == str(error.param)[:64]
        return
    assert set(body) <= REFRESH_FIELDS
    assert request.expired_token == body["expired_token"]
    assert request.refresh_token == body["refresh_token"]
    assert request.response_format in ("token", "cookie")
    assert isinstance(body["request_origin"], str)


@PURE
@given(params=st.dictionaries(QUERY_NAMES | anything, QUERY_VALUES | anything, max_size=6))
def test_any_list_query_parses_or_is_a_422_naming_a_field(params: dict[str, str]) -> None:
    try:
        query = parse_session_query(params)
    except SignInLinksError as error:
        assert error.status == 422
        assert error.param in ("user_id", "client_id", "status", "limit", "offset", "paginated")
        return
    assert 1 <= query.limit <= 500
    assert 0 <= query.offset <= 100_000
    assert query.user_id is not None or query.client_id is not None


# --- the handlers ----------------------------------------------------------------------------


def with_session_id(event: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The event for ``session_id`` as API Gateway sends it: raw (encoded) path and decoded parameter."""
    path = event["rawPath"].replace("sess_0000000000000000000000", quote(session_id, safe="", errors="surrogatepass"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"session_id": session_id}
    return event


def check(answer: Answer, statuses: tuple[int, ...], codes: set[str]) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    assert answer.status in statuses, (answer.status, answer.body[:300])
    if answer.status >= 400 and answer.code is not None:
        assert answer.code in codes, answer.code


@pytest.fixture
def session(stack: Stack, context: Any) -> dict[str, Any]:
    """A real active session that random requests must never change."""
    answer = accept(context, mint(context, user_id="user_property")["token"])
    assert answer.status == 200
    sid = answer.json()["created_session_id"]
    return {"id": sid, "item": stack.item(sid), "token": answer.json()["session_token"]}


@HANDLER_PROPERTY
@given(refresh_value=refresh_values, session_value=anything, request_headers=headers, body=anything)
def test_any_browser_refresh_or_sign_out_is_clean_and_changes_nothing(
    stack: Stack, context: Any, session: dict[str, Any], refresh_value: str, session_value: str,
    request_headers: dict[str, str], body: str,
) -> None:  # fmt: skip
    for name, route in (("refresh_session.json", "refresh"), ("sign_out.json", "sign-out")):
        event = load_event(name)
        event["cookies"] = [f"__Host-refresh={refresh_value}", f"__session={session_value}"]
        for header in ("sec-fetch-site", "sec-fetch-mode", "origin"):
            event["headers"].pop(header, None)
        event["headers"].update(request_headers)
        event["body"] = body
        answer = invoke("accept_token", event, context)
        if route == "refresh":
            check(answer, (401, 403, 413), {"authentication_invalid", "origin_invalid", "request_body_too_large"})
        else:
            check(answer, (200, 303, 400, 403, 413, 422), SIGN_OUT_CODES)
    assert stack.item(session["id"]) == session["item"]


@HANDLER_PROPERTY
@given(session_id=anything | st.sampled_from(["sess_0000000000000000000000", "sess_\uff10" * 5, "sess_" + "A" * 200]))
def test_any_session_id_in_a_path_is_404(stack: Stack, context: Any, session_id: str) -> None:
    for name in ("get_session.json", "revoke_session.json", "create_session_token.json"):
        event = with_session_id(load_event(name), session_id)
        event["body"] = "{}" if name != "get_session.json" else None
        check(invoke("sessions", event, context), (404,), {"resource_not_found"})


@HANDLER_PROPERTY
@given(body=json_values, raw=st.booleans(), text=anything)
@example(body={"expired_token": "a", "refresh_token": "b", "request_origin": 1}, raw=False, text="")
@example(body={"expired_token": "a", "refresh_token": "b", "request_origin": "o", "format": 0}, raw=False, text="")
def test_any_backend_refresh_or_token_body_is_a_clean_4xx(
    stack: Stack, context: Any, session: dict[str, Any], body: Any, raw: bool, text: str
) -> None:
    for name in ("refresh_session_backend.json", "create_session_token.json"):
        event = with_session_id(load_event(name), session["id"])
        event["body"] = text if raw else json.dumps(body)
        answer = invoke("sessions", event, context)
        if name == "create_session_token.json" and answer.status == 200:
            continue  # a valid expires_in_seconds (or none): a token for the real, active session
        check(answer, (400, 401, 413, 422), {"request_body_invalid", "form_param_value_invalid", "form_param_unknown",
                                             "authentication_invalid", "request_body_too_large"})  # fmt: skip
    assert stack.item(session["id"]) == session["item"]


@HANDLER_PROPERTY
@given(request_headers=headers)
def test_any_fetch_metadata_on_the_accept_consumes_only_when_it_answers_success(
    stack: Stack, context: Any, request_headers: dict[str, str]
) -> None:
    minted = mint(context, user_id="user_headers")
    event = load_event("accept_token_post.json")
    event["body"] = f"token={minted['token']}"
    event["headers"].pop("origin", None)
    event["headers"].update(request_headers)
    answer = invoke("accept_token", event, context)
    check(answer, (200, 303, 403), {"origin_invalid"})
    assert (status_of(stack, minted["id"]) == "accepted") is (answer.status in (200, 303))
