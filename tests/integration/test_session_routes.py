"""Refresh, sign-out, session.js, login CSRF and CORS on the accept function; Clerk's /v1/sessions on
the sessions function: the real handlers with the events/ files, on moto."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from tests.conftest import SECRET_KEY, Stack, load_event
from tests.handlers import Answer, accept, invoke, mint, status_of
from tests.robustness.faults import injected
from tests.session_calls import ALLOWED, api, browser_event, cleared, refresh, set_attribute, signed_in

FORM = "application/x-www-form-urlencoded"


# --- POST /session/refresh -----------------------------------------------------------------


def test_refresh_gives_a_fresh_token_and_the_next_refresh_token_in_one_conditional_write(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = signed_in(context, org_id="org_r")
    before = stack.item(session["id"])
    with injected(monkeypatch) as faults:
        answer = refresh(context, session["refresh"])
    assert answer.status == 200, answer.body
    assert answer.json()["object"] == "token"
    token = answer.json()["jwt"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sid"] == session["id"]
    assert claims["sub"] == "user_routes"
    assert claims["o"] == {"id": "org_r"}
    assert claims["exp"] - claims["iat"] == 60
    assert answer.session_cookie()["__session"].value == token
    dynamodb = [(op, params) for service, op, params in faults.calls if service == "dynamodb"]
    assert [op for op, _ in dynamodb] == ["UpdateItem"]  # the one call: no read first
    assert dynamodb[0][1]["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    rotated = answer.refresh_cookie()["__Host-refresh"]
    assert rotated.value.startswith(session["id"] + ".1.")  # the next generation
    assert rotated.value != session["refresh"]
    assert rotated["path"] == "/"
    assert rotated["secure"]
    assert rotated["httponly"]
    assert not rotated["domain"]
    item = stack.item(session["id"])
    assert before is not None
    assert item is not None
    assert item["refresh_generation"] == {"N": "1"}
    assert int(item["rotated_at"]["N"]) > int(before["rotated_at"]["N"]) - 1
    assert int(item["last_active_at"]["N"]) > int(time.time() * 1000) - 5_000
    # The new token refreshes in turn, again in one call.
    with injected(monkeypatch) as faults:
        again = refresh(context, rotated.value)
    assert again.status == 200, again.body
    assert again.refresh_cookie()["__Host-refresh"].value.startswith(session["id"] + ".2.")
    assert [op for service, op, _ in faults.calls if service == "dynamodb"] == ["UpdateItem"]


@pytest.mark.parametrize("case", ["missing", "malformed", "wrong_secret", "another_session", "revoked", "expired"])
def test_refresh_refusals_are_401_and_clear_both_cookies(stack: Stack, context: Any, case: str) -> None:
    session = signed_in(context)
    other = signed_in(context)
    value: str | None = {
        "missing": None,
        "malformed": "not-a-refresh-token",
        "wrong_secret": session["id"] + ".0." + other["refresh"].split(".")[2],  # another session's proof
        "another_session": other["id"] + ".0." + session["refresh"].split(".")[2],
        "revoked": session["refresh"],
        "expired": session["refresh"],
    }[case]
    if case == "revoked":
        assert api(context, "revoke_session.json", session["id"]).status == 200
    if case == "expired":
        set_attribute(stack, session["id"], "expire_at", int(time.time() * 1000) - 1)
    answer = refresh(context, value)
    assert answer.status == 401, answer.body
    assert answer.code == "authentication_invalid"
    assert cleared(answer)
    item = stack.item(session["id"])
    assert item is not None
    expected = {"revoked": "revoked", "expired": "expired"}.get(case, "active")
    assert item["status"]["S"] == expected  # an expiry found by a refresh is recorded (one write)


# --- login CSRF and CORS -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),  # API clients and older browsers
        ({"sec_fetch_site": "same-origin", "sec_fetch_mode": "navigate", "origin": "null"}, True),
        ({"sec_fetch_site": "none", "sec_fetch_mode": "navigate"}, True),
        ({"sec_fetch_site": "cross-site", "sec_fetch_mode": "navigate", "origin": "https://evil.example"}, False),
        ({"sec_fetch_site": "cross-site", "sec_fetch_mode": "navigate", "origin": ALLOWED}, False),
        ({"sec_fetch_site": "same-site", "sec_fetch_mode": "no-cors", "origin": ALLOWED}, False),
        ({"sec_fetch_site": "same-site", "sec_fetch_mode": "cors", "origin": "https://other.example.com"}, False),
        ({"sec_fetch_site": "cross-site", "sec_fetch_mode": "cors", "origin": "null"}, False),
        ({"sec_fetch_site": "same-site", "sec_fetch_mode": "cors", "origin": ALLOWED}, True),
        ({"sec_fetch_site": "cross-site", "sec_fetch_mode": "cors", "origin": ALLOWED}, True),
        ({"sec_fetch_site": "bogus"}, False),
    ],
)
def test_cookie_posts_from_other_sites_are_refused_unless_cors_from_an_allowed_origin(
    stack: Stack, context: Any, headers: dict[str, str], allowed: bool
) -> None:
    minted = mint(context, user_id="user_csrf")
    event = load_event("accept_token_post.json")
    event["body"] = f"token={minted['token']}"
    event["headers"].pop("origin", None)
    event["headers"].update({key.replace("_", "-"): value for key, value in headers.items()})
    cors = headers.get("sec_fetch_mode") == "cors" and allowed
    if cors:
        event["headers"]["accept"] = "application/json"  # what fetch() in session.js asks for
    answer = invoke("accept_token", event, context)
    assert (answer.status in (200, 303)) is allowed, (answer.status, answer.code)
    assert status_of(stack, minted["id"]) == ("accepted" if allowed else "pending")
    if not allowed:
        assert answer.status == 403, answer.body
        assert answer.code == "origin_invalid"
        assert not answer.cookies
    assert (answer.headers.get("Access-Control-Allow-Origin") == ALLOWED) is cors
    if cors:
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        assert answer.headers["Vary"] == "Origin"
        assert answer.is_json
        assert answer.json()["status"] == "complete"  # fetch() reads JSON
    session = signed_in(context, user_id="user_csrf")
    refreshed = refresh(context, session["refresh"], **headers)
    assert refreshed.status == (200 if allowed else 403)


@pytest.mark.parametrize(
    "name", ["accept_token_preflight.json", "refresh_session_preflight.json", "sign_out_preflight.json"]
)
def test_preflights_answer_allowed_origins_only(stack: Stack, context: Any, name: str) -> None:
    event = load_event(name)
    event["headers"]["origin"] = ALLOWED
    answer = invoke("accept_token", event, context)
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert answer.headers["Access-Control-Allow-Methods"] == "POST"
    assert answer.headers["Vary"] == "Origin"
    assert "content-type" in answer.headers["Access-Control-Allow-Headers"]
    for origin in ("https://evil.example", "null", ALLOWED + ".evil.example", ALLOWED.upper()):
        event["headers"]["origin"] = origin
        refused = invoke("accept_token", event, context)
        assert refused.status == 403, refused.body
        assert "Access-Control-Allow-Origin" not in refused.headers


# --- sign-out --------------------------------------------------------------------------------


def sign_out(
    context: Any, session: dict[str, str] | None, *, body: str = "", content_type: str = FORM, **headers: str
) -> Answer:
    cookies = [] if session is None else [f"__session={session['session']}", f"__Host-refresh={session['refresh']}"]
    event = browser_event("sign_out.json", cookies=cookies, **headers)
    event["body"] = body
    event["headers"]["content-type"] = content_type
    return invoke("accept_token", event, context)


def test_sign_out_ends_the_session_clears_the_cookies_and_redirects(stack: Stack, context: Any) -> None:
    session = signed_in(context)
    answer = sign_out(context, session, body=f"redirect_url={ALLOWED}/bye", sec_fetch_site="same-origin")
    assert answer.status == 303, answer.body
    assert answer.headers["Location"] == f"{ALLOWED}/bye"
    assert cleared(answer)
    item = stack.item(session["id"])
    assert item is not None
    assert item["status"]["S"] == "ended"
    assert refresh(context, session["refresh"]).status == 401  # at once
    page = sign_out(context, None)
    assert page.status == 200, page.body
    assert "You are signed out." in page.body
    assert cleared(page)


def test_sign_out_as_json_and_its_refusals_change_nothing(stack: Stack, context: Any) -> None:
    session = signed_in(context)
    for body in (json.dumps({"redirect_url": "https://evil.example/"}), json.dumps({"redirect_url": 7})):
        refused = sign_out(context, session, body=body, content_type="application/json")
        assert refused.status == 422, refused.body
        assert refused.code == "form_param_value_invalid"
        assert not refused.cookies
    cross = sign_out(context, session, sec_fetch_site="cross-site", sec_fetch_mode="navigate")
    assert cross.status == 403, cross.body
    assert not cross.cookies
    forged = dict(session, refresh=session["id"] + ".0." + signed_in(context)["refresh"].split(".")[2])
    assert sign_out(context, forged).status == 200  # cookies cleared, but the session is not the caller's
    assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]
    done = sign_out(context, session, body="{}", content_type="application/json", accept="application/json")
    assert done.status == 200, done.body
    assert done.json() == {
        "object": "sign_out",
        "status": "complete",
        "session_id": session["id"],
        "session_ids": [session["id"]],
    }
    assert stack.item(session["id"])["status"]["S"] == "ended"  # type: ignore[index]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("https://APP.EXAMPLE.COM:443/x", "https://app.example.com/x"),
        ("https://app.example.com/caf\u00e9?q=\u00fc", "https://app.example.com/caf%C3%A9?q=%C3%BC"),
        ("https://app.example.com/a b", None),  # not a URL: refused (422), as at mint
    ],
)
def test_sign_out_redirects_to_the_canonical_ascii_form_as_the_accept_does(
    stack: Stack, context: Any, given: str, sent: str | None
) -> None:
    """The sign-out's Location is the redirect_url in the accept's ASCII form, never the raw text sent."""
    session = signed_in(context)
    answer = sign_out(
        context,
        session,
        body=json.dumps({"redirect_url": given}),
        content_type="application/json",
        sec_fetch_site="same-origin",
    )
    if sent is None:
        assert answer.status == 422, answer.body
        assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]
        return
    assert answer.status == 303, answer.body
    assert answer.headers["Location"] == sent
    event = browser_event("sign_out_page.json")
    event["queryStringParameters"] = {"redirect_url": given}
    assert f'name="redirect_url" value="{sent}"' in invoke("accept_token", event, context).body


def test_a_get_never_signs_out(stack: Stack, context: Any) -> None:
    session = signed_in(context)
    event = browser_event("sign_out_page.json", cookies=[f"__Host-refresh={session['refresh']}"])
    event["queryStringParameters"] = {"redirect_url": f"{ALLOWED}/x"}
    page = invoke("accept_token", event, context)
    assert page.status == 200, page.body
    assert 'action="sign-out"' in page.body
    assert f'value="{ALLOWED}/x"' in page.body
    assert [cookie.split("=", 1)[0] for cookie in page.cookies] == ["__Host-csrf"]  # the form's, nothing cleared
    assert stack.item(session["id"])["status"]["S"] == "active"  # type: ignore[index]
    event["queryStringParameters"] = {"redirect_url": "https://evil.example/"}
    assert 'value=""' in invoke("accept_token", event, context).body


def test_session_js_is_served_as_a_script(stack: Stack, context: Any) -> None:
    answer = invoke("accept_token", load_event("session_js.json"), context)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "window.SigninLinks" in answer.body
    assert "eval(" not in answer.body
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_another_user_page_names_both_users_and_posts_with_confirmation(stack: Stack, context: Any) -> None:
    alice = signed_in(context, user_id="user_alice")
    minted = mint(context, user_id="user_<bob>")
    answer = accept(context, minted["token"], cookies=[f"__session={alice['session']}"], as_json=False)
    assert answer.status == 409, answer.body
    assert [cookie.split("=", 1)[0] for cookie in answer.cookies] == ["__Host-csrf"]  # its form's, no session
    assert 'name="csrf_token" value="' in answer.body
    assert 'id="signed-in-user" dir="auto">user_alice<' in answer.body
    assert 'id="link-user" dir="auto">user_&lt;bob&gt;<' in answer.body
    assert 'name="confirm" value="switch_user"' in answer.body
    assert "<script" not in answer.body
    assert status_of(stack, minted["id"]) == "pending"


# --- /v1/sessions ----------------------------------------------------------------------------


def test_list_get_revoke_and_tokens_in_clerks_shapes(stack: Stack, context: Any) -> None:
    first = signed_in(context, user_id="user_api")
    second = signed_in(context, user_id="user_api", org_id="org_api")
    listed = api(context, "list_sessions.json", query={"user_id": "user_api"})
    assert listed.status == 200, listed.body
    assert [s["id"] for s in listed.json()] == [second["id"], first["id"]]
    session = listed.json()[0]
    assert set(session) == {
        "object", "id", "user_id", "client_id", "status", "last_active_at", "expire_at", "abandon_at",
        "created_at", "updated_at", "last_active_organization_id", "actor",
    }  # fmt: skip
    assert session["object"] == "session"
    assert session["status"] == "active"
    assert session["actor"] is None
    assert session["last_active_organization_id"] == "org_api"
    assert session["client_id"].startswith("client_")
    paged = api(
        context, "list_sessions.json", query={"user_id": "user_api", "paginated": "true", "limit": "1", "offset": "1"}
    )
    assert paged.json() == {"data": [listed.json()[1]], "total_count": 2}
    by_client = api(context, "list_sessions.json", query={"client_id": session["client_id"]})
    assert [s["id"] for s in by_client.json()] == [second["id"]]

    assert api(context, "get_session.json", first["id"]).json() == listed.json()[1]
    token = api(context, "create_session_token.json", first["id"], body={"expires_in_seconds": 120})
    claims = jwt.decode(token.json()["jwt"], options={"verify_signature": False})
    assert token.json()["object"] == "token"
    assert claims["sid"] == first["id"]
    assert claims["exp"] - claims["iat"] == 120
    default = api(context, "create_session_token.json", first["id"], body="")
    assert jwt.decode(default.json()["jwt"], options={"verify_signature": False})["exp"] - claims["iat"] in (60, 61)
    # At most MaxSessionTokenSeconds (10 minutes), not the session's 7 days.
    longest = api(context, "create_session_token.json", first["id"], body={"expires_in_seconds": 600})
    assert longest.status == 200, longest.body
    longest_claims = jwt.decode(longest.json()["jwt"], options={"verify_signature": False})
    assert longest_claims["exp"] - longest_claims["iat"] == 600
    for too_long in (601, 7 * 24 * 3600):
        refused = api(context, "create_session_token.json", first["id"], body={"expires_in_seconds": too_long})
        assert refused.status == 422, refused.body
        assert refused.code == "form_param_value_invalid"
        assert refused.json()["errors"][0]["meta"] == {"param_name": "expires_in_seconds"}

    revoked = api(context, "revoke_session.json", first["id"])
    assert revoked.status == 200, revoked.body
    assert revoked.json()["status"] == "revoked"
    again = api(context, "revoke_session.json", first["id"])
    assert again.status == 400, again.body
    assert again.code == "session_cannot_be_revoked_code"
    inactive = api(context, "create_session_token.json", first["id"], body={})
    assert inactive.status == 400, inactive.body
    assert inactive.code == "session_not_active"
    active_only = api(context, "list_sessions.json", query={"user_id": "user_api", "status": "active"})
    assert [s["id"] for s in active_only.json()] == [second["id"]]


@pytest.mark.parametrize("name", ["get_session.json", "revoke_session.json", "create_session_token.json"])
def test_unknown_and_malformed_ids_are_404(stack: Stack, context: Any, name: str) -> None:
    for session_id in ("sess_0000000000000000000000", "sit_0000000000000000000000", "x" * 300, "sess_\u00e9"):
        answer = api(context, name, session_id, body="{}" if name != "get_session.json" else None)
        assert answer.status == 404, session_id
        assert answer.code == "resource_not_found", session_id


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({}, "user_id"),
        ({"user_id": "u", "limit": "0"}, "limit"),
        ({"user_id": "u", "limit": "501"}, "limit"),
        ({"user_id": "u", "limit": "1e3"}, "limit"),
        ({"user_id": "u", "offset": "-1"}, "offset"),
        ({"user_id": "u", "offset": "99999999999999999999"}, "offset"),
        ({"user_id": "u", "status": "deleted"}, "status"),
        ({"user_id": "u", "status": ""}, "status"),
        ({"client_id": ""}, "client_id"),
        ({"user_id": "u", "paginated": "yes"}, "paginated"),
    ],
)
def test_bad_list_queries_are_422_naming_the_field(
    stack: Stack, context: Any, query: dict[str, str], param: str
) -> None:
    answer = api(context, "list_sessions.json", query=query)
    assert answer.status == 422, answer.body
    assert answer.json()["errors"][0]["meta"] == {"param_name": param}


def test_backend_refresh_checks_the_session_token_and_the_refresh_token(stack: Stack, context: Any) -> None:
    session = signed_in(context, user_id="user_backend")
    other = signed_in(context, user_id="user_backend")

    def call(session_id: str, **body: Any) -> Answer:
        payload = {"expired_token": session["session"], "refresh_token": session["refresh"], "request_origin": ALLOWED}
        return api(context, "refresh_session_backend.json", session_id, body={**payload, **body})

    fine = call(session["id"])
    assert fine.status == 200, fine.body
    assert jwt.decode(fine.json()["jwt"], options={"verify_signature": False})["sid"] == session["id"]
    cookie = call(session["id"], format="cookie").json()
    assert cookie["object"] == "cookies"
    assert cookie["cookies"][0].startswith("__session=")
    assert call(other["id"]).status == 401  # the path names another session
    assert call(session["id"], expired_token=other["session"]).status == 401  # another session's token
    assert call(session["id"], refresh_token=other["refresh"]).status == 401
    assert call(session["id"], expired_token="garbage").status == 401
    assert call(session["id"], format="xml").status == 422
    assert call(session["id"], unknown=1).status == 422


def test_the_sessions_api_needs_the_secret_key(stack: Stack, context: Any) -> None:
    event = load_event("get_session.json")
    event["headers"]["authorization"] = "Bearer sk_test_not_the_right_key_0000"
    assert invoke("sessions", event, context).status == 401
    event["headers"]["authorization"] = f"Bearer {SECRET_KEY}"
    assert invoke("sessions", event, context).status == 404


# --- Other methods and unknown paths under /v1/sessions (every /v1 answer no-store) ---------------


def fallback(context: Any, method: str, path: str) -> Answer:
    """A request that API Gateway hands to the sessions function through its ANY catch-all routes."""
    event = load_event(
        "session_method_not_allowed.json" if path != "/v1/sessions" else "session_list_method_not_allowed.json"
    )
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    return invoke("sessions", event, context)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v1/sessions", "GET"),
        ("DELETE", "/v1/sessions", "GET"),
        ("PUT", "/v1/sessions/sess_0000000000000000000042", "GET"),
        ("DELETE", "/v1/sessions/sess_0000000000000000000042", "GET"),
        ("GET", "/v1/sessions/sess_0000000000000000000042/revoke", "POST"),
        ("PATCH", "/v1/sessions/sess_0000000000000000000042/tokens", "POST"),
        ("OPTIONS", "/v1/sessions/sess_0000000000000000000042/refresh", "POST"),
    ],
)
def test_another_method_on_a_sessions_route_is_405_with_allow(
    stack: Stack, context: Any, method: str, path: str, allow: str
) -> None:
    answer = fallback(context, method, path)
    assert answer.status == 405
    assert answer.headers["Allow"] == allow
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.code == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/sessions/sess_0000000000000000000042/nothing", "/v1/sessions/a/b/c/d"])
def test_an_unknown_sessions_path_is_404_in_the_envelope(stack: Stack, context: Any, path: str) -> None:
    answer = fallback(context, "GET", path)
    assert answer.status == 404
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.code == "resource_not_found"


@pytest.mark.parametrize("name", ["session_method_not_allowed.json", "session_list_method_not_allowed.json"])
def test_the_example_events_of_the_sessions_fallbacks_are_405(stack: Stack, context: Any, name: str) -> None:
    answer = invoke("sessions", load_event(name), context)
    assert answer.status == 405, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
