from __future__ import annotations

import jwt
import pytest

from signin_links.errors import SignInLinksError
from signin_links.keyring import HMAC, Keyring, generate_key
from signin_links.tickets import sign_ticket, verify_ticket
from tests.jwts import b64_json

NOW = 1_700_000_000  # long past: expiry must follow the injected clock, not the wall clock


@pytest.fixture(scope="module")
def ring() -> Keyring:
    return Keyring(kind=HMAC, keys=(generate_key(HMAC, now=NOW - 100), generate_key(HMAC, now=NOW)))


def code_of(token: str, ring: Keyring, now: float = NOW) -> str:
    with pytest.raises(SignInLinksError) as info:
        verify_ticket(token, ring, now=now, leeway=30)
    return info.value.code.wire_code


def test_round_trip_with_every_key_of_the_ring(ring: Keyring) -> None:
    for key in ring.keys:
        token = sign_ticket(
            key,
            sid="sit_abcdefghijklmnopqrstuv",
            issued_at=NOW,
            expires_in_seconds=60,
            redirect_url="https://app.example.com/x",
        )
        ticket = verify_ticket(token, ring, now=NOW, leeway=30)
        assert ticket.sid == "sit_abcdefghijklmnopqrstuv"
        assert ticket.kid == key.kid
        assert ticket.expires_at == NOW + 60
        assert ticket.redirect_url == "https://app.example.com/x"


def test_expired_and_leeway(ring: Keyring) -> None:
    token = sign_ticket(ring.keys[0], sid="sit_abcdefghijklmnopqrstuv", issued_at=NOW - 100, expires_in_seconds=60)
    assert code_of(token, ring) == "ticket_expired_code"  # expired 40 s ago, leeway 30
    token = sign_ticket(ring.keys[0], sid="sit_abcdefghijklmnopqrstuv", issued_at=NOW - 80, expires_in_seconds=60)
    assert verify_ticket(token, ring, now=NOW, leeway=30).sid  # expired 20 s ago: within leeway


def test_rejections_are_invalid(ring: Keyring) -> None:
    key = ring.keys[1]
    good = sign_ticket(key, sid="sit_abcdefghijklmnopqrstuv", issued_at=NOW, expires_in_seconds=60)
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    forged_payload = b64_json({**claims, "sid": "sit_zzzzzzzzzzzzzzzzzzzzzz"})
    other = generate_key(HMAC, now=NOW)
    cases = {
        "tampered payload": f"{header}.{forged_payload}.{signature}",
        "truncated": good[:-5],
        "no signature": f"{header}.{payload}.",
        "alg none": f"{b64_json({'alg': 'none', 'kid': key.kid})}.{payload}.",
        "unknown kid": jwt.encode(claims, other.secret, algorithm="HS256", headers={"kid": other.kid}),
        "known kid, wrong key": jwt.encode(claims, other.secret, algorithm="HS256", headers={"kid": key.kid}),
        "HS512 with the right key": jwt.encode(claims, key.secret, algorithm="HS512", headers={"kid": key.kid}),
        "wrong type": jwt.encode({**claims, "st": "session"}, key.secret, algorithm="HS256", headers={"kid": key.kid}),
        "no sid": jwt.encode(
            {k: v for k, v in claims.items() if k != "sid"}, key.secret, algorithm="HS256", headers={"kid": key.kid}
        ),
        "garbage": "not-a-jwt",
        "empty": "",
        "huge": "a" * 10_000,
    }
    for name, token in cases.items():
        assert code_of(token, ring) == "ticket_invalid_code", name
