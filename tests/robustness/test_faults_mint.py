"""Fault injection on the /v1 API: Secrets Manager and DynamoDB errors, throttling and outages give a
503 in the error envelope with ``Retry-After``, and nothing is half-written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Stack, load_event
from tests.handlers import call_mint, item_count, revoke_event
from tests.robustness.faults import DYNAMODB_FAULTS, SECRETS_FAULTS, ErrorFactory, injected, secret_is

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def mint_event(user_id: str = "user_fault") -> dict[str, Any]:
    event = load_event("create_sign_in_token.json")
    event["body"] = json.dumps({"user_id": user_id})
    return event


def assert_unavailable(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 503, body
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Retry-After"]) >= 1
    assert set(body) == {"errors", "clerk_trace_id"}
    assert body["clerk_trace_id"] == "req-0001"
    error = body["errors"][0]
    assert error["code"] == "service_unavailable"
    assert isinstance(error["message"], str)
    assert isinstance(error["long_message"], str)
    assert "injected" not in json.dumps(body), "the AWS error leaked into the response"


@pytest.mark.parametrize("fault", SECRETS_FAULTS.values(), ids=SECRETS_FAULTS.keys())
@pytest.mark.parametrize("secret", ["API_KEYS_SECRET_ID", "TICKET_SIGNING_KEYRING_SECRET_ID"])
def test_mint_with_secrets_manager_failing_is_503_and_stores_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory, secret: str
) -> None:
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", "GetSecretValue", fault, when=secret_is(stack, secret))
        assert_unavailable(*call_mint(mint_event(), context))
        assert faults.failed == [("secretsmanager", "GetSecretValue")]
        assert faults.count("dynamodb") == 0, "wrote to the table without a key"
        assert item_count(stack) == 0
        faults.clear()  # the outage ends: the next request works, nothing was cached from the failure
        status, _, body = call_mint(mint_event(), context)
        assert status == 200
        assert body["status"] == "pending"
        assert item_count(stack) == 1


@pytest.mark.parametrize("fault", DYNAMODB_FAULTS.values(), ids=DYNAMODB_FAULTS.keys())
def test_mint_with_dynamodb_failing_is_503_and_stores_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory
) -> None:
    with injected(monkeypatch) as faults:
        faults.fail("dynamodb", "PutItem", fault)
        status, headers, body = call_mint(mint_event(), context)
        assert_unavailable(status, headers, body)
        assert item_count(stack) == 0
        faults.clear()
        assert call_mint(mint_event(), context)[0] == 200
        assert item_count(stack) == 1


def test_a_warm_mint_survives_a_secrets_manager_outage(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets are cached for max_age: once warm, Secrets Manager is not on the request path."""
    assert call_mint(mint_event(), context)[0] == 200
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", None, SECRETS_FAULTS["EndpointConnectionError"])
        status, _, body = call_mint(mint_event(), context)
        assert status == 200, body
        assert faults.count("secretsmanager") == 0
        assert faults.count("dynamodb", "PutItem") == 1


@pytest.mark.parametrize("fault", DYNAMODB_FAULTS.values(), ids=DYNAMODB_FAULTS.keys())
def test_revoke_with_dynamodb_failing_is_503_and_changes_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory
) -> None:
    status, _, minted = call_mint(mint_event(), context)
    assert status == 200
    before = stack.item(minted["id"])
    with injected(monkeypatch) as faults:
        faults.fail("dynamodb", "UpdateItem", fault)
        assert_unavailable(*call_mint(revoke_event(minted["id"]), context))
        assert stack.item(minted["id"]) == before
        faults.clear()
        status, _, body = call_mint(revoke_event(minted["id"]), context)
        assert status == 200
        assert body["status"] == "revoked"


@pytest.mark.parametrize("fault", SECRETS_FAULTS.values(), ids=SECRETS_FAULTS.keys())
def test_revoke_with_secrets_manager_failing_is_503_and_changes_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory
) -> None:
    status, _, minted = call_mint(mint_event(), context)
    assert status == 200
    before = stack.item(minted["id"])
    from tests.conftest import reset_caches

    reset_caches()  # a cold function: the API keys must be read again
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", "GetSecretValue", fault)
        assert_unavailable(*call_mint(revoke_event(minted["id"]), context))
        assert faults.count("dynamodb") == 0
        assert stack.item(minted["id"]) == before


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TICKET_SIGNING_KEYRING_SECRET_ID", "not json"),
        ("TICKET_SIGNING_KEYRING_SECRET_ID", json.dumps({"kind": "ed25519", "keys": []})),
        (
            "TICKET_SIGNING_KEYRING_SECRET_ID",
            json.dumps({"kind": "ed25519", "keys": [{"kid": "k", "public_key": "c2hvcnQ"}]}),
        ),
        ("TICKET_SIGNING_KEYRING_SECRET_ID", json.dumps({"kind": "rsa", "keys": []})),
        # The verification keyring (public keys) where the signing keyring should be: nothing signs.
        (
            "TICKET_SIGNING_KEYRING_SECRET_ID",
            json.dumps({"kind": "ed25519-public", "keys": [{"kid": "k", "public_key": "A" * 43}]}),
        ),
        # The retired HS256 keyring: refused, the mint signs EdDSA only.
        ("TICKET_SIGNING_KEYRING_SECRET_ID", json.dumps({"kind": "hmac", "keys": [], "bootstrap": "x" * 64})),
        # A signing keyring whose key that should sign lost its private half.
        (
            "TICKET_SIGNING_KEYRING_SECRET_ID",
            json.dumps({"kind": "ed25519", "keys": [{"kid": "k", "public_key": "A" * 43}]}),
        ),
        ("API_KEYS_SECRET_ID", json.dumps({"secret_key": "short"})),
    ],
    ids=[
        "keyring-not-json",
        "keyring-empty",
        "keyring-short-key",
        "keyring-wrong-kind",
        "keyring-public-only",
        "keyring-retired-hmac",
        "keyring-no-private-key",
        "api-keys-unusable",
    ],
)
def test_a_malformed_secret_is_503_and_stores_nothing(stack: Stack, context: Any, variable: str, value: str) -> None:
    stack.secretsmanager.put_secret_value(SecretId=stack.env[variable], SecretString=value)
    assert_unavailable(*call_mint(mint_event(), context))
    assert item_count(stack) == 0
