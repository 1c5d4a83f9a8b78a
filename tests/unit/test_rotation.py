"""Pure rotation logic: retention, pruning, adding keys, and what a valid keyring is."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signin_links.config import parse_settings
from signin_links.keyring import (
    ED25519,
    ED25519_PUBLIC,
    HMAC,
    RSA,
    Key,
    Keyring,
    KeyringFormatError,
    generate_key,
    parse_keyring,
    read_keys,
)
from signin_links.rotation.policy import (
    ACTIVATION_MARGIN_SECONDS,
    RotationError,
    RotationPolicy,
    check_keyring,
    check_timing,
    prune,
    retired_at,
    rotate,
)

DAY = 24 * 3600
POLICY = RotationPolicy(activation_delay=600, retention=30 * DAY)


def ed_key(kid: str, activates_at: int) -> Key:
    """An Ed25519 key of the signing keyring, its private key derived from ``kid`` (reproducible)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hashlib.sha256(kid.encode()).digest()
    public = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return Key(kid=kid, created_at=activates_at, activates_at=activates_at, seed=seed, public=public)


@cache
def rsa_pem(bits: int = 2048, exponent: int = 65537) -> str:
    private = rsa.generate_private_key(public_exponent=exponent, key_size=bits)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_policy_retention_follows_what_each_kind_signs() -> None:
    settings = parse_settings(
        {
            "TABLE_NAME": "t",
            "MAX_EXPIRES_IN_SECONDS": str(30 * DAY),
            "SESSION_LIFETIME_SECONDS": str(7 * DAY),
            "TICKET_LEEWAY_SECONDS": "30",
            "KEY_ACTIVATION_DELAY_SECONDS": "900",
        }
    )
    assert RotationPolicy.for_kind(ED25519, settings) == RotationPolicy(activation_delay=900, retention=30 * DAY + 30)
    assert RotationPolicy.for_kind(RSA, settings) == RotationPolicy(activation_delay=900, retention=7 * DAY + 30)
    # Nothing signs with the retired HMAC keyring, and the verification keyring follows its signing one.
    for kind in (HMAC, ED25519_PUBLIC):
        with pytest.raises(RotationError, match="not rotated"):
            RotationPolicy.for_kind(kind, settings)


def test_activation_delay_must_outlast_the_secrets_cache() -> None:
    ok = parse_settings(
        {"TABLE_NAME": "t", "SECRETS_MAX_AGE_SECONDS": "300", "KEY_ACTIVATION_DELAY_SECONDS": str(300 + 60)}
    )
    check_timing(ok)
    too_short = replace(ok, key_activation_delay_seconds=300 + ACTIVATION_MARGIN_SECONDS - 1)
    with pytest.raises(RotationError, match="KEY_ACTIVATION_DELAY_SECONDS"):
        check_timing(too_short)
    with pytest.raises(RotationError):
        RotationPolicy.for_kind(ED25519, too_short)


def test_a_key_retires_when_its_successor_activates() -> None:
    a, b, c = ed_key("a", 0), ed_key("b", 1000), ed_key("c", 5000)
    keys = [c, a, b]  # order in the secret does not matter
    assert retired_at(a, keys) == 1000
    assert retired_at(b, keys) == 5000
    assert retired_at(c, keys) is None


def test_prune_drops_only_keys_retired_for_longer_than_retention() -> None:
    a, b, c = ed_key("a", 0), ed_key("b", 1000), ed_key("c", 5000)
    keys = [a, b, c]
    assert [k.kid for k in prune(keys, now=1000 + 99, retention=100)] == ["a", "b", "c"]
    assert [k.kid for k in prune(keys, now=1000 + 100, retention=100)] == ["b", "c"]
    assert [k.kid for k in prune(keys, now=5000 + 100, retention=100)] == ["c"]
    # The current key is never dropped, however old.
    assert [k.kid for k in prune([a], now=10**9, retention=1)] == ["a"]
    # A key whose successor has not activated yet still signs: kept.
    assert [k.kid for k in prune([a, ed_key("later", 10**9)], now=10**8, retention=1)] == ["a", "later"]


def test_first_key_of_an_empty_keyring_activates_at_once() -> None:
    keys, added = rotate(ED25519, (), now=1_700_000_000, policy=POLICY)
    assert keys == (added,)
    assert added.activates_at == 1_700_000_000
    assert len(added.seed) == len(added.public) == 32
    assert Keyring(kind=ED25519, keys=keys).current(now=1_700_000_000).kid == added.kid


def test_rotation_adds_a_key_that_signs_only_after_the_delay() -> None:
    old = ed_key("old", 0)
    keys, added = rotate(ED25519, (old,), now=10_000, policy=POLICY)
    assert [k.kid for k in keys] == ["old", added.kid]
    assert added.activates_at == 10_000 + 600
    assert added.created_at == 10_000
    ring = Keyring(kind=ED25519, keys=keys)
    assert ring.current(now=10_599).kid == "old"
    assert ring.current(now=10_600).kid == added.kid
    assert keys[0].seed  # "old" still signs until then: it keeps its private half


def test_rotation_prunes_expired_keys_and_keeps_the_rest() -> None:
    a, b = ed_key("a", 0), ed_key("b", 1000)
    keys, added = rotate(ED25519, (a, b), now=1000 + POLICY.retention, policy=POLICY)
    assert [k.kid for k in keys] == ["b", added.kid]


def test_a_retired_key_keeps_its_public_half_only() -> None:
    """Once its successor has activated, a key signs nothing more: the next rotation destroys its
    private half and keeps the public one, which still verifies its links until retention ends."""
    a, b = ed_key("a", 0), ed_key("b", 1000)
    keys, added = rotate(ED25519, (a, b), now=2000, policy=POLICY)
    by_kid = {key.kid: key for key in keys}
    assert not by_kid["a"].seed and by_kid["a"].public == a.public  # retired at 1000
    assert by_kid["b"].seed == b.seed  # signs until the new key activates
    assert added.seed
    raw = Keyring(kind=ED25519, keys=keys).to_json()
    assert json.loads(raw)["keys"][0] == {
        "kid": "a",
        "created_at": 0,
        "activates_at": 0,
        "public_key": a.to_json()["public_key"],
    }
    check_keyring(ED25519, parse_keyring(raw, ED25519).keys, required_kids=["a", "b"], now=2000)
    public = parse_keyring(raw, ED25519).public()
    assert public.kids == ("a", "b", added.kid) and not any(key.seed for key in public.keys)


def test_the_retired_hmac_keyring_still_reads_its_bootstrap_key() -> None:
    """An upgraded stack's retired keyring: its keys (the bootstrap seed among them) still read."""
    seed = "s" * 64
    kind, keys = read_keys(json.dumps({"kind": "hmac", "keys": [], "bootstrap": seed}))
    (boot,) = keys
    assert kind == HMAC
    assert boot.secret == seed.encode()
    assert boot.kid.startswith("boot-")


def test_read_keys_accepts_an_empty_keyring_that_parse_keyring_refuses() -> None:
    assert read_keys(json.dumps({"kind": "rsa", "keys": []})) == ("rsa", ())


def test_check_keyring_accepts_a_rotated_keyring() -> None:
    keys, _ = rotate(ED25519, (ed_key("a", 0),), now=10_000, policy=POLICY)
    check_keyring(ED25519, keys, required_kids=["a"], now=10_000)
    rsa_keys, _ = rotate(RSA, (), now=10_000, policy=POLICY)
    check_keyring(RSA, rsa_keys, required_kids=[], now=10_000)


@pytest.mark.parametrize(
    ("keys", "required", "message"),
    [
        ((), [], "no key"),
        ((ed_key("a", 0), ed_key("a", 5)), [], "twice"),
        ((ed_key("b", 0),), ["a"], "still needed.*a"),
        ((ed_key("a", 20_000),), [], "no key .* active"),
        ((replace(ed_key("a", 0), public=ed_key("b", 0).public),), [], "not the private key's"),
        ((replace(ed_key("a", 0), public=b"x" * 16),), [], "32-byte public key"),
        ((replace(ed_key("a", 0), secret=b"x" * 32),), [], "nothing else"),
        ((ed_key("a", 0).public_only(),), [], "no private key"),
        ((ed_key("a", 0), ed_key("b", 20_000).public_only()), [], "newest key has no private key"),
        ((ed_key("a", 0).public_only(), ed_key("b", 20_000)), [], "signs now has no private key"),
    ],
)
def test_check_keyring_refuses_unusable_signing_keyrings(
    keys: tuple[Key, ...], required: list[str], message: str
) -> None:
    with pytest.raises(RotationError, match=message):
        check_keyring(ED25519, keys, required_kids=required, now=10_000)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"kind": "ed25519-public", "keys": [{"kid": "a", "public_key": "A" * 43, "private_key": "A" * 43}]},
            "public keys only",
        ),
        ({"kind": "ed25519", "keys": [{"kid": "a", "public_key": "A" * 42}]}, "not 32 bytes"),
        ({"kind": "ed25519", "keys": [{"kid": "a", "public_key": 7}]}, "base64url"),
        ({"kind": "ed25519", "keys": [{"kid": "a", "public_key": "A" * 43}]}, "newest key"),
        ({"kind": "ed25519", "keys": [{"kid": "a"}]}, "malformed"),
    ],
)
def test_ed25519_keyrings_of_the_wrong_shape_do_not_parse(raw: dict[str, object], message: str) -> None:
    with pytest.raises(KeyringFormatError, match=message):
        parse_keyring(json.dumps(raw))


@pytest.mark.parametrize(("bits", "exponent"), [(1024, 65537), (2048, 3), (3072, 65537)])
def test_check_keyring_refuses_session_keys_of_the_wrong_shape(bits: int, exponent: int) -> None:
    key = Key(kid="odd", created_at=0, activates_at=0, private_key_pem=rsa_pem(bits, exponent))
    with pytest.raises(RotationError, match="RSA-2048 with e = 65537"):
        check_keyring(RSA, (key,), required_kids=[], now=10_000)


def test_check_keyring_refuses_an_unreadable_private_key() -> None:
    key = Key(kid="junk", created_at=0, activates_at=0, private_key_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(RotationError, match="does not load"):
        check_keyring(RSA, (key,), required_kids=[], now=10_000)


def test_generated_keys_have_distinct_kids() -> None:
    kids = {generate_key(ED25519, now=0).kid for _ in range(50)}
    assert len(kids) == 50
