"""Session JWTs: the claims and header of Clerk's session token, and what verification refuses."""

from __future__ import annotations

import json
from functools import cache

import jwt
import pytest

from signin_links.keyring import HMAC, RSA, Keyring, generate_key
from signin_links.session_tokens import issue_session, verify_session
from tests.jwts import b64, hs256

NOW = 1_800_000_000


@cache
def ring() -> Keyring:
    return Keyring(kind=RSA, keys=(generate_key(RSA, now=NOW - 100),))


@cache
def other_ring() -> Keyring:
    return Keyring(kind=RSA, keys=(generate_key(RSA, now=NOW - 100),))


def issue(keyring: Keyring | None = None, **overrides: object) -> str:
    args: dict[str, object] = {
        "session_id": "sess_0000000000000000000001",
        "user_id": "user_1",
        "issued_at": NOW,
        "lifetime": 3600,
        "issuer": "https://links.example.com",
    }
    args.update(overrides)
    return issue_session((keyring or ring()).current(NOW), **args)  # type: ignore[arg-type]


def test_claims_and_header_follow_clerks_session_token() -> None:
    token = issue(org_id="org_1", authorized_party="https://app.example.com")
    key = ring().current(NOW)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    claims = jwt.decode(
        token,
        key.private_key.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims == {
        "sub": "user_1",
        "sid": "sess_0000000000000000000001",
        "iat": NOW,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "iss": "https://links.example.com",
        "azp": "https://app.example.com",
        "v": 2,
        "sts": "active",
        "o": {"id": "org_1"},
    }
    session = verify_session(token, ring(), now=NOW + 1)
    assert session is not None
    assert (session.session_id, session.user_id, session.org_id) == ("sess_0000000000000000000001", "user_1", "org_1")


def test_no_org_no_azp_no_aud() -> None:
    claims = jwt.decode(issue(), options={"verify_signature": False})
    assert not {"o", "azp", "aud"} & set(claims)


def test_key_is_rsa_2048_with_exponent_65537() -> None:
    numbers = ring().current(NOW).private_key.public_key().public_numbers()
    assert numbers.n.bit_length() == 2048
    assert numbers.e == 65537


def test_expired_session_does_not_verify() -> None:
    token = issue(lifetime=60)
    assert verify_session(token, ring(), now=NOW + 59) is not None
    assert verify_session(token, ring(), now=NOW + 61) is None
    assert verify_session(token, ring(), now=NOW - 11) is None  # before nbf


@pytest.mark.parametrize(
    "forge",
    [
        "other key",
        "tampered",
        "hs256 keyed with public pem",
        "alg none",
        "not a session id",
        "not active",
        "garbage",
        "empty",
    ],
)
def test_forged_sessions_do_not_verify(forge: str) -> None:
    key = ring().current(NOW)
    claims = jwt.decode(issue(), options={"verify_signature": False})
    if forge == "other key":
        token = issue(other_ring())
    elif forge == "tampered":
        head, _, signature = issue().split(".")
        token = f"{head}.{b64(json.dumps({**claims, 'sub': 'user_2'}).encode())}.{signature}"
    elif forge == "hs256 keyed with public pem":
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pem = key.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        token = hs256({"alg": "HS256", "kid": key.kid}, claims, pem)
    elif forge == "alg none":
        token = jwt.encode(claims, "", algorithm="none", headers={"kid": key.kid})
    elif forge == "not a session id":
        token = issue(session_id="sit_0000000000000000000001")
    elif forge == "not active":
        token = jwt.encode({**claims, "sts": "ended"}, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    elif forge == "garbage":
        token = "a.b.c"
    else:
        token = ""
    assert verify_session(token, ring(), now=NOW + 1) is None


def test_an_hmac_keyring_never_verifies_a_session() -> None:
    hmac_ring = Keyring(kind=HMAC, keys=(generate_key(HMAC, now=NOW),))
    assert verify_session(issue(), hmac_ring, now=NOW + 1) is None
