from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from signin_links import ids
from signin_links.auth import bearer_key, key_matches, parse_api_keys
from signin_links.batch.plan import header_key, marker_key, token_id_for
from signin_links.errors import SignInLinksError
from signin_links.keyring import HMAC, RSA, KeyringFormatError, b64url_encode, parse_keyring
from signin_links.renewal import renewal_token_id


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
    assert ids.derived_id("sit", "b", "u") != ids.derived_id("sit", "b", "v")
    assert not ids.is_id("sit_../../x", "sit")
    assert not ids.is_id("sess_abcdefghijklmnopqrst", "sit")


# Stored ids depend on these values: a batch redelivered after an upgrade must find the tokens it minted
# before (batch token ids, chunk headers, announcement markers) and a renewal its fresh link. Changing
# the hash, its separator or the alphabet changes them all, so they are pinned, not recomputed.
@pytest.mark.parametrize(
    ("made", "expected"),
    [
        (lambda: ids.derived_id("sit", "b", "u"), "sit_602cepl6p90on2Q2ccIKbg"),
        (lambda: ids.derived_id("sit"), "sit_6ve2WrOl3mnciB6WIL2fIa"),
        (lambda: token_id_for("wave-2026-12", "user_123"), "sit_26fiDQmqPiUdxIdEZMw8D5"),
        (lambda: token_id_for("wave-2026-12", "ユーザー"), "sit_5zbSftBnsboKt1omIL0qpC"),
        (lambda: header_key("wave-2026-12", 0), "batch_2RYQxqbOKbtyIvHmER6oD4"),
        (lambda: marker_key("wave-2026-12", 3, 1), "bann_16IMhDQ1BCGnRxLZhFER9B"),
        (lambda: renewal_token_id("sit_0000000000000000000001"), "sit_51q73PBaoPIzxskVtPlGGM"),
    ],
    ids=["parts", "no-parts", "batch-token", "non-ascii-user", "chunk-header", "announcement-marker", "renewal"],
)
def test_derived_ids_keep_their_values(made: Callable[[], str], expected: str) -> None:
    assert made() == expected
    assert ids.is_id(expected, expected.split("_", 1)[0])
