from __future__ import annotations

import json

import pytest

from signin_links import ids
from signin_links.auth import bearer_key, key_matches, parse_api_keys
from signin_links.errors import SignInLinksError
from signin_links.keyring import HMAC, RSA, KeyringFormatError, b64url_encode, parse_keyring


def test_hmac_keyring_current_is_latest_activated() -> None:
    raw = json.dumps(
        {
            "kind": "hmac",
            "keys": [
                {"kid": "old", "created_at": 0, "activates_at": 0, "secret": b64url_encode(b"a" * 32)},
                {"kid": "new", "created_at": 100, "activates_at": 1000, "secret": b64url_encode(b"b" * 32)},
            ],
        }
    )
    ring = parse_keyring(raw, HMAC)
    assert ring.current(now=999).kid == "old"  # the new key verifies but does not sign yet
    assert ring.current(now=1000).kid == "new"
    assert ring.get("old") is not None
    assert ring.get("nope") is None


def test_bootstrap_secret_is_a_usable_keyring() -> None:
    ring = parse_keyring(json.dumps({"kind": "hmac", "keys": [], "bootstrap": "x" * 64}), HMAC)
    assert ring.current().kid.startswith("boot-")
    assert len(ring.current().secret) == 64


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"kind": "hmac", "keys": []}),
        json.dumps({"kind": "hmac", "keys": [{"kid": "k", "secret": b64url_encode(b"short")}]}),
        json.dumps({"kind": "rsa", "keys": [{"kid": "k"}]}),
        json.dumps({"kind": "dsa", "keys": []}),
    ],
)
def test_malformed_keyrings_are_rejected(raw: str) -> None:
    with pytest.raises(KeyringFormatError):
        parse_keyring(raw, None)


def test_kind_must_match() -> None:
    raw = json.dumps({"kind": "hmac", "keys": [], "bootstrap": "x" * 64})
    with pytest.raises(KeyringFormatError):
        parse_keyring(raw, RSA)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Token abc", "Bearer a b", "Bearer a\x00b", "Bearer " + "k" * 2000]
)
def test_bearer_format(header: str | None) -> None:
    with pytest.raises(SignInLinksError) as info:
        bearer_key(header)
    assert info.value.code.wire_code == "authorization_header_format_invalid"


def test_bearer_key_and_matching() -> None:
    assert bearer_key("bearer  sk_live_abc ") == "sk_live_abc"
    live = parse_api_keys(json.dumps({"secret_key": "k" * 20, "secret_keys": ["z" * 20, "short"]}))
    assert len(live) == 2  # keys under 16 characters are ignored
    assert key_matches("k" * 20, live)
    assert key_matches("z" * 20, live)
    assert not key_matches("k" * 19, live)
    assert not key_matches("short", live)


def test_ids() -> None:
    fresh = {ids.new_id("sit") for _ in range(100)}
    assert len(fresh) == 100
    assert all(ids.is_id(value, "sit") for value in fresh)
    assert ids.derived_id("sit", "b", "u") == ids.derived_id("sit", "b", "u") != ids.derived_id("sit", "b", "v")
    assert not ids.is_id("sit_../../x", "sit")
    assert not ids.is_id("sess_abcdefghijklmnopqrst", "sit")
