"""POST /v1/sign_in_tokens and /revoke through the real handler, with the events/ files, on moto."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from tests.conftest import Stack, load_event
from tests.handlers import call_mint, create_event


def test_create_returns_the_clerk_object_and_stores_no_token(stack: Stack, context: Any) -> None:
    status, headers, body = call_mint(create_event({"user_id": "user_123"}), context)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"object", "id", "status", "user_id", "token", "url", "created_at", "updated_at"}
    assert body["object"] == "sign_in_token"
    assert body["status"] == "pending"
    assert body["user_id"] == "user_123"
    assert body["id"].startswith("sit_")
    assert body["url"] == f"https://links.example.com/accept-token?token={body['token']}"
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"] > 1_700_000_000_000
    header = jwt.get_unverified_header(body["token"])
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert header["alg"] == "EdDSA"  # Ed25519: only the mint holds the private key
    assert header["kid"]
    assert claims["sid"] == body["id"]
    assert claims["st"] == "sign_in_token"
    assert claims["eis"] == 2592000
    assert claims["exp"] - claims["iat"] == 2592000
    item = stack.item(body["id"])
    assert item is not None
    assert item["status"]["S"] == "pending"
    assert item["user_id"]["S"] == "user_123"
    assert body["token"] not in json.dumps(item)


def test_revoke_then_revoke_again(stack: Stack, context: Any) -> None:
    _, _, minted = call_mint(create_event({"user_id": "user_9"}), context)
    event = load_event("revoke_sign_in_token.json")
    event["pathParameters"] = {"sign_in_token_id": minted["id"]}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{minted['id']}/revoke"
    status, _, body = call_mint(event, context)
    assert status == 200
    assert body["status"] == "revoked"
    assert body["id"] == minted["id"]
    assert body["updated_at"] >= minted["updated_at"]
    status, _, body = call_mint(event, context)
    assert status == 400
    assert body["errors"][0]["code"] == "sign_in_token_cannot_be_revoked_code"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({}, 422, "form_param_missing", "user_id"),
        ({"user_id": None}, 422, "form_param_missing", "user_id"),
        ({"user_id": ""}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "u" * 257}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "a\u0000b"}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": 42}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "u", "expires_in_seconds": 0}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": 2592001}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": "60"}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": 1.5}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "expires_in_seconds": True}, 422, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "u", "redirect_url": "https://evil.example"}, 422, "form_param_value_invalid", "redirect_url"),
        # URLs urlsplit cannot parse (ValueError) are the field's 422, never a 500.
        ({"user_id": "u", "redirect_url": "https://[x/"}, 422, "form_param_value_invalid", "redirect_url"),
        (
            {"user_id": "u", "redirect_url": "https://app.example.com]/"},
            422,
            "form_param_value_invalid",
            "redirect_url",
        ),
        ({"user_id": "u", "redirect_url": "http://[::1"}, 422, "form_param_value_invalid", "redirect_url"),
        (
            {"user_id": "u", "redirect_url": "https://app.example.com\uff0fevil.com/"},
            422,
            "form_param_value_invalid",
            "redirect_url",
        ),
        (
            {"user_id": "u", "redirect_url": "https://app.example.com:x/"},
            422,
            "form_param_value_invalid",
            "redirect_url",
        ),
        ({"user_id": "u", "org_id": 7}, 422, "form_param_value_invalid", "org_id"),
        ({"user_id": "u", "nope": 1}, 422, "form_param_unknown", "nope"),
        ("{not json", 400, "request_body_invalid", None),
        ("[1, 2]", 400, "request_body_invalid", None),
        ('{"user_id": "' + "x" * 17000 + '"}', 413, "request_body_too_large", None),
    ],
)
def test_bad_bodies(stack: Stack, context: Any, body: Any, status: int, code: str, param: str | None) -> None:
    got, headers, envelope = call_mint(create_event(body), context)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    error = envelope["errors"][0]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert isinstance(error["long_message"], str)
    assert envelope["clerk_trace_id"] == "req-0001"
    if param:
        assert error["meta"] == {"param_name": param}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "authorization_header_format_invalid"),
        ("", "authorization_header_format_invalid"),
        ("Basic abc", "authorization_header_format_invalid"),
        ("Bearer", "authorization_header_format_invalid"),
        ("Bearer two words", "authorization_header_format_invalid"),
        ("Bearer sk_test_wrong_key_000000000000", "clerk_key_invalid"),
    ],
)
def test_bad_authorization(stack: Stack, context: Any, authorization: str | None, code: str) -> None:
    event = create_event({"user_id": "user_1"})
    if authorization is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = authorization
    status, _, body = call_mint(event, context)
    assert status == 401
    assert body["errors"][0]["code"] == code


def test_unknown_id_is_404(stack: Stack, context: Any) -> None:
    status, _, body = call_mint(load_event("revoke_sign_in_token.json"), context)
    assert status == 404
    assert body["errors"][0]["code"] == "resource_not_found"


def test_revoke_reads_no_body(stack: Stack, context: Any) -> None:
    _, _, minted = call_mint(create_event({"user_id": "user_body"}), context)
    event = load_event("revoke_sign_in_token.json")
    event["pathParameters"] = {"sign_in_token_id": minted["id"]}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{minted['id']}/revoke"
    event["body"] = "not json at all"
    status, _, body = call_mint(event, context)
    assert status == 200
    assert body["status"] == "revoked"


def test_without_an_accept_base_url_links_use_the_stacks_published_url(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published URL knows what the request cannot: a CloudFront distribution in front of the
    API (its requests reach the API on the execute-api host)."""
    import boto3

    from tests.conftest import reset_caches

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/stack/accept-base-url", Value="https://d111.cloudfront.net", Type="String"
    )
    monkeypatch.setenv("ACCEPT_BASE_URL", "")
    monkeypatch.setenv("ACCEPT_BASE_URL_PARAMETER", "/stack/accept-base-url")
    monkeypatch.setenv("LINKS_BEHIND_CLOUDFRONT", "true")
    reset_caches()
    status, _, body = call_mint(create_event({"user_id": "user_cf"}), context)
    assert status == 200
    assert body["url"] == f"https://d111.cloudfront.net/accept-token?token={body['token']}"


def test_an_unreadable_published_url_falls_back_to_the_requests_host(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import reset_caches

    monkeypatch.setenv("ACCEPT_BASE_URL", "")
    monkeypatch.setenv("ACCEPT_BASE_URL_PARAMETER", "/stack/not-there")
    monkeypatch.setenv("LINKS_BEHIND_CLOUDFRONT", "true")
    reset_caches()
    event = create_event({"user_id": "user_host"})
    status, _, body = call_mint(event, context)
    host = event["requestContext"]["domainName"]
    assert status == 200
    assert body["url"] == f"https://{host}/accept-token?token={body['token']}"


# --- Cache-Control: the mint answer carries a live token; nothing under /v1 is cached --------------


def routed(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    """A request that API Gateway hands to the mint function through its ``ANY /v1/{proxy+}`` route."""
    event = create_event(body or "")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /v1/{proxy+}"
    return event


def test_every_v1_answer_says_no_store(stack: Stack, context: Any) -> None:
    status, headers, minted = call_mint(create_event({"user_id": "user_cache"}), context)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    revoke = load_event("revoke_sign_in_token.json")
    revoke["pathParameters"] = {"sign_in_token_id": minted["id"]}
    revoke["rawPath"] = revoke["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{minted['id']}/revoke"
    answers = [
        (200, call_mint(revoke, context)),
        (400, call_mint(revoke, context)),  # already revoked
        (404, call_mint(load_event("revoke_sign_in_token.json"), context)),
        (422, call_mint(create_event({}), context)),
        (401, call_mint(create_event({"user_id": "u"}, authorization="Bearer nope"), context)),
        (400, call_mint(create_event("{"), context)),
        (404, call_mint(routed("GET", "/v1/nothing/here"), context)),
        (404, call_mint(routed("POST", "/v1/sign_in_tokens/sit_x/revoke/more"), context)),
    ]
    for expected, (got, answer_headers, body) in answers:
        assert got == expected, body
        assert answer_headers["Cache-Control"] == "no-store", (expected, answer_headers)
        assert answer_headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/sign_in_tokens"),
        ("PUT", "/v1/sign_in_tokens"),
        ("DELETE", "/v1/sign_in_tokens"),
        ("PATCH", "/v1/sign_in_tokens"),
        ("OPTIONS", "/v1/sign_in_tokens"),
        ("HEAD", "/v1/sign_in_tokens"),
        ("GET", "/v1/sign_in_tokens/sit_0000000000000000000042/revoke"),
        ("DELETE", "/v1/sign_in_tokens/sit_0000000000000000000042/revoke"),
    ],
)
def test_another_method_on_a_v1_route_is_405_with_allow(stack: Stack, context: Any, method: str, path: str) -> None:
    status, headers, body = call_mint(routed(method, path, '{"user_id": "user_405"}'), context)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"] == "application/json"
    if method != "HEAD":
        assert body["errors"][0]["code"] == "method_not_allowed"
    count = stack.dynamodb.scan(TableName=stack.table_name, Select="COUNT")["Count"]
    assert count == 0  # nothing minted


def test_the_example_event_of_the_fallback_route_is_a_405(stack: Stack, context: Any) -> None:
    status, headers, body = call_mint(load_event("v1_method_not_allowed.json"), context)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert headers["Cache-Control"] == "no-store"
    assert body["errors"][0]["code"] == "method_not_allowed"
    assert body["clerk_trace_id"] == "req-0405"
