"""Property tests of the sign-in token parser (``ticket_verification.verify_ticket``, and the
``TicketVerifier`` the accept uses, with an upgrade's HS256 window open).

Whatever string arrives, the parser either returns the ticket the mint signed or raises
``SignInLinksError`` with ``ticket_invalid_code`` / ``ticket_expired_code``: nothing else escapes,
and no forged, tampered, truncated, unsigned, re-signed or algorithm-swapped token is accepted. The
parser holds public keys only (the verification keyring), as the accept does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import ED25519, HMAC, RSA, Key, Keyring, generate_key
from signin_links.ticket_verification import TicketVerifier, verify_ticket
from signin_links.tickets import Ticket, sign_ticket
from tests.jwts import b64, eddsa, hs256, unb64
from tests.strategies import redirect_urls

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# PyJWT also checks ``exp`` against the wall clock, so genuine tokens are issued at the moment of
# the test (``now()``), not at import: a long run must not age them.
NOW = int(time.time())
LEEWAY = 30
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

KEY = generate_key(ED25519, now=NOW - 86400)
OLD_KEY = generate_key(ED25519, now=NOW - 10 * 86400)
KEYRING = Keyring(kind=ED25519, keys=(OLD_KEY, KEY)).public()  # what the accept holds: no private key
LEGACY = Keyring(kind=HMAC, keys=(generate_key(HMAC, now=NOW - 20 * 86400),))  # the retired HS256 keyring
WINDOWED = TicketVerifier(lambda: KEYRING, lambda: LEGACY, legacy_until=NOW + 31 * 86400)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
EC_KEY = ec.generate_private_key(ec.SECP256R1())

sids = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=16, max_size=40).map(
    lambda body: f"sit_{body}"
)
lifetimes = st.integers(min_value=1, max_value=30 * 86400)
# Whatever a token carries in rdr comes back as it was signed (the accept checks it afterwards).
redirects = (
    st.none()
    | st.sampled_from(["https://app.example.com/welcome", "http://127.0.0.1:3000/"])
    | redirect_urls.filter(bool)
)


def now() -> int:
    return int(time.time())


def claims_for(sid: str, lifetime: int, issued_at: int | None = None) -> dict[str, Any]:
    issued_at = now() if issued_at is None else issued_at
    return {"eis": lifetime, "exp": issued_at + lifetime, "iat": issued_at, "sid": sid, "st": "sign_in_token"}


def genuine(sid: str = "sit_0123456789abcdefABCDEF", lifetime: int = 3600, key: Key = KEY) -> str:
    return sign_ticket(key, sid=sid, issued_at=now(), expires_in_seconds=lifetime)


def verify(token: Any, keyring: Keyring = KEYRING, at: float | None = None) -> Ticket:
    return verify_ticket(token, keyring, now=time.time() if at is None else at, leeway=LEEWAY)


def assert_invalid(token: Any, keyring: Keyring = KEYRING) -> None:
    with pytest.raises(SignInLinksError) as caught:
        verify(token, keyring)
    assert caught.value.code is ErrorCode.TICKET_INVALID, caught.value.code


def decoded_parts(token: str) -> tuple[bytes, bytes, bytes]:
    header, payload, signature = token.split(".")
    return unb64(header), unb64(payload), unb64(signature)


# -- genuine tokens ---------------------------------------------------------------------------


@PROPERTY
@given(sid=sids, lifetime=lifetimes, redirect=redirects, signer=st.sampled_from([KEY, OLD_KEY]))
def test_every_key_of_the_ring_verifies_what_it_signed(
    sid: str, lifetime: int, redirect: str | None, signer: Key
) -> None:
    issued_at = now()
    token = sign_ticket(signer, sid=sid, issued_at=issued_at, expires_in_seconds=lifetime, redirect_url=redirect)
    ticket = verify(token, at=issued_at + lifetime)  # the last second of its life
    assert (ticket.sid, ticket.expires_in_seconds, ticket.redirect_url, ticket.kid) == (
        sid,
        lifetime,
        redirect,
        signer.kid,
    )


@PROPERTY
@given(lifetime=lifetimes, late=st.integers(min_value=LEEWAY + 1, max_value=10 * 365 * 86400))
def test_expired_beyond_the_leeway_is_expired(lifetime: int, late: int) -> None:
    issued_at = now()
    token = sign_ticket(KEY, sid="sit_0123456789abcdefABCDEF", issued_at=issued_at, expires_in_seconds=lifetime)
    with pytest.raises(SignInLinksError) as caught:
        verify(token, at=issued_at + lifetime + late)
    assert caught.value.code is ErrorCode.TICKET_EXPIRED


def test_expired_by_the_wall_clock_is_expired_too() -> None:
    token = sign_ticket(KEY, sid="sit_0123456789abcdefABCDEF", issued_at=int(time.time()) - 7200, expires_in_seconds=60)
    with pytest.raises(SignInLinksError) as caught:
        verify(token)
    assert caught.value.code is ErrorCode.TICKET_EXPIRED


def test_within_the_leeway_is_still_valid() -> None:
    issued_at = now()
    token = sign_ticket(KEY, sid="sit_0123456789abcdefABCDEF", issued_at=issued_at, expires_in_seconds=3600)
    assert verify(token, at=issued_at + 3600 + LEEWAY).sid == "sit_0123456789abcdefABCDEF"


# -- anything at all ------------------------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=600) | st.from_regex(r"\A[A-Za-z0-9_=+/-]{0,80}(\.[A-Za-z0-9_=+/-]{0,80}){0,4}\Z"))
@example("")
@example("\ud800")
@example("eyJhbGciOiJIUzI1NiJ9.\ud800.x")
@example("...")
@example("a" * 5000)
def test_arbitrary_strings_are_rejected_cleanly(token: str) -> None:
    assert_invalid(token)
    with pytest.raises(SignInLinksError) as caught:  # and with an upgrade's HS256 window open
        WINDOWED.verify(token, now=time.time(), leeway=LEEWAY)
    assert caught.value.code is ErrorCode.TICKET_INVALID


@PROPERTY
@given(st.none() | st.integers() | st.binary() | st.lists(st.text()) | st.dictionaries(st.text(), st.text()))
def test_non_strings_are_rejected_cleanly(token: Any) -> None:
    assert_invalid(token)
    with pytest.raises(SignInLinksError):
        WINDOWED.verify(token, now=time.time(), leeway=LEEWAY)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@PROPERTY
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5u"]), json_values, max_size=5),
    payload=st.dictionaries(
        st.sampled_from(["eis", "exp", "iat", "sid", "st", "rdr", "nbf", "aud"]), json_values, max_size=8
    ),
)
def test_correctly_signed_garbage_never_escapes(header: dict[str, Any], payload: dict[str, Any]) -> None:
    """Even signed with the real key (or, in the window, the retired HS256 one), odd headers and
    claims give a clean error or a well-formed ticket."""
    checked_at = time.time()
    for token, check in (
        (eddsa({**header, "alg": "EdDSA", "kid": KEY.kid}, payload, KEY), verify),
        (
            hs256({**header, "alg": "HS256", "kid": LEGACY.keys[0].kid}, payload, LEGACY.keys[0].secret),
            lambda token, at: WINDOWED.verify(token, now=at, leeway=LEEWAY),
        ),
    ):
        try:
            ticket = check(token, at=checked_at)
        except SignInLinksError as error:
            assert error.code in (ErrorCode.TICKET_INVALID, ErrorCode.TICKET_EXPIRED)
        else:
            assert ticket.sid.startswith("sit_")
            assert payload.get("st") == "sign_in_token"
            assert ticket.expires_at + LEEWAY >= checked_at


# -- tampering ----------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data(), sid=sids, lifetime=st.integers(min_value=3600, max_value=30 * 86400))
def test_a_changed_character_is_never_a_different_accepted_token(data: st.DataObject, sid: str, lifetime: int) -> None:
    """Change, insert or delete one character anywhere. The result is rejected, unless it decodes
    to exactly the same header, claims and signature bytes (base64's unused trailing bits)."""
    token = genuine(sid, lifetime)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    action = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="action")
    char = data.draw(st.sampled_from(B64URL + ".=+/ !~\x00é"), label="char")
    if action == "replace":
        tampered = token[:position] + char + token[position + 1 :]
    elif action == "insert":
        tampered = token[:position] + char + token[position:]
    else:
        tampered = token[:position] + token[position + 1 :]
    assume(tampered != token)
    try:
        ticket = verify(tampered)
    except SignInLinksError as error:
        assert error.code is ErrorCode.TICKET_INVALID
    else:
        assert decoded_parts(tampered) == decoded_parts(token), f"accepted a different token: {position} {action}"
        assert ticket.sid == sid


@PROPERTY
@given(
    sid=sids,
    changes=st.dictionaries(
        st.sampled_from(["sid", "exp", "eis", "iat", "st", "rdr"]),
        st.integers() | st.text(max_size=30) | st.none(),
        min_size=1,
    ),
)
def test_a_rewritten_payload_keeps_the_old_signature_and_fails(sid: str, changes: dict[str, Any]) -> None:
    token = genuine(sid)
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims.update(changes)
    forged_payload = b64(json.dumps(claims).encode())
    assume(forged_payload != payload)
    assert_invalid(f"{header}.{forged_payload}.{signature}")


@PROPERTY
@given(sid=sids, extra=st.dictionaries(st.sampled_from(["typ", "cty", "x", "jku", "kid"]), st.text(max_size=10)))
def test_a_rewritten_header_keeps_the_old_signature_and_fails(sid: str, extra: dict[str, str]) -> None:
    token = genuine(sid)
    header, payload, signature = token.split(".")
    fields = json.loads(unb64(header))
    fields.update(extra)
    forged_header = b64(json.dumps(fields).encode())
    assume(forged_header != header)
    assert_invalid(f"{forged_header}.{payload}.{signature}")


@PROPERTY
@given(sid=sids, cut=st.integers(min_value=1, max_value=400))
def test_truncated_tokens_fail(sid: str, cut: int) -> None:
    token = genuine(sid)
    assume(cut < len(token))
    assert_invalid(token[: len(token) - cut])


@PROPERTY
@given(sid=sids, seed=st.binary(min_size=32, max_size=32))
def test_re_signed_with_another_key_under_a_known_kid_fails(sid: str, seed: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assume(seed != KEY.seed)
    forged = eddsa({"alg": "EdDSA", "kid": KEY.kid}, claims_for(sid, 3600), Ed25519PrivateKey.from_private_bytes(seed))
    assert_invalid(forged)


@PROPERTY
@given(sid=sids, kid=st.none() | st.integers() | st.text(max_size=40) | st.lists(st.text(max_size=5), max_size=2))
def test_unknown_missing_or_odd_kid_fails(sid: str, kid: Any) -> None:
    assume(kid not in KEYRING.kids)
    header = {"alg": "EdDSA", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    # Signed with a real key of the ring, but the header does not name it.
    assert_invalid(eddsa(header, claims_for(sid, 3600), KEY))


@PROPERTY
@given(
    sid=sids,
    alg=st.sampled_from(["none", "None", "NONE", "nOnE", "", "eddsa", "EdDSA ", "EDDSA", "Ed25519", "hs256"]),
    signature=st.sampled_from(["", "AAAA", "e30"]),
)
def test_alg_none_and_spelling_tricks_fail(sid: str, alg: str, signature: str) -> None:
    header_b64 = b64(json.dumps({"alg": alg, "kid": KEY.kid, "typ": "JWT"}).encode())
    payload_b64 = b64(json.dumps(claims_for(sid, 3600)).encode())
    assert_invalid(f"{header_b64}.{payload_b64}.{signature}")


def test_pyjwt_alg_none_token_fails() -> None:
    token = jwt.encode(claims_for("sit_0123456789abcdefABCDEF", 3600), None, algorithm="none", headers={"kid": KEY.kid})
    assert_invalid(token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_key_bytes_fails(alg: str) -> None:
    """HMAC keyed with the raw public key (what the verification keyring holds: public, so anyone
    could) or with the private key's bytes, under the real kid."""
    for material in (KEY.public, KEY.seed):
        forged = jwt.encode(
            claims_for("sit_0123456789abcdefABCDEF", 3600), material, algorithm=alg, headers={"kid": KEY.kid}
        )
        assert_invalid(forged)
        with pytest.raises(SignInLinksError):  # the window honours HS256 of the retired keyring only
            WINDOWED.verify(forged, now=time.time(), leeway=LEEWAY)


@pytest.mark.parametrize(
    ("alg", "key"),
    [("RS256", RSA_KEY), ("RS512", RSA_KEY), ("PS256", RSA_KEY), ("ES256", EC_KEY)],
    ids=["RS256", "RS512", "PS256", "ES256"],
)
def test_asymmetric_algorithms_fail(alg: str, key: Any) -> None:
    forged = jwt.encode(claims_for("sit_0123456789abcdefABCDEF", 3600), key, algorithm=alg, headers={"kid": KEY.kid})
    assert_invalid(forged)


def test_hs256_keyed_with_a_public_key_fails() -> None:
    """The classic confusion: HMAC keyed with a public key (PEM, as served in a JWKS, or the
    Ed25519 key as PEM), under the kid of a ticket key and under the kid of the RSA key."""
    rsa_ring = Keyring(kind=RSA, keys=(generate_key(RSA, now=NOW),))
    public_pem = (
        rsa_ring.keys[0]
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = claims_for("sit_0123456789abcdefABCDEF", 3600)
    ed_pem = KEY.verifier.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for kid, pem in (
        (KEY.kid, public_pem),
        (rsa_ring.keys[0].kid, public_pem),
        (KEY.kid, RSA_PUBLIC_PEM),
        (KEY.kid, ed_pem),
    ):
        forged = hs256({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, pem)
        assert_invalid(forged)
        # and verifying against the RSA keyring itself (the wrong ring) never accepts either
        assert_invalid(forged, keyring=rsa_ring)


@PROPERTY
@given(sid=sids, lifetime=lifetimes)
def test_a_token_of_another_keyring_fails(sid: str, lifetime: int) -> None:
    """A key that was dropped from the ring (retired, or another stack's) no longer verifies."""
    stranger = generate_key(ED25519, now=NOW)
    stranger = Key(
        kid=KEY.kid, created_at=stranger.created_at, activates_at=0, seed=stranger.seed, public=stranger.public
    )
    assert_invalid(genuine(sid, lifetime, key=stranger))
    assert_invalid(genuine(sid, lifetime, key=OLD_KEY), keyring=Keyring(kind=ED25519, keys=(KEY,)).public())


@PROPERTY
@given(sid=sids, lifetime=st.integers(min_value=3600, max_value=86400), typ=st.text(max_size=20))
def test_a_jwt_of_another_type_signed_with_the_real_key_fails(sid: str, lifetime: int, typ: str) -> None:
    assume(typ != "sign_in_token")
    claims = {**claims_for(sid, lifetime), "st": typ}
    assert_invalid(eddsa({"alg": "EdDSA", "kid": KEY.kid}, claims, KEY))
    session_like = {"sub": "user_1", "sid": "sess_0123456789abcdefABCDEF", "iat": NOW, "exp": NOW + lifetime}
    assert_invalid(eddsa({"alg": "EdDSA", "kid": KEY.kid}, session_like, KEY))
