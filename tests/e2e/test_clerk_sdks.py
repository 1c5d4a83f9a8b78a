"""Clerk's official SDKs, pointed at the local stack, create and revoke sign-in tokens and parse its errors.

The only changes an application makes: the base URL and the secret key.
* Python ``clerk-backend-api``: ``Clerk(bearer_auth=key, server_url=<base URL>/v1)`` (its default
  server URL ends in ``/v1`` too).
* JavaScript ``@clerk/backend``: ``createClerkClient({secretKey, apiUrl: <base URL>})`` (it appends
  ``/v1`` itself); run by ``tests/e2e/js/clerk_sdk.mjs`` under Node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from clerk_backend_api import Clerk, models
from clerk_backend_api.utils import BackoffStrategy, RetryConfig

from tests.e2e.conftest import LocalStackHandle
from tests.e2e.npm import npm_ci

JS_DIR = Path(__file__).parent / "js"
NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False)  # a failure must fail, not back off for an hour


def python_sdk(stack: LocalStackHandle, key: str | None = None) -> Clerk:
    return Clerk(
        bearer_auth=key or stack.secret_key,
        server_url=f"{stack.base_url}/v1",
        retry_config=NO_RETRIES,
        timeout_ms=30_000,
    )


def test_python_sdk_creates_and_revokes(local_stack: LocalStackHandle) -> None:
    with python_sdk(local_stack) as clerk:
        token = clerk.sign_in_tokens.create(request={"user_id": "user_py_sdk", "expires_in_seconds": 600})
        assert token.object == models.SignInTokenObject.SIGN_IN_TOKEN
        assert token.status == models.SignInTokenStatus.PENDING
        assert token.user_id == "user_py_sdk"
        assert token.id.startswith("sit_")
        assert token.url == f"{local_stack.base_url}/accept-token?token={token.token}"
        assert local_stack.item(token.id) is not None

        revoked = clerk.sign_in_tokens.revoke(sign_in_token_id=token.id)
        assert revoked.status == models.SignInTokenStatus.REVOKED
        assert revoked.id == token.id
        assert revoked.updated_at >= token.updated_at
        item = local_stack.item(token.id)
        assert item is not None
        assert item["status"]["S"] == "revoked"


def test_python_sdk_default_expiry_is_sent_and_accepted(local_stack: LocalStackHandle) -> None:
    """The SDK sends expires_in_seconds=2592000 when the caller gives none."""
    with python_sdk(local_stack) as clerk:
        token = clerk.sign_in_tokens.create(request={"user_id": "user_py_default"})
    item = local_stack.item(token.id)
    assert item is not None
    assert item["eis"]["N"] == "2592000"


@pytest.mark.parametrize(
    ("request_body", "code", "param"),
    [
        ({"user_id": "user_py", "expires_in_seconds": 0}, "form_param_value_invalid", "expires_in_seconds"),
        ({"user_id": "", "expires_in_seconds": 60}, "form_param_value_invalid", "user_id"),
        ({"user_id": "user_py", "expires_in_seconds": 2592001}, "form_param_value_invalid", "expires_in_seconds"),
    ],
)
def test_python_sdk_parses_422_as_clerk_errors(
    local_stack: LocalStackHandle, request_body: dict[str, Any], code: str, param: str
) -> None:
    with python_sdk(local_stack) as clerk, pytest.raises(models.ClerkErrors) as raised:
        clerk.sign_in_tokens.create(request=request_body)  # type: ignore[arg-type]
    assert raised.value.status_code == 422
    error = raised.value.data.errors[0]
    assert error.code == code
    assert error.meta == {"param_name": param}
    assert error.message
    assert error.long_message


def test_python_sdk_parses_revoke_errors(local_stack: LocalStackHandle) -> None:
    with python_sdk(local_stack) as clerk:
        token = clerk.sign_in_tokens.create(request={"user_id": "user_py_twice"})
        clerk.sign_in_tokens.revoke(sign_in_token_id=token.id)
        with pytest.raises(models.ClerkErrors) as twice:
            clerk.sign_in_tokens.revoke(sign_in_token_id=token.id)
        assert twice.value.status_code == 400
        assert twice.value.data.errors[0].code == "sign_in_token_cannot_be_revoked_code"
        with pytest.raises(models.ClerkErrors) as unknown:
            clerk.sign_in_tokens.revoke(sign_in_token_id="sit_0000000000000000000000")
        assert unknown.value.status_code == 404
        assert unknown.value.data.errors[0].code == "resource_not_found"


def test_python_sdk_wrong_key_is_401_with_our_code(local_stack: LocalStackHandle) -> None:
    """The SDK has no model for 401 on this operation: it raises its generic SDKError with the body."""
    clerk = python_sdk(local_stack, key="sk_test_not_the_right_key_0000")
    with clerk, pytest.raises(models.SDKError) as raised:
        clerk.sign_in_tokens.create(request={"user_id": "user_py"})
    assert raised.value.status_code == 401
    assert json.loads(raised.value.body)["errors"][0]["code"] == "clerk_key_invalid"


def npm_ready() -> None:
    """Install the JS SDK from package-lock.json (``npm ci``) unless it is already installed."""
    npm_ci(JS_DIR, JS_DIR / "node_modules" / "@clerk" / "backend" / "package.json", why="@clerk/backend")


def test_js_sdk_creates_revokes_and_parses_errors(local_stack: LocalStackHandle) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the @clerk/backend check needs Node.js 20.9 or newer")
    npm_ready()
    completed = subprocess.run(
        ["node", "clerk_sdk.mjs"],
        cwd=JS_DIR,
        env={**os.environ, "CLERK_API_URL": local_stack.base_url, "CLERK_SECRET_KEY": local_stack.secret_key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)

    created = result["created"]
    assert created["ok"], created
    token = created["value"]
    assert token["status"] == "pending"
    assert token["userId"] == "user_js_sdk"
    assert token["id"].startswith("sit_")
    assert token["url"] == f"{local_stack.base_url}/accept-token?token={token['token']}"
    assert isinstance(token["createdAt"], int)
    assert token["createdAt"] == token["updatedAt"]
    item = local_stack.item(token["id"])
    assert item is not None
    assert item["eis"]["N"] == "600"

    revoked = result["revoked"]
    assert revoked["ok"], revoked
    assert revoked["value"]["status"] == "revoked"
    assert revoked["value"]["id"] == token["id"]

    def error(name: str) -> dict[str, Any]:
        outcome = result[name]
        assert not outcome["ok"], outcome
        assert outcome["error"]["name"] == "ClerkAPIResponseError", outcome
        assert outcome["error"]["clerkTraceId"], outcome
        failure: dict[str, Any] = outcome["error"]
        return failure

    assert error("revokedAgain")["status"] == 400
    assert error("revokedAgain")["errors"][0]["code"] == "sign_in_token_cannot_be_revoked_code"
    assert error("unknown")["status"] == 404
    assert error("unknown")["errors"][0]["code"] == "resource_not_found"
    invalid = error("invalid")
    assert invalid["status"] == 422
    assert invalid["errors"][0]["code"] == "form_param_value_invalid"
    assert invalid["errors"][0]["meta"] == {"paramName": "expires_in_seconds"}
    assert error("wrongKey")["status"] == 401
    assert error("wrongKey")["errors"][0]["code"] == "clerk_key_invalid"


# --- Sessions: the SDKs' /v1/sessions calls ----------------------------------------------------


def sign_in(stack: LocalStackHandle, user_id: str) -> dict[str, str]:
    """Redeem a fresh link over HTTP as a browser would: the session id and both cookie values."""
    token = stack.mint(user_id)["token"]
    with httpx.Client(base_url=stack.base_url, timeout=30) as browser:
        answer = browser.post("/accept-token", json={"token": token}, headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    return {
        "id": answer.json()["created_session_id"],
        "session": answer.cookies["__session"],
        "refresh": answer.cookies["__Host-refresh"],
    }


def test_python_sdk_lists_gets_tokens_refreshes_and_revokes_sessions(local_stack: LocalStackHandle) -> None:
    first = sign_in(local_stack, "user_py_sessions")
    second = sign_in(local_stack, "user_py_sessions")
    with python_sdk(local_stack) as clerk:
        listed = clerk.sessions.list(user_id="user_py_sessions")
        assert [session.id for session in listed] == [second["id"], first["id"]]
        assert all(session.status == models.Status.ACTIVE for session in listed)
        got = clerk.sessions.get(session_id=first["id"])
        assert got.user_id == "user_py_sessions"
        assert got.client_id.startswith("client_")
        assert got.expire_at > got.created_at
        assert got.abandon_at == got.expire_at

        token = clerk.sessions.create_token(session_id=first["id"], expires_in_seconds=120)
        claims = jwt.decode(token.jwt or "", options={"verify_signature": False})
        assert claims["sid"] == first["id"]
        assert claims["exp"] - claims["iat"] == 120

        refreshed = clerk.sessions.refresh(
            session_id=first["id"],
            expired_token=first["session"],
            refresh_token=first["refresh"],
            request_origin=local_stack.base_url,
        )
        assert isinstance(refreshed, models.Token)
        assert jwt.decode(refreshed.jwt, options={"verify_signature": False})["sid"] == first["id"]

        revoked = clerk.sessions.revoke(session_id=first["id"])
        assert revoked.status == models.Status.REVOKED
        assert revoked.id == first["id"]
        with pytest.raises(models.ClerkErrors) as again:
            clerk.sessions.revoke(session_id=first["id"])
        assert again.value.status_code == 400
        assert again.value.data.errors[0].code == "session_cannot_be_revoked_code"
        with pytest.raises(models.ClerkErrors) as refused:  # revoked: refresh fails at once
            clerk.sessions.refresh(
                session_id=first["id"],
                expired_token=first["session"],
                refresh_token=first["refresh"],
                request_origin=local_stack.base_url,
            )
        assert refused.value.status_code == 401
        with pytest.raises(models.ClerkErrors) as unknown:
            clerk.sessions.get(session_id="sess_0000000000000000000000")
        assert unknown.value.status_code == 404
        assert unknown.value.data.errors[0].code == "resource_not_found"
        active = clerk.sessions.list(user_id="user_py_sessions", status=models.QueryParamStatus.ACTIVE)
        assert [session.id for session in active] == [second["id"]]


def test_js_sdk_lists_gets_tokens_and_revokes_sessions(local_stack: LocalStackHandle) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the @clerk/backend check needs Node.js 20.9 or newer")
    npm_ready()
    first = sign_in(local_stack, "user_js_sessions")
    second = sign_in(local_stack, "user_js_sessions")
    completed = subprocess.run(
        ["node", "clerk_sessions.mjs"],
        cwd=JS_DIR,
        env={
            **os.environ,
            "CLERK_API_URL": local_stack.base_url,
            "CLERK_SECRET_KEY": local_stack.secret_key,
            "USER_ID": "user_js_sessions",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["list"]["ok"], result["list"]
    page = result["list"]["value"]
    assert page["totalCount"] == 2
    assert [s["id"] for s in page["data"]] == [second["id"], first["id"]]
    got = result["get"]["value"]
    assert got["id"] == second["id"]
    assert got["userId"] == "user_js_sessions"
    assert got["status"] == "active"
    assert isinstance(got["expireAt"], int)
    assert got["clientId"].startswith("client_")
    token = result["token"]["value"]
    assert jwt.decode(token["jwt"], options={"verify_signature": False})["sid"] == second["id"]
    claims = jwt.decode(result["tokenWithExpiry"]["value"]["jwt"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120
    assert result["revoked"]["ok"]
    assert result["revoked"]["value"]["status"] == "revoked"
    assert result["revokedAgain"]["error"]["status"] == 400
    assert result["revokedAgain"]["error"]["errors"][0]["code"] == "session_cannot_be_revoked_code"
    assert result["tokenOfRevoked"]["error"]["status"] == 400
    assert [s["id"] for s in result["activeOnly"]["value"]["data"]] == [first["id"]]
    assert result["unknown"]["error"]["status"] == 404
    assert result["unknown"]["error"]["errors"][0]["code"] == "resource_not_found"
