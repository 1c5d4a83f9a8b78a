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
from signin_links.errors import SignInLinksError
from signin_links.keyring import (
    ED25519,
    ED25519_PUBLIC,
    HMAC,
    RSA,
    Keyring,
    generate_key,
    new_keyring_json,
    new_ticket_keyrings_json,
    parse_keyring,
)
from signin_links.rotation.policy import RotationError
from signin_links.rotation.secrets_manager import STEPS, KeyringRotations
from signin_links.ticket_verification import verify_ticket
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
    """The rotation function's own composition root builds its KeyringRotations (client, settings);
    only the clock of what it built is this test's, as in every build after a ``reset_caches()``."""
    clock = Clock()
    app = load_function("rotate_keys")
    build = app.keyring_rotation.__wrapped__  # the handler's composition root, without its cache

    @cache
    def keyring_rotation() -> KeyringRotations:
        rotations: KeyringRotations = build()
        rotations.clock = clock
        return rotations

    monkeypatch.setattr(app, "keyring_rotation", keyring_rotation)
    return clock


@pytest.fixture
def ticket_secret(stack: Stack) -> str:
    return stack.env["TICKET_SIGNING_KEYRING_SECRET_ID"]


@pytest.fixture
def public_secret(stack: Stack) -> str:
    return stack.env["TICKET_VERIFICATION_KEYRING_SECRET_ID"]


@pytest.fixture
def session_secret(stack: Stack) -> str:
    return stack.env["SESSION_KEYRING_SECRET_ID"]


def start_with_an_old_keyring(stack: Stack, secret_id: str, kind: str) -> None:
    """A keyring whose one key has been signing for a while (so the rotation clock may go back);
    a ticket signing keyring's public half published as the stack's first rotation would."""
    if kind == ED25519:
        signing, public = new_ticket_keyrings_json(now=OLD)
        stack.secretsmanager.put_secret_value(SecretId=secret_id, SecretString=signing)
        stack.secretsmanager.put_secret_value(
            SecretId=stack.env["TICKET_VERIFICATION_KEYRING_SECRET_ID"], SecretString=public
        )
    else:
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


def published(stack: Stack) -> Keyring:
    """The ticket verification keyring as the accept reads it."""
    return keyring(stack, stack.env["TICKET_VERIFICATION_KEYRING_SECRET_ID"], ED25519_PUBLIC)


def verify(stack: Stack, token: str) -> str:
    """Verify a sign-in token as the accept does, with the published public keys only; its error
    code if it fails."""
    try:
        verify_ticket(token, published(stack), now=time.time(), leeway=30)
    except SignInLinksError as exc:
        return exc.code.wire_code
    return "ok"


def assert_published(stack: Stack) -> None:
    """The verification keyring is the signing keyring's public half: same keys, no private one."""
    signing = keyring(stack, stack.env["TICKET_SIGNING_KEYRING_SECRET_ID"], ED25519)
    raw = current_raw(stack, stack.env["TICKET_VERIFICATION_KEYRING_SECRET_ID"])
    assert "private_key" not in raw
    assert parse_keyring(raw, ED25519_PUBLIC).to_json() == signing.public().to_json()


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


def test_first_rotation_gives_an_empty_ticket_keyring_an_active_key_and_publishes_its_public_half(
    stack: Stack, ticket_secret: str, public_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    """As on a fresh stack: both ticket keyrings are created empty; the rotation on creation gives
    the signing keyring a key that signs at once and publishes its public half before the mint sees it."""
    stack.secretsmanager.put_secret_value(SecretId=ticket_secret, SecretString='{"kind": "ed25519", "keys": []}')
    stack.secretsmanager.put_secret_value(SecretId=public_secret, SecretString='{"kind": "ed25519-public", "keys": []}')
    reset_caches()
    token = begin_rotation(stack, ticket_secret)
    step(ticket_secret, token, "createSecret", context)
    assert step(ticket_secret, token, "setSecret", context)["outcome"] == "published 1 public keys"
    (key,) = published(stack).keys  # public before the signing keyring's AWSCURRENT moves
    assert "AWSCURRENT" not in stages(stack, ticket_secret)[token]
    for name in ("testSecret", "finishSecret"):
        step(ticket_secret, token, name, context)
    ring = keyring(stack, ticket_secret, ED25519)
    assert ring.kids == (key.kid,)
    assert ring.current().activates_at == int(clock.now)  # nothing to verify yet: it signs at once
    assert_published(stack)
    link = mint(context)
    assert kid_of(link["token"]) == key.kid
    assert jwt.get_unverified_header(link["token"])["alg"] == "EdDSA"
    status, body = accept(link["token"])
    assert status == 200, body


# -- old links, new links ----------------------------------------------------------------------------


def test_new_key_signs_only_after_its_activation_delay(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    old_kid = keyring(stack, ticket_secret, ED25519).current().kid
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    ring = keyring(stack, ticket_secret, ED25519)
    (new,) = [key for key in ring.keys if key.kid != old_kid]
    assert new.activates_at == int(clock.now) + DELAY
    assert kid_of(mint(context)["token"]) == old_kid  # every function can verify `new` before it signs
    assert ring.current(now=clock.now + DELAY).kid == new.kid
    assert_published(stack)
    assert published(stack).get(new.kid) is not None


def test_rotation_mid_campaign_breaks_no_outstanding_link(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, ticket_secret, ED25519)
    old_links = [mint(context, f"user_{n}") for n in range(3)]
    old_kid = kid_of(old_links[0]["token"])
    clock.now = time.time() - DELAY - 1  # the rotation happened long enough ago for its key to be active
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()

    new_link = mint(context, "user_new")
    assert kid_of(new_link["token"]) != old_kid
    assert kid_of(new_link["token"]) == keyring(stack, ticket_secret, ED25519).current().kid
    for link in old_links:
        assert verify(stack, link["token"]) == "ok"
        status, body = accept(link["token"])
        assert status == 200, body
        assert body["status"] == "complete"
        assert body["user_id"] == link["user_id"]
    status, body = accept(new_link["token"])
    assert status == 200
    assert body["user_id"] == "user_new"


def test_a_retired_keys_private_half_is_destroyed_at_the_next_rotation_and_its_links_still_work(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, ticket_secret, ED25519)
    link = mint(context)
    old_kid = kid_of(link["token"])
    clock.now = time.time() - 2 * DELAY - 2
    rotate(stack, ticket_secret, context)  # the second key activates DELAY later: the first retires
    assert keyring(stack, ticket_secret, ED25519).get(old_kid).seed  # type: ignore[union-attr]
    clock.now += DELAY + 1
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    retired = keyring(stack, ticket_secret, ED25519).get(old_kid)
    assert retired is not None and retired.public and not retired.seed
    assert '"private_key"' in current_raw(stack, ticket_secret)  # the keys that may still sign keep theirs
    assert_published(stack)
    assert verify(stack, link["token"]) == "ok"
    status, body = accept(link["token"])
    assert status == 200, body


def test_old_key_is_dropped_after_retention_and_its_links_become_invalid(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, accept: AcceptCall
) -> None:
    start_with_an_old_keyring(stack, ticket_secret, ED25519)
    link = mint(context)
    old_kid = kid_of(link["token"])
    start = time.time() - DELAY - 1
    clock.now = start
    rotate(stack, ticket_secret, context)  # old key retires at start + DELAY
    retired = start + DELAY

    clock.now = retired + TICKET_RETENTION - 1  # one second short: still kept
    rotate(stack, ticket_secret, context)
    assert keyring(stack, ticket_secret, ED25519).get(old_kid) is not None

    clock.now = retired + TICKET_RETENTION
    rotate(stack, ticket_secret, context)
    functions_reread_secrets()
    ring = keyring(stack, ticket_secret, ED25519)
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
    assert len(parse_keyring(pending, ED25519).keys) == 2
    assert_published(stack)


@pytest.mark.parametrize("crashed_after", ["createSecret", "setSecret", "testSecret"])
def test_interrupted_rotation_rerun_from_the_start_adds_exactly_one_key(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any, crashed_after: str
) -> None:
    before = keyring(stack, ticket_secret, ED25519)
    token = begin_rotation(stack, ticket_secret)
    for name in STEPS[: STEPS.index(crashed_after) + 1]:
        step(ticket_secret, token, name, context)
    assert keyring(stack, ticket_secret, ED25519).kids == before.kids  # nothing switched yet
    for name in STEPS:  # Secrets Manager runs the rotation again with the same token
        step(ticket_secret, token, name, context)
    after = keyring(stack, ticket_secret, ED25519)
    assert after.kids[: len(before.kids)] == before.kids
    assert len(after.kids) == len(before.kids) + 1
    assert "AWSCURRENT" in stages(stack, ticket_secret)[token]


def test_abandoned_rotation_is_superseded_by_the_next_one(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    before = keyring(stack, ticket_secret, ED25519)
    abandoned = begin_rotation(stack, ticket_secret)
    step(ticket_secret, abandoned, "createSecret", context)
    token = rotate(stack, ticket_secret, context)
    after = keyring(stack, ticket_secret, ED25519)
    assert len(after.kids) == len(before.kids) + 1
    assert "AWSCURRENT" in stages(stack, ticket_secret)[token]
    assert "AWSPENDING" not in stages(stack, ticket_secret).get(abandoned, [])


# -- refusals ------------------------------------------------------------------------------------------


def test_test_step_refuses_a_pending_keyring_that_lost_a_live_key(
    stack: Stack, ticket_secret: str, clock: Clock, context: Any
) -> None:
    live = keyring(stack, ticket_secret, ED25519).current()
    token = begin_rotation(stack, ticket_secret)
    other = generate_key(ED25519, now=0)
    stack.secretsmanager.put_secret_value(
        SecretId=ticket_secret,
        ClientRequestToken=token,
        SecretString=Keyring(kind=ED25519, keys=(other,)).to_json(),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationError, match=live.kid):
        step(ticket_secret, token, "testSecret", context)
    assert keyring(stack, ticket_secret, ED25519).kids == (live.kid,)


def test_test_step_refuses_a_verification_keyring_that_is_not_the_pending_public_half(
    stack: Stack, ticket_secret: str, public_secret: str, clock: Clock, context: Any
) -> None:
    """Whoever could write the verification keyring could make the accept trust their key: a
    rotation that finds it changed after setSecret fails, and the signing keyring stays as it was."""
    before = keyring(stack, ticket_secret, ED25519).kids
    token = begin_rotation(stack, ticket_secret)
    step(ticket_secret, token, "createSecret", context)
    step(ticket_secret, token, "setSecret", context)
    intruder = Keyring(kind=ED25519, keys=(generate_key(ED25519, now=0),)).public()
    planted = Keyring(kind=ED25519_PUBLIC, keys=(*published(stack).keys, *intruder.keys))
    stack.secretsmanager.put_secret_value(SecretId=public_secret, SecretString=planted.to_json())
    with pytest.raises(RotationError, match="not the pending keyring's public half"):
        step(ticket_secret, token, "testSecret", context)
    assert keyring(stack, ticket_secret, ED25519).kids == before
    # Run again, the rotation publishes the true public half and completes.
    for name in ("setSecret", "testSecret", "finishSecret"):
        step(ticket_secret, token, name, context)
    assert_published(stack)


def test_the_retired_hmac_keyring_and_the_verification_keyring_are_not_rotated(
    stack: Stack, public_secret: str, clock: Clock, context: Any
) -> None:
    legacy = stack.secretsmanager.create_secret(Name="retired-hmac", SecretString=new_keyring_json(HMAC))["ARN"]
    for secret in (legacy, public_secret):
        token = begin_rotation(stack, secret)
        with pytest.raises(RotationError, match="not rotated"):
            step(secret, token, "createSecret", context)


def test_setting_the_signing_keyring_needs_somewhere_to_publish(
    stack: Stack, ticket_secret: str, monkeypatch: pytest.MonkeyPatch, context: Any
) -> None:
    monkeypatch.delenv("TICKET_VERIFICATION_KEYRING_SECRET_ID")
    reset_caches()
    token = begin_rotation(stack, ticket_secret)
    step(ticket_secret, token, "createSecret", context)
    with pytest.raises(RotationError, match="TICKET_VERIFICATION_KEYRING_SECRET_ID"):
        step(ticket_secret, token, "setSecret", context)


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
