"""``make rotate SECRET=...`` rotates a keyring of the running local stack, and a person can watch it.

The stack runs with a short cache age and activation margin (``LOCAL_PARAMETER_SecretsMaxAgeSeconds=1``,
``LOCAL_PARAMETER_KeyActivationMarginSeconds=60``: a new key signs max age + margin = 61 s after it
was added; the functions refuse a margin under 60).
Links minted before the rotation still sign in; until the new key activates, new links are still
signed with the old one; after it, with the new one; sessions verify through the JWKS throughout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from local.apigw import HttpRequest
from local.emulator import MotoServer, aws_client
from local.stack import LocalStack
from tests.e2e.conftest import ROOT, LocalStackHandle, running_stack

WATCH = {
    "LOCAL_PARAMETER_SecretsMaxAgeSeconds": "1",
    "LOCAL_PARAMETER_KeyActivationMarginSeconds": "60",
    # Session JWTs live 60 s (session.js refreshes them): long enough here for one signed before the
    # rotation to be checked against the JWKS after the new key took over.
    "LOCAL_PARAMETER_SessionTokenLifetimeSeconds": "600",
    "LOCAL_PARAMETER_EmailSender": "",
}


def make_rotate(stack: LocalStackHandle, secret: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCAL_STACK_STATE": str(stack.state_path)}
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        ["make", "--no-print-directory", "rotate", f"SECRET={secret}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def accept(stack: LocalStackHandle, token: str) -> str:
    """Sign in with a link's token; the session JWT."""
    answer = httpx.post(f"{stack.base_url}/accept-token", json={"token": token}, headers={"accept": "application/json"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["session_token"])


def jwks_kids(stack: LocalStackHandle) -> set[str]:
    return {key["kid"] for key in httpx.get(f"{stack.base_url}/.well-known/jwks.json").json()["keys"]}


def verify(stack: LocalStackHandle, session: str) -> dict[str, Any]:
    """A session verified as an app would: through the JWKS URL, the key chosen by kid."""
    key = jwt.PyJWKClient(f"{stack.base_url}/.well-known/jwks.json", cache_keys=False).get_signing_key_from_jwt(session)
    claims: dict[str, Any] = jwt.decode(session, key.key, algorithms=["RS256"], issuer=stack.base_url)
    return claims


def keys(stack: LocalStackHandle, secret: str) -> list[dict[str, Any]]:
    arn = stack.state["secrets"][secret]
    value = stack.aws("secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    return list(json.loads(value)["keys"])


@pytest.mark.slow
def test_watching_a_rotation_of_both_keyrings(tmp_path: Path) -> None:
    with running_stack(tmp_path / "stack", env=WATCH) as stack:
        assert "SecretsMaxAgeSeconds=1 is past the template's MinValue 60" in stack.output()
        old_link = stack.mint("user_before")
        old_ticket_kid = kid(old_link["token"])
        first_session = accept(stack, stack.mint("user_first")["token"])
        old_session_kid = kid(first_session)
        assert verify(stack, first_session)["sub"] == "user_first"

        tickets, sessions = make_rotate(stack, "TicketSigningKeyringSecret"), make_rotate(stack, "SessionKeyringSecret")
        assert tickets.returncode == 0, tickets.stderr + sessions.stderr
        assert sessions.returncode == 0, tickets.stderr + sessions.stderr
        added_ticket = re.search(r"added (ed25519-\S+): signs from .* \(in (\d+) s\)", tickets.stdout)
        added_session = re.search(r"added (rsa-\S+): signs from", sessions.stdout)
        assert added_ticket, tickets.stdout + sessions.stdout
        assert added_session, tickets.stdout + sessions.stdout
        assert 55 <= int(added_ticket.group(2)) <= 61
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            assert step in tickets.stdout
        assert "PRIVATE KEY" not in sessions.stdout
        assert '"secret"' not in tickets.stdout
        assert "private_key" not in tickets.stdout
        new_ticket_kid, new_session_kid = added_ticket.group(1), added_session.group(1)

        time.sleep(2.5)  # every function's cached keyring is older than SecretsMaxAgeSeconds now
        # Before activation: the new keys are published and verifiable, but nothing signs with them.
        assert {old_session_kid, new_session_kid} <= jwks_kids(stack)
        during = stack.mint("user_during")
        assert kid(during["token"]) == old_ticket_kid
        during_session = accept(stack, during["token"])
        assert kid(during_session) == old_session_kid
        assert verify(stack, during_session)["sub"] == "user_during"

        activates = max(
            int(key["activates_at"])
            for key in keys(stack, "TicketSigningKeyringSecret") + keys(stack, "SessionKeyringSecret")
        )
        time.sleep(max(0.0, activates - time.time()) + 2.5)

        # After activation: new links and sessions use the new keys; the old link still signs in.
        after = stack.mint("user_after")
        assert kid(after["token"]) == new_ticket_kid
        old_link_session = accept(stack, old_link["token"])
        assert kid(old_link_session) == new_session_kid
        assert verify(stack, old_link_session)["sub"] == "user_before"
        assert verify(stack, accept(stack, after["token"]))["sub"] == "user_after"
        # Sessions signed before the rotation still verify: the retired key stays in the JWKS.
        assert verify(stack, first_session)["sub"] == "user_first"
        assert verify(stack, during_session)["sub"] == "user_during"
        assert "POST /_local/rotate -> 200" in stack.output()


def test_the_rotate_route_wants_the_key_and_a_rotated_secret(local_stack: LocalStackHandle) -> None:
    url = f"{local_stack.base_url}/_local/rotate"
    assert httpx.post(url, json={"secret": "TicketSigningKeyringSecret"}).status_code == 401
    wrong = httpx.post(
        url, json={"secret": "TicketSigningKeyringSecret"}, headers={"Authorization": "Bearer sk_test_nope"}
    )
    assert wrong.status_code == 401
    authorised = {"Authorization": f"Bearer {local_stack.secret_key}"}
    # The retired HMAC keyring and the verification keyring have no rotation schedule.
    for body in (
        {"secret": "ApiKeysSecret"},
        {"secret": "TicketKeyringSecret"},
        {"secret": "TicketVerificationKeyringSecret"},
        {"secret": 7},
        {},
        [],
        "x",
    ):
        refused = httpx.post(url, json=body, headers=authorised)
        assert refused.status_code == 400, body
        assert refused.json()["message"].endswith("SessionKeyringSecret, TicketSigningKeyringSecret")
    assert httpx.get(url, headers=authorised).status_code == 405


def test_make_rotate_names_the_keyrings_when_secret_is_missing(local_stack: LocalStackHandle) -> None:
    done = make_rotate(local_stack, "")
    assert done.returncode != 0
    assert "SessionKeyringSecret, TicketSigningKeyringSecret" in done.stderr


def test_a_rotation_the_functions_refuse_leaves_the_keyring_as_it_was(restore_environ: None) -> None:
    # A 59 s margin: some warm function could meet a key it cannot verify yet. The functions refuse
    # to start with it (CloudFormation would refuse the parameter; the local stack takes it).
    env = {"LOCAL_PARAMETER_KeyActivationMarginSeconds": "59"}
    with MotoServer() as moto:
        stack = LocalStack.build(url="http://127.0.0.1:3999", endpoint=moto.endpoint, env=env, processes=True)
        try:
            assert any("KeyActivationMarginSeconds=59" in note for note in stack.notes)
            stack.activate()
            stack.emulator_lock = moto.lock
            secrets = aws_client("secretsmanager", moto.endpoint)
            arn = stack.resources.ref("TicketSigningKeyringSecret")

            def current() -> str:
                return str(secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])

            before = current()
            body = json.dumps({"secret": "TicketSigningKeyringSecret"}).encode()
            headers = [("Host", "127.0.0.1:3999"), ("Authorization", f"Bearer {stack.secret_key}")]
            request = HttpRequest("POST", "/_local/rotate", headers, body)
            answer, route = stack.call(request, "127.0.0.1:3999")
            assert route == "POST /_local/rotate"
            assert answer.status == 422, answer.body
            message = json.loads(answer.body)["message"]
            assert message.startswith("createSecret failed: ConfigError: KEY_ACTIVATION_MARGIN_SECONDS: 59 is below")
            assert current() == before
        finally:
            stack.close()
