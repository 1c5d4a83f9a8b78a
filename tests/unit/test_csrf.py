"""CSRF tokens (``csrf.py``): what verifies, what does not, for any shape."""

from __future__ import annotations

import time
from functools import cache

from hypothesis import example, given, settings
from hypothesis import strategies as st

from signin_links import csrf
from signin_links.derived_keys import derived_key
from signin_links.keyring import Key, Keyring, parse_keyring
from tests.strategies import tricky_text

NOW = 1_800_000_000.0


@cache
def ring() -> Keyring:
    from signin_links.keyring import new_keyring_json

    return parse_keyring(new_keyring_json("rsa"))


def other_key(kid: str = "k-other") -> Key:
    return Key(kid=kid, created_at=0, activates_at=0, private_key_pem=ring().keys[0].private_key_pem + "\n")


def test_a_token_verifies_with_its_nonce_until_its_lifetime_ends() -> None:
    grant = csrf.issue(ring(), NOW)
    assert csrf.valid_nonce(grant.nonce)
    assert csrf.verify(grant.token, [grant.nonce], ring(), NOW)
    assert csrf.verify(grant.token, [grant.nonce], ring(), NOW + csrf.LIFETIME_SECONDS)
    assert not csrf.verify(grant.token, [grant.nonce], ring(), NOW + csrf.LIFETIME_SECONDS + 1)
    assert not csrf.verify(grant.token, [grant.nonce], ring(), NOW - csrf.CLOCK_SKEW_SECONDS - 1)  # from the future
    assert not csrf.verify(grant.token, [], ring(), NOW)
    assert not csrf.verify(grant.token, [csrf.issue(ring(), NOW).nonce], ring(), NOW)


def test_each_render_gets_its_own_token_for_the_browsers_nonce() -> None:
    first = csrf.issue(ring(), NOW)
    second = csrf.issue(ring(), NOW, ["not a nonce", first.nonce])
    assert second.nonce == first.nonce
    assert second.token != first.token
    assert csrf.verify(first.token, ["junk", second.nonce], ring(), NOW)


def test_every_key_of_the_ring_verifies_and_only_the_ring() -> None:
    grant = csrf.issue(ring(), NOW)
    rotated = Keyring(kind="rsa", keys=(*ring().keys, other_key()))
    assert csrf.verify(grant.token, [grant.nonce], rotated, NOW)
    assert not csrf.verify(grant.token, [grant.nonce], Keyring(kind="rsa", keys=(other_key(),)), NOW)


def test_derived_keys_differ_by_purpose_and_by_key() -> None:
    key = ring().keys[0]
    assert derived_key(key, "csrf-token") != derived_key(key, "refresh-token")
    assert derived_key(key, "csrf-token") != derived_key(other_key(), "csrf-token")
    assert len(derived_key(key, "csrf-token")) == 32


@settings(deadline=None)
@given(token=(tricky_text | st.text(max_size=200)) | st.integers() | st.none() | st.lists(st.text()), nonce=tricky_text)
@example(token="1800000000.AAAAAAAAAAAA.", nonce="A" * 22)
@example(token="1800000000." + "A" * 12 + "." + "A" * 43, nonce="A" * 22)
@example(token="\ud800.\ud800.\ud800", nonce="\ud800")
def test_any_token_or_nonce_shape_is_simply_not_valid(token: object, nonce: str) -> None:
    assert csrf.verify(token, [nonce], ring(), NOW) is False


@settings(deadline=None)
@given(position=st.integers(min_value=0), replacement=st.characters())
def test_any_single_change_to_a_real_token_is_refused(position: int, replacement: str) -> None:
    grant = csrf.issue(ring(), time.time())
    index = position % len(grant.token)
    changed = grant.token[:index] + replacement + grant.token[index + 1 :]
    if changed != grant.token:
        assert not csrf.verify(changed, [grant.nonce], ring(), time.time())
