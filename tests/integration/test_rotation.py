"""Key rotation through the rotate_keys handler on moto, with links minted and accepted around it.

Secrets Manager's RotateSecret turns rotation on, stages an empty AWSPENDING version named by a
fresh ClientRequestToken, then invokes the function once per step. ``local.rotation`` does that
staging on moto (whose own ``rotate_secret`` cannot), and the tests drive the four steps through
the handler.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

import jwt
import pytest

from local import rotation as local_rotation
from signin_links import aws
from signin_links.config import get_settings
from signin_links.errors import SignInLinksError
from signin_links.keyring import HMAC, RSA, Key, Keyring, new_keyring_json, parse_keyring
from signin_links.rotation import RotationError
from signin_links.secret_rotation import STEPS, KeyringRotations
from signin_links.tickets import verify_ticket
from tests.conftest import Stack, load_event, load_function, reset_caches

DELAY = 600  # KEY_ACTIVATION_DELAY_SECONDS's default
TICKET_RETENTION = 30 * 24 * 3600 + 30  # MAX_EXPIRES_IN_SECONDS + TICKET_LEEWAY_SECONDS (defaults)
SESSION_RETENTION = 7 * 24 * 3600 + 30  # SESSION_LIFETIME_SECONDS + TICKET_LEEWAY_SECONDS (defaults)
OLD = int(time.time()) - 24 * 3600


class Clock:
    """The rotation function's clock; the minting and accepting functions keep the real one."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    app = load_function("rotate_keys")

    @cache
    def keyring_rotation() -> KeyringRotations:
        return KeyringRotations(aws.client("secretsmanager"), get_settings(), clock=clock)

    monkeypatch.setattr(app, "keyring_rotation", keyring_rotation)
    return clock


@pytest.fixture
def ticket_secret(stack: Stack) -> str:
    return stack.env["TICKET_KEYRING_SECRET_ID"]


@pytest.fixture
def session_secret(stack: Stack) -> str:
    return stack.env["SESSION_KEYRING_SECRET_ID"]


def start_with_an_old_keyring(stack: Stack, secret_id: str, kind: str) -> None:
    """A keyring whose one key has been signing for a while (so the rotation clock may go back)."""
    stack.secretsmanager.put_secret_value(SecretId=secret_id, SecretString=new_keyring_json(kind, now=OLD))
    reset_caches()


def begin_rotation(stack: Stack, secret_id: str) -> str:
    """What RotateSecret does before it invokes the function; returns the ClientRequestToken."""
    return local_rotation.begin_rotation(secret_id)


def step(secret_id: str, token: str, name: str, context: Any) -> dict[str, str]:
    event = {"SecretId": secret_id, "ClientRequestToken": token, "Step": name}
    result: dict[str, str] = load_function("rotate_keys").lambda_handler(event, context)
    return result


def rotate(stack: Stack, secret_id: str, context: Any, steps: tuple[str, ...] = STEPS) -> str:
    token = begin_rotation(stack, secret_id)
    for name in steps:
        step(secret_id, token, name, context)
    return token


def current_raw(stack: Stack, secret_id: str) -> str:
    value: str = stack.secretsmanager.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    return value


def keyring(stack: Stack, secret_id: str, kind: str) -> Keyring:
    return parse_keyring(current_raw(stack, secret_id), kind)


def stages(stack: Stack, secret_id: str) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = stack.secretsmanager.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return versions


def functions_reread_secrets() -> None:
    """What ``SECRETS_MAX_AGE_SECONDS`` passing does to every warm function."""
    from signin_links import aws

    aws.clear_provider_caches()


def mint(context: Any, user_id: str = "user_rot") -> dict[str, Any]:
    event = load_event("create_sign_in_token.json")
    event["body"] = json.dumps({"user_id": user_id})
    response = load_function("mint_link").lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]
    body: dict[str, Any] = json.loads(response["body"])
    return body


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def verify(stack: Stack, token: str) -> str:
    """Verify a sign-in token against the current ticket keyring; its error code if it fails."""
    try:
        verify_ticket(token, keyring(stack, stack.env["TICKET_KEYRING_SECRET_ID"], HMAC), now=time.time(), leeway=30)
    except SignInLinksError as exc:
        return exc.code.wire_code
    return "ok"


AcceptCall = Callable[[str], tuple[int, dict[str, Any]]]


@pytest.fixture
def accept(context: Any) -> AcceptCall:
    """POST /accept-token through the accept_token handler (JSON answer)."""

    def call(token: str) -> tuple[int, dict[str, Any]]:
        event = load_event("accept_token_post.json")
        event["headers"]["accept"] = "application/json"
        event["body"] = f"token={token}"
        response = load_function("accept_token").lambda_handler(event, context)
        return response["statusCode"], json.loads(response["body"])

    return call


# -- first keys ------------------------------------------------------------------------------------


def test_first_rotation_gives_an_empty_session_keyring_an_active_key(
    stack: Stack, session_secret: str, clock: Clock, context: Any
) -> None:
    stack.secretsmanager.put_secret_value(SecretId=session_secret, SecretString='{"kind": "rsa", "keys": []}')
    token = rotate(stack, session_secret, context)
    ring = keyring(stack, session_secret, RSA)
    (key,) = ring.keys
    assert key.activates_at == int(clock.now)  # nothing to verify yet: it signs at once
    assert ring.current().kid == key.kid
    (jwk,) = ring.jwks()["keys"]
    assert jwk["kid"] == key.kid
    assert jwk["e"] == "AQAB"
    assert key.private_key.key_size == 2048
    assert "AWSCURRENT" in stages(stack, session_secret)[token]


def test_bootstrap_ticket_keyring_keeps_its_key_through_the_first_rotation(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    seed = "B" * 64  # what the template's GenerateSecretString leaves in the secret
    stack.secretsmanager.put_secret_value(
        SecretId=ticket_secret, SecretString=json.dumps({"kind": "hmac", "keys": [], "bootstrap": seed})
    )
    reset_caches()
    before = mint(context)
    boot_kid = kid_of(before["token"])
    assert boot_kid.startswith("boot-")

    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    data = json.loads(current_raw(stack, ticket_secret))
    assert "bootstrap" not in data
    assert data["keys"][0]["kid"] == boot_kid  # an ordinary entry now, same kid and secret
    assert verify(stack, before["token"]) == "ok"
    assert kid_of(mint(context)["token"]) == boot_kid  # the new key waits for its activation


# -- old links, new links ----------------------------------------------------------------------------


def test_new_key_signs_only_after_its_activation_delay(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    old_kid = keyring(stack, ticket_secret, HMAC).current().kid
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    ring = keyring(stack, ticket_secret, HMAC)
    (new,) = [key for key in ring.keys if key.kid != old_kid]
    assert new.activates_at == int(clock.now) + DELAY
    assert kid_of(mint(context)["token"]) == old_kid  # every function can verify `new` before it signs
    assert ring.current(now=clock.now + DELAY).kid == new.kid


def test_rotation_mid_campaign_breaks_no_outstanding_link(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, ticket_secret, HMAC)
    old_links = [mint(context, f"user_{n}") for n in range(3)]
    old_kid = kid_of(old_links[0]["token"])
    clock.now = time.time() - DELAY - 1  # the rotation happened long enough ago for its key to be active
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()

    new_link = mint(context, "user_new")
    assert kid_of(new_link["token"]) != old_kid
    assert kid_of(new_link["token"]) == keyring(stack, ticket_secret, HMAC).current().kid
    for link in old_links:
        assert verify(stack, link["token"]) == "ok"
        status, body = accept(link["token"])
        assert status == 200, body
        assert body["status"] == "complete"
        assert body["user_id"] == link["user_id"]
    status, body = accept(new_link["token"])
    assert status == 200
    assert body["user_id"] == "user_new"


def test_old_key_is_dropped_after_retention_and_its_links_become_invalid(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, ticket_secret, HMAC)
    link = mint(context)
    old_kid = kid_of(link["token"])
    start = time.time() - DELAY - 1
    clock.now = start
    rotate(stack, ticket_secret, context)  # old key retires at start + DELAY
    retired = start + DELAY

    clock.now = retired + TICKET_RETENTION - 1  # one second short: still kept
    rotate(stack, ticket_secret, context)
    assert keyring(stack, ticket_secret, HMAC).get(old_kid) is not None

    clock.now = retired + TICKET_RETENTION
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    ring = keyring(stack, ticket_secret, HMAC)
    assert ring.get(old_kid) is None
    assert len(ring.keys) == 3  # the key that replaced it, and the two added since
    assert verify(stack, link["token"]) == "ticket_invalid_code"
    status, body = accept(link["token"])
    assert status == 400
    assert body["errors"][0]["code"] == "ticket_invalid_code"


# -- sessions ------------------------------------------------------------------------------------------


def test_sessions_signed_with_a_retired_key_still_verify_through_the_jwks(
    stack: Stack, session_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, session_secret, RSA)
    old_key = keyring(stack, session_secret, RSA).current()
    old_session = jwt.encode(
        {"sub": "user_1", "sid": "sess_old", "exp": int(time.time()) + 3600},
        old_key.private_key,
        algorithm="RS256",
        headers={"kid": old_key.kid},
    )
    clock.now = time.time() - DELAY - 1
    rotate(stack, session_secret, context)
    functions_reread_secrets()

    jwks = jwks_document(context)
    kids = [jwk["kid"] for jwk in jwks["keys"]]
    new_kid = keyring(stack, session_secret, RSA).current().kid
    assert set(kids) == {old_key.kid, new_kid}
    assert verify_session(old_session, jwks)["sid"] == "sess_old"

    # A session issued now is signed with the new key and verifies through the same JWKS.
    status, body = accept(mint(context)["token"])
    assert status == 200, body
    assert kid_of(body["session_token"]) == new_kid
    assert verify_session(body["session_token"], jwks)["sub"] == "user_rot"


def test_session_key_is_dropped_after_the_session_lifetime(
    stack: Stack, session_secret: str, clock: Clock, context: Any
) -> None:
    start_with_an_old_keyring(stack, session_secret, RSA)
    old_kid = keyring(stack, session_secret, RSA).current().kid
    start = time.time() - DELAY - 1
    clock.now = start
    rotate(stack, session_secret, context)
    clock.now = start + DELAY + SESSION_RETENTION - 1
    rotate(stack, session_secret, context)
    assert keyring(stack, session_secret, RSA).get(old_kid) is not None
    clock.now = start + DELAY + SESSION_RETENTION
    rotate(stack, session_secret, context)
    functions_reread_secrets()
    assert old_kid not in [jwk["kid"] for jwk in jwks_document(context)["keys"]]


def jwks_document(context: Any) -> dict[str, Any]:
    event = load_event("jwks.json")
    response = load_function("accept_token").lambda_handler(event, context)
    assert response["statusCode"] == 200
    document: dict[str, Any] = json.loads(response["body"])
    return document


def verify_session(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    key = jwt.PyJWKSet.from_dict(jwks)[kid_of(token)]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False})
    return claims


# -- idempotency and interruptions -----------------------------------------------------------------


def test_every_step_repeated_changes_nothing_further(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    token = begin_rotation(stack, ticket_secret)
    step(ticket_secret, token, "createSecret", context)
    pending = stack.secretsmanager.get_secret_value(SecretId=ticket_secret, VersionId=token)["SecretString"]
    assert step(ticket_secret, token, "createSecret", context)["outcome"] == "pending version already created"
    assert stack.secretsmanager.get_secret_value(SecretId=ticket_secret, VersionId=token)["SecretString"] == pending
    for name in ("setSecret", "setSecret", "testSecret", "testSecret", "finishSecret"):
        step(ticket_secret, token, name, context)
    after_finish = stages(stack, ticket_secret)
    assert current_raw(stack, ticket_secret) == pending
    for name in STEPS:  # Secrets Manager retrying any step after the rotation completed
        assert step(ticket_secret, token, name, context)["outcome"] == "already current"
    assert stages(stack, ticket_secret) == after_finish
    assert current_raw(stack, ticket_secret) == pending
    assert len(parse_keyring(pending, HMAC).keys) == 2


@pytest.mark.parametrize("crashed_after", ["createSecret", "setSecret", "testSecret"])
def test_interrupted_rotation_rerun_from_the_start_adds_exactly_one_key(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, crashed_after: str
) -> None:
    before = keyring(stack, ticket_secret, HMAC)
    token = begin_rotation(stack, ticket_secret)
    for name in STEPS[: STEPS.index(crashed_after) + 1]:
        step(ticket_secret, token, name, context)
    assert keyring(stack, ticket_secret, HMAC).kids == before.kids  # nothing switched yet
    for name in STEPS:  # Secrets Manager runs the rotation again with the same token
        step(ticket_secret, token, name, context)
    after = keyring(stack, ticket_secret, HMAC)
    assert after.kids[: len(before.kids)] == before.kids
    assert len(after.kids) == len(before.kids) + 1
    assert "AWSCURRENT" in stages(stack, ticket_secret)[token]


def test_abandoned_rotation_is_superseded_by_the_next_one(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    before = keyring(stack, ticket_secret, HMAC)
    abandoned = begin_rotation(stack, ticket_secret)
    step(ticket_secret, abandoned, "createSecret", context)
    token = rotate(stack, ticket_secret, context)
    after = keyring(stack, ticket_secret, HMAC)
    assert len(after.kids) == len(before.kids) + 1
    assert "AWSCURRENT" in stages(stack, ticket_secret)[token]
    assert "AWSPENDING" not in stages(stack, ticket_secret).get(abandoned, [])


# -- refusals ------------------------------------------------------------------------------------------


def test_test_step_refuses_a_pending_keyring_that_lost_a_live_key(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    live = keyring(stack, ticket_secret, HMAC).current()
    token = begin_rotation(stack, ticket_secret)
    other = Key(kid="hmac-other", created_at=0, activates_at=0, secret=b"o" * 32)
    stack.secretsmanager.put_secret_value(
        SecretId=ticket_secret,
        ClientRequestToken=token,
        SecretString=Keyring(kind=HMAC, keys=(other,)).to_json(),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationError, match=live.kid):
        step(ticket_secret, token, "testSecret", context)
    assert keyring(stack, ticket_secret, HMAC).kids == (live.kid,)


def test_steps_refuse_a_secret_that_is_not_being_rotated(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    with pytest.raises(RotationError, match="not enabled"):
        step(ticket_secret, str(uuid.uuid4()), "createSecret", context)
    begin_rotation(stack, ticket_secret)
    with pytest.raises(RotationError, match="no version"):
        step(ticket_secret, str(uuid.uuid4()), "createSecret", context)
    first = next(v for v, s in stages(stack, ticket_secret).items() if "AWSCURRENT" in s)
    assert step(ticket_secret, first, "createSecret", context)["outcome"] == "already current"
    rotate(stack, ticket_secret, context)
    assert stages(stack, ticket_secret)[first] == ["AWSPREVIOUS"]
    with pytest.raises(RotationError, match="not AWSPENDING"):
        step(ticket_secret, first, "createSecret", context)


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"SecretId": "x", "ClientRequestToken": "t", "Step": "dropSecret"},
        {"SecretId": "", "ClientRequestToken": "t", "Step": "createSecret"},
        {"SecretId": "x", "Step": "createSecret"},
    ],
)
def test_handler_refuses_events_that_are_not_rotation_steps(stack: Stack, context: Any, event: dict[str, Any]) -> None:
    with pytest.raises(RotationError):
        load_function("rotate_keys").lambda_handler(event, context)


def test_create_step_refuses_an_activation_delay_shorter_than_the_secrets_cache(
    stack: Stack, ticket_secret: str, monkeypatch: pytest.MonkeyPatch, context: Any
) -> None:
    monkeypatch.setenv("SECRETS_MAX_AGE_SECONDS", "900")
    reset_caches()
    token = begin_rotation(stack, ticket_secret)
    with pytest.raises(RotationError, match="KEY_ACTIVATION_DELAY_SECONDS"):
        step(ticket_secret, token, "createSecret", context)
