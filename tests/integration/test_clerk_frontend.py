"""Clerk's Frontend API (functions/clerk_frontend) on moto: sign-in by ticket, the client, its tokens,
touch, sign-out, the handshake, /v1/jwks, and every refusal changing nothing."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jwt
import pytest

from tests.conftest import Stack, load_event
from tests.handlers import Answer, accept, invoke, keyring, mint, status_of

CLIENT = "__Host-client"


def frontend(event: dict[str, Any], context: Any) -> Answer:
    return invoke("clerk_frontend", event, context)


def with_cookie(event: dict[str, Any], value: str | None) -> dict[str, Any]:
    if value is None:
        event.pop("cookies", None)
    else:
        event["cookies"] = [f"{CLIENT}={value}"]
    return event


def sign_in_event(body: str, *, cookie: str | None = None, **headers: str) -> dict[str, Any]:
    event = load_event("frontend_sign_in.json")
    event["body"] = body
    event["headers"].update(headers)
    return with_cookie(event, cookie)


def sign_in(context: Any, ticket: str, **headers: str) -> Answer:
    return frontend(sign_in_event(f"strategy=ticket&ticket={quote(ticket)}&locale=en-US", **headers), context)


def client_value(answer: Answer) -> str:
    found = [cookie for cookie in answer.cookies if cookie.startswith(f"{CLIENT}=")]
    assert len(found) == 1, answer.cookies
    jar: SimpleCookie = SimpleCookie()
    jar.load(found[0])
    return jar[CLIENT].value


def get_client(context: Any, cookie: str | None) -> Answer:
    return frontend(with_cookie(load_event("frontend_client.json"), cookie), context)


def session_route(session_id: str, action: str, cookie: str | None, *, query: str = "") -> dict[str, Any]:
    event = load_event("frontend_session_token.json")
    path = f"/v1/client/sessions/{session_id}/{action}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST /v1/client/sessions/{{session_id}}/{action}"
    event["pathParameters"] = {"session_id": session_id}
    if query:
        event["rawQueryString"] += f"&{query}"
        event["queryStringParameters"].update(dict(part.split("=", 1) for part in query.split("&")))
    return with_cookie(event, cookie)


def sign_out_event(cookie: str | None) -> dict[str, Any]:
    return with_cookie(load_event("frontend_sign_out.json"), cookie)


def verify(stack: Stack, token: str) -> dict[str, Any]:
    key = keyring(stack, "SESSION_KEYRING_SECRET_ID").get(jwt.get_unverified_header(token)["kid"])
    assert key is not None
    claims: dict[str, Any] = jwt.decode(token, key.private_key.public_key(), algorithms=["RS256"])
    return claims


def test_environment_is_a_production_instance_with_ticket_sign_in_only(stack: Stack, context: Any) -> None:
    answer = frontend(load_event("frontend_environment.json"), context)
    assert answer.status == 200
    body = answer.json()
    assert body["display_config"]["instance_environment_type"] == "production"
    assert body["auth_config"]["single_session_mode"] is True
    assert body["organization_settings"]["enabled"] is False
    event = load_event("frontend_environment.json")
    del event["headers"]["origin"]
    assert "Access-Control-Allow-Origin" not in frontend(event, context).headers  # no Origin: no CORS answer
    event["headers"]["origin"] = "https://app.example.com"
    assert frontend(event, context).headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    event["headers"]["origin"] = "https://evil.example"
    assert "Access-Control-Allow-Origin" not in frontend(event, context).headers


def test_a_ticket_signs_in_once_and_the_client_holds_the_session(stack: Stack, context: Any) -> None:
    minted = mint(context, "user_fapi")
    answer = sign_in(context, minted["token"])
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["response"]["object"] == "sign_in"
    assert body["response"]["status"] == "complete"
    session_id = body["response"]["created_session_id"]
    client = body["client"]
    assert client["last_active_session_id"] == session_id
    [session] = client["sessions"]
    assert session["id"] == session_id
    assert session["user"]["id"] == "user_fapi"
    assert session["status"] == "active"
    claims = verify(stack, session["last_active_token"]["jwt"])
    assert (claims["sub"], claims["sid"]) == ("user_fapi", session_id)
    assert status_of(stack, minted["id"]) == "accepted"
    # The cookie: host-only, Secure, HttpOnly, Path=/ (the __Host- prefix requires all of it).
    [cookie] = [c for c in answer.cookies if c.startswith(f"{CLIENT}=")]
    assert "; Path=/" in cookie
    assert "; Secure" in cookie
    assert "; HttpOnly" in cookie
    assert "Domain" not in cookie
    # The table: the hash of the client secret, no refresh hash, never the secret.
    value = client_value(answer)
    item = stack.item(session_id)
    assert item is not None
    assert "refresh_hash" not in item
    assert item["refresh_generation"] == {"N": "0"}  # no refresh token is ever issued for it
    assert len(item["client_hash"]["S"]) == 64
    assert value.split(".", 1)[1] not in json.dumps(item)

    again = sign_in(context, minted["token"])
    assert again.status == 400
    assert again.code == "sign_in_token_already_used_code"
    assert again.cookies == []


@pytest.mark.parametrize("case", ["revoked", "malformed", "tampered"])
def test_bad_tickets_answer_clerk_errors_and_consume_nothing(stack: Stack, context: Any, case: str) -> None:
    minted = mint(context, "user_fapi_bad")
    ticket = minted["token"]
    expected = "ticket_invalid_code"
    if case == "revoked":
        from tests.handlers import revoke_event

        assert invoke("mint_link", revoke_event(minted["id"]), context).status == 200
        expected = "sign_in_token_revoked_code"
    elif case == "malformed":
        ticket = "not-a-jwt"
    else:
        ticket = ticket[:-3] + ("AAA" if not ticket.endswith("AAA") else "BBB")
    answer = sign_in(context, ticket)
    assert answer.status == 400
    assert answer.code == expected
    assert answer.json()["errors"][0]["long_message"]
    assert answer.cookies == []
    assert status_of(stack, minted["id"]) == ("revoked" if case == "revoked" else "pending")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ("strategy=password&identifier=a%40b.c&password=x", 422, "strategy_for_user_invalid", "strategy"),
        ("strategy=email_link&identifier=a%40b.c", 422, "strategy_for_user_invalid", "strategy"),
        ("strategy=ticket", 422, "form_param_missing", "ticket"),
        ("ticket=abc", 422, "form_param_missing", "strategy"),
        ("strategy=ticket&ticket=a&ticket=b", 422, "form_param_value_invalid", "ticket"),
    ],
)
def test_sign_in_refusals_name_the_field(
    stack: Stack, context: Any, body: str, status: int, code: str, param: str
) -> None:
    answer = frontend(sign_in_event(body), context)
    assert answer.status == status, answer.body
    error = answer.json()["errors"][0]
    assert error["code"] == code
    assert error["meta"] == {"param_name": param}
    assert error["long_message"]


def test_unsupported_strategy_says_only_ticket_is_supported(stack: Stack, context: Any) -> None:
    answer = frontend(sign_in_event("strategy=oauth_google"), context)
    assert "only strategy=ticket" in answer.json()["errors"][0]["long_message"]


def test_the_client_its_tokens_touch_and_sign_out(stack: Stack, context: Any) -> None:
    signed_in = sign_in(context, mint(context, "user_fapi_client")["token"])
    value = client_value(signed_in)
    session_id = signed_in.json()["response"]["created_session_id"]

    loaded = get_client(context, value)
    assert loaded.status == 200
    assert loaded.json()["response"]["sessions"][0]["id"] == session_id
    assert loaded.json()["client"] is None

    token = frontend(session_route(session_id, "tokens", value), context)
    assert token.status == 200
    assert token.json()["object"] == "token"
    assert verify(stack, token.json()["jwt"])["sid"] == session_id

    touched = frontend(session_route(session_id, "touch", value), context)
    assert touched.status == 200
    assert touched.json()["response"]["id"] == session_id
    assert touched.json()["client"]["sessions"][0]["last_active_token"]["jwt"]

    out = frontend(sign_out_event(value), context)
    assert out.status == 200
    assert any(c.startswith(f"{CLIENT}=;") and "Max-Age=0" in c for c in out.cookies)
    item = stack.item(session_id)
    assert item is not None
    assert item["status"]["S"] == "ended"

    refused = frontend(session_route(session_id, "tokens", value), context)
    assert refused.status == 401
    assert refused.code == "authentication_invalid"
    gone = get_client(context, value)
    assert gone.json() == {"response": None, "client": None}


def test_no_forged_or_foreign_client_gets_anything(stack: Stack, context: Any) -> None:
    first = sign_in(context, mint(context, "user_fapi_a")["token"])
    second = sign_in(context, mint(context, "user_fapi_b")["token"])
    first_value, second_value = client_value(first), client_value(second)
    first_id = first.json()["response"]["created_session_id"]
    session_id, secret = first_value.split(".", 1)
    forged = f"{session_id}.{secret[::-1]}"

    assert get_client(context, None).json() == {"response": None, "client": None}
    stale = get_client(context, forged)
    assert stale.json() == {"response": None, "client": None}
    assert any(c.startswith(f"{CLIENT}=;") for c in stale.cookies)
    assert frontend(session_route(first_id, "tokens", forged), context).status == 401
    assert frontend(session_route(first_id, "tokens", None), context).status == 401
    # Another browser's client asking for this session: 404, nothing told.
    other = frontend(session_route(first_id, "tokens", second_value), context)
    assert other.status == 404
    assert other.code == "resource_not_found"
    # A forged sign-out ends nothing.
    frontend(sign_out_event(forged), context)
    item = stack.item(first_id)
    assert item is not None
    assert item["status"]["S"] == "active"


def test_a_live_client_cannot_sign_in_again_and_the_ticket_stays_pending(stack: Stack, context: Any) -> None:
    value = client_value(sign_in(context, mint(context, "user_fapi_live")["token"]))
    minted = mint(context, "user_fapi_other")
    answer = frontend(sign_in_event(f"strategy=ticket&ticket={quote(minted['token'])}", cookie=value), context)
    assert answer.status == 400
    assert answer.code == "session_exists"
    assert status_of(stack, minted["id"]) == "pending"


def test_cross_site_sign_in_from_an_origin_not_allowed_is_refused(stack: Stack, context: Any) -> None:
    minted = mint(context, "user_fapi_csrf")
    refused = sign_in(
        context,
        minted["token"],
        origin="https://evil.example",
        **{"sec-fetch-site": "cross-site", "sec-fetch-mode": "cors"},
    )
    assert refused.status == 403
    assert refused.code == "origin_invalid"
    assert status_of(stack, minted["id"]) == "pending"

    allowed = sign_in(
        context,
        minted["token"],
        origin="https://app.example.com",
        **{"sec-fetch-site": "same-site", "sec-fetch-mode": "cors"},
    )
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"


def test_a_client_credential_is_no_refresh_token_and_the_reverse(stack: Stack, context: Any) -> None:
    value = client_value(sign_in(context, mint(context, "user_fapi_confusion")["token"]))
    refresh_event = load_event("refresh_session.json")
    refresh_event["cookies"] = [f"__Host-refresh={value}"]
    assert invoke("accept_token", refresh_event, context).status == 401

    accepted = accept(context, mint(context, "user_fapi_page")["token"])
    refresh = accepted.refresh_cookie()["__Host-refresh"].value
    page_session = refresh.split(".", 1)[0]
    assert frontend(session_route(page_session, "tokens", refresh), context).status == 401
    assert get_client(context, refresh).json()["response"] is None


def test_an_unknown_tunnelled_method_is_405(stack: Stack, context: Any) -> None:
    event = sign_out_event(None)
    event["rawQueryString"] = event["rawQueryString"].replace("_method=DELETE", "_method=TRACE")
    event["queryStringParameters"]["_method"] = "TRACE"
    answer = frontend(event, context)
    assert answer.status == 405
    assert answer.code == "method_not_allowed"


def test_handshake_returns_to_allowed_origins_only_with_a_verifiable_token(stack: Stack, context: Any) -> None:
    value = client_value(sign_in(context, mint(context, "user_fapi_handshake")["token"]))
    event = with_cookie(load_event("frontend_handshake.json"), value)
    answer = frontend(event, context)
    assert answer.status == 307
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://127.0.0.1:3000/dashboard"
    token = parse_qs(location.query)["__clerk_handshake"][0]
    directives = verify(stack, token)["handshake"]
    session = next(d for d in directives if d.startswith("__session="))
    assert verify(stack, session.split("=", 1)[1].split(";", 1)[0])["sub"] == "user_fapi_handshake"

    event["queryStringParameters"]["redirect_url"] = "https://evil.example/steal"
    refused = frontend(event, context)
    assert refused.status == 422
    assert "Location" not in refused.headers


def test_client_touch_sets_the_client_cookie_again_and_returns_to_allowed_origins_only(
    stack: Stack, context: Any
) -> None:
    """clerk-js 6 goes through GET /v1/client/touch on its way to a redirect URL (Safari ITP)."""
    signed_in = sign_in(context, mint(context, "user_fapi_client_touch")["token"])
    value = client_value(signed_in)
    at_sign_in: SimpleCookie = SimpleCookie()
    at_sign_in.load(next(c for c in signed_in.cookies if c.startswith(f"{CLIENT}=")))
    event = with_cookie(load_event("frontend_client_touch.json"), value)
    answer = frontend(event, context)
    assert answer.status == 307, answer.body
    assert answer.headers["Location"] == "http://127.0.0.1:3000/dashboard"
    jar: SimpleCookie = SimpleCookie()
    jar.load(next(c for c in answer.cookies if c.startswith(f"{CLIENT}=")))
    assert jar[CLIENT].value == value
    # The session's remaining life: never more than the sign-in gave.
    assert 0 < int(jar[CLIENT]["max-age"]) <= int(at_sign_in[CLIENT]["max-age"])
    assert (jar[CLIENT]["httponly"], jar[CLIENT]["secure"], jar[CLIENT]["path"]) == (True, True, "/")

    # No cookie: straight back, nothing set. A forged or ended client's cookie: cleared.
    assert frontend(with_cookie(load_event("frontend_client_touch.json"), None), context).cookies == []
    forged = frontend(with_cookie(load_event("frontend_client_touch.json"), value[:-2] + "xx"), context)
    assert forged.status == 307
    assert any(c.startswith(f"{CLIENT}=;") and "Max-Age=0" in c for c in forged.cookies), forged.cookies
    assert frontend(sign_out_event(value), context).status == 200
    ended = frontend(with_cookie(load_event("frontend_client_touch.json"), value), context)
    assert any(c.startswith(f"{CLIENT}=;") and "Max-Age=0" in c for c in ended.cookies), ended.cookies

    event = with_cookie(load_event("frontend_client_touch.json"), value)
    event["queryStringParameters"]["redirect_url"] = "https://evil.example/steal"
    refused = frontend(event, context)
    assert refused.status == 422
    assert refused.code == "form_param_value_invalid"
    assert "Location" not in refused.headers


def test_v1_jwks_is_the_session_keyrings_public_keys(stack: Stack, context: Any) -> None:
    answer = frontend(load_event("backend_jwks.json"), context)
    assert answer.status == 200
    page = invoke("accept_token", load_event("jwks.json"), context)
    assert answer.json() == page.json()
    assert all("d" not in key for key in answer.json()["keys"])


def test_v1_jwks_answers_other_methods_405_in_the_envelope(stack: Stack, context: Any) -> None:
    event = load_event("backend_jwks.json")
    event["requestContext"]["http"]["method"] = "POST"
    event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /v1/jwks"
    answer = frontend(event, context)
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET"
    assert answer.code == "method_not_allowed"


def test_environment_names_the_application(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import reset_caches

    monkeypatch.setenv("APP_NAME", "Acme Shop")
    reset_caches()
    answer = frontend(load_event("frontend_environment.json"), context)
    assert answer.json()["display_config"]["application_name"] == "Acme Shop"


@pytest.mark.parametrize(
    ("method", "path", "route_key", "allow"),
    [
        ("PUT", "/v1/environment", "ANY /v1/environment", "GET"),
        ("DELETE", "/v1/client", "ANY /v1/client", "GET, POST"),
        ("GET", "/v1/client/sign_ins", "ANY /v1/client/{proxy+}", "POST"),
        ("PATCH", "/v1/client/sessions/sess_0000000000000000000000/tokens", "ANY /v1/client/{proxy+}", "POST"),
        ("POST", "/v1/client/handshake", "ANY /v1/client/{proxy+}", "GET"),
        ("POST", "/v1/client/touch", "ANY /v1/client/{proxy+}", "GET"),
    ],
)
def test_other_methods_are_405_with_allow(
    stack: Stack, context: Any, method: str, path: str, route_key: str, allow: str
) -> None:
    event = load_event("frontend_environment.json")
    event["requestContext"]["http"]["method"] = method
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    answer = frontend(event, context)
    assert answer.status == 405, answer.body
    assert answer.headers["Allow"] == allow
    assert answer.code == "method_not_allowed"


def test_preflights_answer_allowed_origins_only(stack: Stack, context: Any) -> None:
    for path in ("/v1/client/sign_ins", "/v1/client/sessions/sess_0000000000000000000000/tokens", "/v1/environment"):
        event = load_event("frontend_environment.json")
        event["requestContext"]["http"]["method"] = "OPTIONS"
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["headers"].update({"origin": "https://app.example.com", "access-control-request-method": "POST"})
        allowed = frontend(event, context)
        assert allowed.status == 204, (path, allowed.body)
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        event["headers"]["origin"] = "https://evil.example"
        refused = frontend(event, context)
        assert refused.status == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
