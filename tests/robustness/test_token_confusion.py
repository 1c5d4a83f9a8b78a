"""Token confusion: a session JWT (RS256) is never accepted as a sign-in token (EdDSA), a sign-in
token is never a session, and a sign-in token (or anything else that is not this browser's real
session) never passes the same-browser retry check. The accept holds the tickets' public keys: they
are no secret, so nothing keyed with them (HMAC over the public key, raw or PEM) may pass."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.ids import new_id
from signin_links.keyring import ED25519, RSA, Keyring, generate_key
from signin_links.session_tokens import issue_session, verify_session
from signin_links.ticket_verification import verify_ticket
from signin_links.tickets import sign_ticket
from tests.conftest import Stack
from tests.handlers import accept, keyring, mint, status_of
from tests.jwts import b64, eddsa, hs256
from tests.robustness.faults import injected

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

NOW = int(time.time())
TICKETS = Keyring(kind=ED25519, keys=(generate_key(ED25519, now=NOW),))
SESSIONS = Keyring(kind=RSA, keys=(generate_key(RSA, now=NOW),))


def session_for(user_id: str = "user_1", ring: Keyring = SESSIONS, session_id: str | None = None) -> str:
    return issue_session(
        ring.current(), session_id=session_id or new_id("sess"), user_id=user_id, issued_at=int(time.time()),
        lifetime=3600, issuer="https://links.example.com",
    )  # fmt: skip


def public_pem(ring: Keyring) -> bytes:
    return (
        ring.current()
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


# -- the parsers -----------------------------------------------------------------------------------


def test_a_session_jwt_is_not_a_sign_in_token() -> None:
    session = session_for()
    for ring in (TICKETS.public(), TICKETS, SESSIONS):
        with pytest.raises(SignInLinksError) as caught:
            verify_ticket(session, ring, now=time.time(), leeway=30)
        assert caught.value.code is ErrorCode.TICKET_INVALID
    # Not even under a ticket key's kid, nor with the ticket's own claims in it.
    claims = jwt.decode(session, options={"verify_signature": False})
    ticket_claims = {**claims, "sid": new_id("sit"), "st": "sign_in_token", "eis": 600}
    key = SESSIONS.current()
    for payload in (claims, ticket_claims):
        forged = jwt.encode(payload, key.private_key, algorithm="RS256", headers={"kid": TICKETS.current().kid})
        with pytest.raises(SignInLinksError):
            verify_ticket(forged, TICKETS.public(), now=time.time(), leeway=30)


def test_a_sign_in_token_is_not_a_session() -> None:
    ticket = sign_ticket(TICKETS.current(), sid=new_id("sit"), issued_at=int(time.time()), expires_in_seconds=600)
    assert verify_session(ticket, SESSIONS, now=time.time()) is None
    assert verify_session(ticket, TICKETS, now=time.time()) is None
    # Session claims signed with a ticket key (EdDSA), under its kid or the session key's: no session.
    claims = jwt.decode(session_for(), options={"verify_signature": False})
    for kid in (TICKETS.current().kid, SESSIONS.current().kid):
        forged = eddsa({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims, TICKETS.current())
        assert verify_session(forged, SESSIONS, now=time.time()) is None
        assert verify_session(forged, TICKETS, now=time.time()) is None


def test_session_claims_under_hs256_keyed_with_the_public_key_are_not_a_session() -> None:
    claims = jwt.decode(session_for(), options={"verify_signature": False})
    kid = SESSIONS.current().kid
    for alg in ("HS256", "HS384", "none"):
        forged = hs256({"alg": alg, "kid": kid, "typ": "JWT"}, claims, public_pem(SESSIONS))
        assert verify_session(forged, SESSIONS, now=time.time()) is None


def test_a_session_signed_by_another_rsa_key_under_our_kid_is_not_a_session() -> None:
    stranger = generate_key(RSA, now=NOW)
    impostor = Keyring(kind=RSA, keys=(type(stranger)(kid=SESSIONS.current().kid, created_at=NOW, activates_at=NOW,
                                                       private_key_pem=stranger.private_key_pem),))  # fmt: skip
    assert verify_session(session_for(ring=impostor), SESSIONS, now=time.time()) is None
    assert verify_session(session_for(), SESSIONS, now=time.time()) is not None  # the real one is


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400) | st.from_regex(r"\AeyJ[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_.=-]{0,80}\Z"))
@example("\ud800")
@example("eyJhbGciOiJSUzI1NiJ9.\ud800.x")
def test_verify_session_never_raises(value: str) -> None:
    assert verify_session(value, SESSIONS, now=time.time()) is None


# -- through the accept handler --------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_a_session_jwt_posted_as_the_token_is_invalid_and_changes_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    minted = mint(context)
    first = accept(context, minted["token"])
    assert first.status == 200
    session = first.json()["session_token"]
    # a session of the real session keyring, forged into the shape of a ticket, is no better
    real_session_key = keyring(stack, "SESSION_KEYRING_SECRET_ID").current()
    claims = {"sid": minted["id"], "st": "sign_in_token", "iat": NOW, "exp": NOW + 600, "eis": 600}
    rs256_ticket = jwt.encode(claims, real_session_key.private_key, algorithm="RS256",
                              headers={"kid": real_session_key.kid})  # fmt: skip
    with injected(monkeypatch) as aws:
        answer = accept(context, session, as_json=as_json)
        assert answer.status == 400, answer.body
        assert answer.code == "ticket_invalid_code"
        assert not answer.cookies
        assert accept(context, rs256_ticket, as_json=as_json).code == "ticket_invalid_code"
    assert aws.table_writes() == 0


def test_hs256_keyed_with_the_published_public_key_is_invalid(stack: Stack, context: Any) -> None:
    """The JWKS and the tickets' verification keys are public: signing a ticket with HMAC over a
    public key (the session JWKS's as PEM, a ticket key's raw bytes or PEM) must not work."""
    minted = mint(context)
    ring = keyring(stack, "SESSION_KEYRING_SECRET_ID")
    claims = jwt.decode(minted["token"], options={"verify_signature": False})
    ticket_kid = jwt.get_unverified_header(minted["token"])["kid"]
    ticket_key = keyring(stack, "TICKET_VERIFICATION_KEYRING_SECRET_ID").get(ticket_kid)
    assert ticket_key is not None and not ticket_key.seed  # what the accept holds: public keys only
    ticket_pem = ticket_key.verifier.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for kid, material in (
        (ticket_kid, public_pem(ring)),
        (ring.current().kid, public_pem(ring)),
        (ticket_kid, ticket_key.public),
        (ticket_kid, ticket_pem),
    ):
        forged = hs256({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, material)
        answer = accept(context, forged)
        assert answer.status == 400, answer.body
        assert answer.code == "ticket_invalid_code"
    assert status_of(stack, minted["id"]) == "pending"


def test_an_eddsa_ticket_of_another_key_under_our_kid_is_invalid(stack: Stack, context: Any) -> None:
    """Another stack's (or an attacker's) Ed25519 key, presenting the kid of ours."""
    minted = mint(context)
    claims = jwt.decode(minted["token"], options={"verify_signature": False})
    ticket_kid = jwt.get_unverified_header(minted["token"])["kid"]
    stranger = generate_key(ED25519, now=NOW)
    forged = eddsa({"alg": "EdDSA", "kid": ticket_kid, "typ": "JWT"}, {**claims, "uid": "user_attacker"}, stranger)
    answer = accept(context, forged)
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_invalid_code"
    assert status_of(stack, minted["id"]) == "pending"


def test_the_same_browser_retry_accepts_only_the_real_session(stack: Stack, context: Any) -> None:
    minted = mint(context, user_id="user_victim")
    first = accept(context, minted["token"])
    assert first.status == 200
    real = first.json()["session_token"]
    other = mint(context, user_id="user_attacker")
    other_session = accept(context, other["token"]).json()["session_token"]
    ring = keyring(stack, "SESSION_KEYRING_SECRET_ID")
    claims = jwt.decode(real, options={"verify_signature": False})
    impostors = {
        "the sign-in token itself": minted["token"],
        "another sign-in token": mint(context, user_id="user_victim")["token"],
        "another user's session": other_session,
        "the same user, another session": session_for("user_victim", ring),
        "HS256 over the public key": hs256({"alg": "HS256", "kid": ring.current().kid}, claims, public_pem(ring)),
        "alg none": f"{b64(json.dumps({'alg': 'none', 'kid': ring.current().kid}).encode())}."
        f"{b64(json.dumps(claims).encode())}.",
        "the real session, payload swapped": ".".join(
            [real.split(".")[0], b64(json.dumps({**claims, "sub": "user_attacker"}).encode()), real.split(".")[2]]
        ),
    }
    for label, cookie in impostors.items():
        answer = accept(context, minted["token"], cookies=[f"__session={cookie}"])
        if label == "another user's session":  # login CSRF guard: asks first, changes nothing
            assert answer.status == 409, label
            assert answer.code == "another_user_signed_in", label
            assert not answer.cookies, label
            answer = accept(context, minted["token"], cookies=[f"__session={cookie}"], confirm="switch_user")
        assert answer.status == 400, label
        assert answer.code == "sign_in_token_already_used_code", label
        assert not answer.cookies, label
    retried = accept(context, minted["token"], cookies=[f"__session={real}"])
    assert retried.status == 200, retried.body
    assert retried.json()["created_session_id"] == claims["sid"]


# --- Clerk's Frontend API: the __Host-client credential (functions/clerk_frontend) -----------------


def test_a_client_credential_is_neither_a_session_jwt_nor_a_sign_in_token_and_the_reverse(
    stack: Stack, context: Any
) -> None:
    """Each credential is refused wherever another is expected: the ``__Host-client`` value as a
    sign-in token and as ``__session``; a session JWT, a sign-in token and a refresh token as
    ``__Host-client``; nothing is consumed or ended by any of them."""
    from urllib.parse import quote

    from tests.conftest import load_event
    from tests.handlers import invoke

    def frontend(event: dict[str, Any]) -> Any:
        return invoke("clerk_frontend", event, context)

    minted = mint(context, "user_confused")
    event = load_event("frontend_sign_in.json")
    event["body"] = f"strategy=ticket&ticket={quote(minted['token'])}"
    signed_in = frontend(event)
    assert signed_in.status == 200
    [cookie] = [c for c in signed_in.cookies if c.startswith("__Host-client=")]
    client_value = cookie.split(";", 1)[0].split("=", 1)[1]
    session = signed_in.json()["client"]["sessions"][0]
    session_jwt, session_id = session["last_active_token"]["jwt"], session["id"]

    # The client value as a sign-in token: invalid, on the accept and the Frontend API.
    other = mint(context, "user_confused_other")
    assert accept(context, client_value).code == "ticket_invalid_code"
    event = load_event("frontend_sign_in.json")
    event["body"] = f"strategy=ticket&ticket={quote(client_value)}"
    assert frontend(event).code == "ticket_invalid_code"
    # The client value as __session: no same-browser retry, no "another user" question.
    assert (
        accept(context, minted["token"], cookies=[f"__session={client_value}"]).code
        == "sign_in_token_already_used_code"
    )

    # A session JWT, a sign-in token or a refresh token as the client: no client, 401 on its routes.
    refresh = accept(context, mint(context, "user_confused_page")["token"]).refresh_cookie()["__Host-refresh"].value
    for forged in (session_jwt, other["token"], refresh):
        client = load_event("frontend_client.json")
        client["cookies"] = [f"__Host-client={forged}"]
        assert frontend(client).json()["response"] is None
        tokens = load_event("frontend_session_token.json")
        tokens["rawPath"] = tokens["requestContext"]["http"]["path"] = f"/v1/client/sessions/{session_id}/tokens"
        tokens["pathParameters"] = {"session_id": session_id}
        tokens["cookies"] = [f"__Host-client={forged}"]
        assert frontend(tokens).status in (401, 404)
        out = load_event("frontend_sign_out.json")
        out["cookies"] = [f"__Host-client={forged}"]
        frontend(out)
    item = stack.item(session_id)
    assert item is not None
    assert item["status"]["S"] == "active"
    assert status_of(stack, other["id"]) == "pending"
