"""The /v1 API over real HTTP against the local stack: the printed curl, revoke, every error of the contract."""

from __future__ import annotations

import base64
import json
import re
import shlex
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import LocalStackHandle

MINT = "/v1/sign_in_tokens"


def revoke_path(token_id: str) -> str:
    return f"/v1/sign_in_tokens/{token_id}/revoke"


def parse_curl(command: str) -> tuple[str, str, dict[str, str], str]:
    """Method, URL, headers and body of a ``curl URL -X M -H 'K: V' ... -d BODY`` command."""
    words = shlex.split(command)
    assert words[0] == "curl"
    url, method, headers, body = "", "GET", {}, ""
    index = 1
    while index < len(words):
        word = words[index]
        if word == "-X":
            method, index = words[index + 1], index + 2
        elif word == "-H":
            name, _, value = words[index + 1].partition(":")
            headers[name.strip()] = value.strip()
            index += 2
        elif word == "-d":
            body, index = words[index + 1], index + 2
        else:
            url, index = word, index + 1
    return method, url, headers, body


def assert_error(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    envelope: dict[str, Any] = response.json()
    error = envelope["errors"][0]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["long_message"], str)
    assert error["long_message"]
    assert envelope["clerk_trace_id"]
    if param is not None:
        assert error["meta"] == {"param_name": param}
    return envelope


def test_the_printed_curl_mints_a_link(local_stack: LocalStackHandle) -> None:
    lines = [line.strip() for line in local_stack.output().splitlines() if line.strip().startswith("curl ")]
    assert lines, local_stack.output()
    command = lines[0]
    assert command.startswith(f"curl '{local_stack.base_url}/v1/sign_in_tokens' -X POST ")
    assert f"Authorization: Bearer {local_stack.secret_key}" in command
    method, url, headers, body = parse_curl(command)
    assert headers == {"Authorization": f"Bearer {local_stack.secret_key}", "Content-Type": "application/json"}
    assert json.loads(body) == {"user_id": "user_123"}

    response = httpx.request(method, url, headers=headers, content=body, timeout=30)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    minted = response.json()
    assert set(minted) == {"object", "id", "status", "user_id", "token", "url", "created_at", "updated_at"}
    assert minted["object"] == "sign_in_token"
    assert minted["status"] == "pending"
    assert minted["user_id"] == "user_123"
    assert minted["url"] == f"{local_stack.base_url}/accept-token?token={minted['token']}"
    assert jwt.get_unverified_header(minted["token"])["alg"] == "EdDSA"
    item = local_stack.item(minted["id"])
    assert item is not None
    assert item["status"]["S"] == "pending"
    assert minted["token"] not in json.dumps(item)


def test_the_state_file_matches_the_banner(local_stack: LocalStackHandle) -> None:
    output = local_stack.output()
    assert local_stack.base_url in output
    assert local_stack.secret_key in output
    assert local_stack.moto_endpoint in output
    assert local_stack.state["curl"] in output
    # Clerk's Frontend API: the publishable key of the stack's host, and the stack's URL as proxyUrl.
    clerk = local_stack.state["clerk_frontend"]
    assert clerk["publishable_key"] in output
    assert clerk["proxy_url"] == local_stack.base_url
    host = local_stack.base_url.split("://", 1)[1]
    assert base64.b64decode(clerk["publishable_key"].removeprefix("pk_live_")).decode() == f"{host}$"


def test_revoke_then_revoke_again(api: httpx.Client, local_stack: LocalStackHandle) -> None:
    minted = api.post(MINT, json={"user_id": "user_revoke", "expires_in_seconds": 3600}).json()
    # As the JS SDK sends it: an empty body with a JSON content type.
    response = api.post(revoke_path(minted["id"]), content=b"", headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    revoked = response.json()
    assert revoked["status"] == "revoked"
    assert revoked["id"] == minted["id"]
    assert revoked["url"] is None
    assert "token" not in revoked
    assert revoked["updated_at"] >= minted["updated_at"]
    assert revoked["created_at"] == minted["created_at"]
    item = local_stack.item(minted["id"])
    assert item is not None
    assert item["status"]["S"] == "revoked"

    assert_error(api.post(revoke_path(minted["id"])), 400, "sign_in_token_cannot_be_revoked_code")


@pytest.mark.parametrize("token_id", ["sit_0000000000000000000000", "not-an-id", "sit_%2E%2E"])
def test_revoke_unknown_id_is_404(api: httpx.Client, token_id: str) -> None:
    assert_error(api.post(revoke_path(token_id)), 404, "resource_not_found")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({}, 422, "form_param_missing", "user_id"),
        ({"user_id": None}, 422, "form_param_missing", "user_id"),
        ({"user_id": ""}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "   "}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "u" * 257}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "a\u0000b"}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "a\nb"}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": 42}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": ["u"]}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "u", "expires_in_seconds": 0}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": -5}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": 2592001}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": "60"}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": 1.5}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": True}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "redirect_url": "https://evil.example"}, 422, "form_param_value_invalid", "redirect_url"),
        ({"user_id": "u", "redirect_url": 5}, 422, "form_param_value_invalid", "redirect_url"),
        ({"user_id": "u", "org_id": 7}, 422, "form_param_value_invalid", "org_id"),
        ({"user_id": "u", "nope": 1}, 422, "form_param_unknown", "nope"),
    ],
)
def test_bad_fields(api: httpx.Client, body: Any, status: int, code: str, param: str) -> None:
    assert_error(api.post(MINT, json=body), status, code, param)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "request_body_invalid"),
        (b"[1, 2]", "application/json", 400, "request_body_invalid"),
        (b'"user_123"', "application/json", 400, "request_body_invalid"),
        (b"\xff\xfe{}", "application/json", 400, "request_body_invalid"),
        (b"user_id=user_123", "application/x-www-form-urlencoded", 400, "request_body_invalid"),  # base64 event body
        (b'{"user_id": "' + b"x" * 17000 + b'"}', "application/json", 413, "request_body_too_large"),
    ],
)
def test_bad_bodies(api: httpx.Client, content: bytes, content_type: str, status: int, code: str) -> None:
    assert_error(api.post(MINT, content=content, headers={"Content-Type": content_type}), status, code)


def test_an_empty_body_is_a_missing_user_id(api: httpx.Client) -> None:
    assert_error(api.post(MINT, content=b""), 422, "form_param_missing", "user_id")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "authorization_header_format_invalid"),
        ("", "authorization_header_format_invalid"),
        ("Basic dXNlcjpwYXNz", "authorization_header_format_invalid"),
        ("Bearer", "authorization_header_format_invalid"),
        ("Bearer two words", "authorization_header_format_invalid"),
        ("Bearer " + "k" * 2000, "authorization_header_format_invalid"),
        ("Bearer sk_test_wrong_key_000000000000", "clerk_key_invalid"),
    ],
)
def test_bad_authorization(local_stack: LocalStackHandle, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (MINT, revoke_path("sit_0000000000000000000000")):
        response = httpx.post(local_stack.base_url + path, json={"user_id": "user_1"}, headers=headers, timeout=30)
        assert_error(response, 401, code)


def test_each_request_has_its_own_trace_id(api: httpx.Client) -> None:
    first = api.post(MINT, json={}).json()["clerk_trace_id"]
    second = api.post(MINT, json={}).json()["clerk_trace_id"]
    assert first != second


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/v2/sign_in_tokens"), ("HEAD", "/nothing")])
def test_unmatched_route_is_api_gateways_404(local_stack: LocalStackHandle, method: str, path: str) -> None:
    response = httpx.request(method, local_stack.base_url + path, timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert response.json() == {"message": "Not Found"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing", 404, "resource_not_found"),
        ("POST", "/v1/sign_in_tokens/sit_1/revoke/extra", 404, "resource_not_found"),
        ("POST", "/v1/sign_in_tokens/sit_1", 404, "resource_not_found"),
        ("GET", MINT, 405, "method_not_allowed"),  # a route exists for POST only
        ("DELETE", MINT, 405, "method_not_allowed"),
        ("PUT", revoke_path("sit_1"), 405, "method_not_allowed"),
        ("HEAD", MINT, 405, None),
    ],
)
def test_an_unmatched_v1_request_is_answered_in_the_envelope_and_not_cached(
    api: httpx.Client, method: str, path: str, status: int, code: str | None
) -> None:
    """Through the template's ANY /v1/{proxy+} route: Clerk's envelope, Cache-Control: no-store."""
    response = api.request(method, path)
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    if status == 405:
        assert response.headers["allow"] == "POST"
    if code is not None:
        assert_error(response, status, code)


def test_every_v1_answer_says_no_store(local_stack: LocalStackHandle, api: httpx.Client) -> None:
    """The mint answer carries a live token: no cache (browser, proxy, CDN) may keep it."""
    minted = api.post(MINT, json={"user_id": "user_no_store"})
    token_id = minted.json()["id"]
    answers = [
        (minted, 200),
        (api.post(revoke_path(token_id)), 200),
        (api.post(revoke_path(token_id)), 400),
        (api.post(revoke_path("sit_0000000000000000000000")), 404),
        (api.post(MINT, json={"user_id": "u", "redirect_url": "https://[x/"}), 422),
        (api.post(MINT, content=b"{"), 400),
        (httpx.post(local_stack.base_url + MINT, json={"user_id": "u"}, timeout=30), 401),
    ]
    for response, status in answers:
        assert response.status_code == status, response.text
        assert response.headers["cache-control"] == "no-store", (status, response.headers)


def test_a_body_over_api_gateways_limit_is_413(api: httpx.Client) -> None:
    response = api.post(MINT, content=b"x" * (10 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


def test_the_request_log_never_holds_a_token_or_the_key(api: httpx.Client, local_stack: LocalStackHandle) -> None:
    minted = api.post(MINT, json={"user_id": "user_log"}).json()
    api.post(revoke_path(minted["id"]))
    output = local_stack.output()
    _, _, requests = output.partition(local_stack.state["curl"])
    assert minted["token"] not in output
    assert local_stack.secret_key not in requests  # printed once, in the banner only
    assert re.search(r"^POST /v1/sign_in_tokens -> 200 \(\d+ ms\)$", requests, re.MULTILINE)
    assert re.search(r"^POST /v1/sign_in_tokens/\{sign_in_token_id\}/revoke -> 200 \(\d+ ms\)$", requests, re.MULTILINE)
