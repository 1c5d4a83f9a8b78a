"""Sign-in tokens: EdDSA (Ed25519) signed by the mint's own encoder, verified by PyJWT with public
keys only; the HS256 tokens of the retired keyring only during an upgrade's window."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signin_links.errors import SignInLinksError
from signin_links.keyring import ED25519, ED25519_PUBLIC, HMAC, RSA, Key, Keyring, generate_key
from signin_links.ticket_verification import TicketVerifier, verify_legacy_ticket, verify_ticket
from signin_links.tickets import sign_ticket, ticket_claims
from tests.jwts import b64_json, hs256, unb64

NOW = 1_700_000_000  # long past: expiry must follow the injected clock, not the wall clock
SID = "sit_abcdefghijklmnopqrstuv"
DAY = 24 * 3600


@pytest.fixture(scope="module")
def signing() -> Keyring:
    return Keyring(kind=ED25519, keys=(generate_key(ED25519, now=NOW - 100), generate_key(ED25519, now=NOW)))


@pytest.fixture(scope="module")
def ring(signing: Keyring) -> Keyring:
    """What the accept holds: the public halves only."""
    return signing.public()


@pytest.fixture(scope="module")
def legacy() -> Keyring:
    return Keyring(kind=HMAC, keys=(generate_key(HMAC, now=NOW - DAY),))


def code_of(token: str, ring: Keyring, now: float = NOW) -> str:
    with pytest.raises(SignInLinksError) as info:
        verify_ticket(token, ring, now=now, leeway=30)
    return info.value.code.wire_code


def test_the_verification_keyring_holds_no_private_key(signing: Keyring, ring: Keyring) -> None:
    assert ring.kind == ED25519_PUBLIC
    assert ring.kids == signing.kids
    assert all(key.public and not key.seed for key in ring.keys)
    assert "private_key" not in ring.to_json()
    with pytest.raises(ValueError):
        _ = ring.keys[0].signer  # nothing in it can sign


def test_round_trip_with_every_key_through_the_public_keys(signing: Keyring, ring: Keyring) -> None:
    for key in signing.keys:
        token = sign_ticket(
            key, sid=SID, issued_at=NOW, expires_in_seconds=60, redirect_url="https://app.example.com/x"
        )
        ticket = verify_ticket(token, ring, now=NOW, leeway=30)
        assert ticket.sid == SID
        assert ticket.kid == key.kid
        assert ticket.expires_at == NOW + 60
        assert ticket.redirect_url == "https://app.example.com/x"


def test_pyjwt_reads_the_mints_own_encoding_as_an_rfc_8037_jws(signing: Keyring) -> None:
    """The mint assembles the JWS itself (so that it never imports PyJWT): PyJWT, given only the
    public key, must read exactly the header and claims meant."""
    key = signing.keys[1]
    fields = {"sid": SID, "issued_at": NOW, "expires_in_seconds": 600, "user_id": "user_é✓", "org_id": "org_1"}
    token = sign_ticket(key, **fields)  # type: ignore[arg-type]
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    public = Ed25519PrivateKey.from_private_bytes(key.seed).public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], options={"verify_exp": False})
    assert claims == ticket_claims(**fields)  # type: ignore[arg-type]
    assert len(unb64(token.rsplit(".", 1)[1])) == 64  # an Ed25519 signature
    assert token.isascii()


def test_signing_is_deterministic(signing: Keyring) -> None:
    """A redelivered batch announces the very link it minted first (Ed25519 signatures are deterministic)."""
    key = signing.keys[0]
    assert sign_ticket(key, sid=SID, issued_at=NOW, expires_in_seconds=60) == sign_ticket(
        key, sid=SID, issued_at=NOW, expires_in_seconds=60
    )


def test_expired_and_leeway(signing: Keyring, ring: Keyring) -> None:
    token = sign_ticket(signing.keys[0], sid=SID, issued_at=NOW - 100, expires_in_seconds=60)
    assert code_of(token, ring) == "ticket_expired_code"  # expired 40 s ago, leeway 30
    token = sign_ticket(signing.keys[0], sid=SID, issued_at=NOW - 80, expires_in_seconds=60)
    assert verify_ticket(token, ring, now=NOW, leeway=30).sid  # expired 20 s ago: within leeway


def test_rejections_are_invalid(signing: Keyring, ring: Keyring, legacy: Keyring) -> None:
    key = signing.keys[1]
    good = sign_ticket(key, sid=SID, issued_at=NOW, expires_in_seconds=60)
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    forged_payload = b64_json({**claims, "sid": "sit_zzzzzzzzzzzzzzzzzzzzzz"})
    other = generate_key(ED25519, now=NOW)
    impostor = Key(kid=key.kid, created_at=NOW, activates_at=NOW, seed=other.seed, public=other.public)
    rsa = generate_key(RSA, now=NOW)
    cases = {
        "tampered payload": f"{header}.{forged_payload}.{signature}",
        "truncated": good[:-5],
        "no signature": f"{header}.{payload}.",
        "alg none": f"{b64_json({'alg': 'none', 'kid': key.kid})}.{payload}.",
        "unknown kid": sign_ticket(other, sid=SID, issued_at=NOW, expires_in_seconds=60),
        "known kid, another key": sign_ticket(impostor, sid=SID, issued_at=NOW, expires_in_seconds=60),
        # HS256 keyed with the published public key (the classic confusion), or with a real legacy key.
        "HS256 over the public key": hs256({"alg": "HS256", "kid": key.kid}, claims, key.public),
        "HS256, retired keyring, no window": jwt.encode(
            claims, legacy.keys[0].secret, algorithm="HS256", headers={"kid": legacy.keys[0].kid}
        ),
        "RS256": jwt.encode(claims, rsa.private_key, algorithm="RS256", headers={"kid": key.kid}),
        "ES256": jwt.encode(claims, generate_private_key(SECP256R1()), algorithm="ES256", headers={"kid": key.kid}),
        "Ed448 name": f"{b64_json({'alg': 'Ed448', 'kid': key.kid})}.{payload}.{signature}",
        "wrong type": sign_ticket_with(key, {**claims, "st": "session"}),
        "no sid": sign_ticket_with(key, {k: v for k, v in claims.items() if k != "sid"}),
        "sid not a token id": sign_ticket_with(key, {**claims, "sid": "sess_abc"}),
        "kid not a string": f"{b64_json({'alg': 'EdDSA', 'kid': 7})}.{payload}.{signature}",
        "garbage": "not-a-jwt",
        "empty": "",
        "huge": "a" * 10_000,
    }
    for name, token in cases.items():
        assert code_of(token, ring) == "ticket_invalid_code", name


def sign_ticket_with(key: Key, claims: dict[str, object]) -> str:
    """An EdDSA token of arbitrary claims under ``key`` (PyJWT signs; the check must still refuse)."""
    return jwt.encode(claims, key.signer, algorithm="EdDSA", headers={"kid": key.kid})


# --- The migration window: HS256 tokens minted before the upgrade -------------------------------------


def legacy_token(legacy: Keyring, *, issued_at: int, lifetime: int) -> str:
    key = legacy.keys[0]
    return jwt.encode(
        ticket_claims(sid=SID, issued_at=issued_at, expires_in_seconds=lifetime),
        key.secret,
        algorithm="HS256",
        headers={"kid": key.kid, "typ": "JWT"},
    )


def test_an_hs256_token_of_the_retired_keyring_passes_only_inside_the_window(legacy: Keyring) -> None:
    until = NOW + 30 * DAY
    token = legacy_token(legacy, issued_at=NOW - DAY, lifetime=30 * DAY)  # mailed the day before the upgrade
    assert verify_legacy_ticket(token, legacy, until=until, now=NOW, leeway=30).sid == SID
    for now, why in ((until, "the window closed"), (until + DAY, "long after")):
        with pytest.raises(SignInLinksError) as info:
            verify_legacy_ticket(token, legacy, until=until, now=now, leeway=30)
        assert info.value.code.wire_code == "ticket_invalid_code", why
    # Whoever holds the retired key cannot mint a token that outlives the window.
    outliving = legacy_token(legacy, issued_at=NOW, lifetime=31 * DAY)
    with pytest.raises(SignInLinksError) as info:
        verify_legacy_ticket(outliving, legacy, until=until, now=NOW, leeway=30)
    assert info.value.code.wire_code == "ticket_invalid_code"


def test_the_verifier_routes_by_algorithm_and_refuses_hs256_without_a_window(
    signing: Keyring, ring: Keyring, legacy: Keyring
) -> None:
    eddsa = sign_ticket(signing.keys[1], sid=SID, issued_at=NOW, expires_in_seconds=60)
    hs = legacy_token(legacy, issued_at=NOW - DAY, lifetime=30 * DAY)
    read: list[str] = []

    def reader(name: str, keyring: Keyring) -> object:
        return lambda: read.append(name) or keyring

    windowed = TicketVerifier(reader("public", ring), reader("legacy", legacy), legacy_until=NOW + 30 * DAY)  # type: ignore[arg-type]
    assert windowed.verify(eddsa, now=NOW, leeway=30).sid == SID
    assert windowed.verify(hs, now=NOW, leeway=30).sid == SID
    assert read == ["public", "legacy"]
    # No window: no retired keyring is read, and the HS256 link is refused.
    closed = TicketVerifier(reader("public", ring))  # type: ignore[arg-type]
    with pytest.raises(SignInLinksError) as info:
        closed.verify(hs, now=NOW, leeway=30)
    assert info.value.code.wire_code == "ticket_invalid_code"
    assert read == ["public", "legacy"]
    # The retired keyring never verifies an EdDSA token, nor the public keys an HS256 one.
    with pytest.raises(SignInLinksError):
        verify_legacy_ticket(eddsa, legacy, until=NOW + DAY, now=NOW, leeway=30)
    assert code_of(hs, ring) == "ticket_invalid_code"
    assert json.loads(unb64(hs.split(".")[0]))["alg"] == "HS256"
