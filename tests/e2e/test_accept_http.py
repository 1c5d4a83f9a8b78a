"""Accepting links over HTTP against the local stack: scanners never burn a link, exactly one of
many concurrent redemptions wins, and the session verifies against the stack's JWKS URL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt

from tests.e2e.conftest import LocalStackHandle

SCANNER_HEADERS = {"user-agent": "Mozilla/5.0 (compatible; SafeLinks-scanner)", "accept": "*/*"}
PARALLEL = 24


def test_scanner_get_and_head_leave_the_token_pending(local_stack: LocalStackHandle) -> None:
    minted = local_stack.mint()
    with httpx.Client(headers=SCANNER_HEADERS, follow_redirects=True, timeout=30) as scanner:
        for _ in range(3):
            page = scanner.get(minted["url"])
            assert page.status_code == 200, page.text
            assert page.headers["cache-control"] == "no-store"
            assert 'method="post"' in page.text
            probe = scanner.head(minted["url"])
            assert probe.status_code == 200, probe.text
            assert probe.content == b""
        # Only the form's CSRF nonce; never a session cookie.
        assert [value.split("=", 1)[0] for value in page.headers.get_list("set-cookie")] == ["__Host-csrf"]
        assert "set-cookie" not in probe.headers
    assert local_stack.status(minted["id"]) == "pending"
    answer = httpx.post(
        f"{local_stack.base_url}/accept-token", data={"token": minted["token"]}, headers={"accept": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert local_stack.status(minted["id"]) == "accepted"


def test_exactly_one_of_many_concurrent_redemptions_wins(local_stack: LocalStackHandle) -> None:
    minted = local_stack.mint()
    start = threading.Barrier(PARALLEL)

    def redeem(client: httpx.Client) -> httpx.Response:
        start.wait(timeout=60)
        return client.post("/accept-token", json={"token": minted["token"]}, headers={"accept": "application/json"})

    limits = httpx.Limits(max_connections=PARALLEL)
    with (
        httpx.Client(base_url=local_stack.base_url, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(max_workers=PARALLEL) as pool,
    ):
        answers = list(pool.map(redeem, [client] * PARALLEL))
    winners = [answer for answer in answers if answer.status_code == 200]
    losers = [answer for answer in answers if answer.status_code != 200]
    assert len(winners) == 1, [answer.status_code for answer in answers]
    assert {(answer.status_code, answer.json()["errors"][0]["code"]) for answer in losers} == {
        (400, "sign_in_token_already_used_code")
    }
    item = local_stack.item(minted["id"])
    assert item is not None
    assert item["status"]["S"] == "accepted"
    assert item["session_id"]["S"] == winners[0].json()["created_session_id"]


def test_session_verifies_against_the_jwks_url(local_stack: LocalStackHandle) -> None:
    minted = local_stack.mint(org_id="org_e2e", redirect_url=f"{local_stack.base_url}/welcome")
    answer = httpx.post(
        f"{local_stack.base_url}/accept-token", data={"token": minted["token"]}, headers={"accept": "application/json"}
    )
    assert answer.status_code == 200
    body = answer.json()
    token = body["session_token"]
    signing_key = jwt.PyJWKClient(f"{local_stack.base_url}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], issuer=local_stack.base_url)
    assert claims["sub"] == "user_e2e"
    assert claims["sid"] == body["created_session_id"]
    assert claims["o"] == {"id": "org_e2e"}
    assert claims["azp"] == local_stack.base_url
    assert "aud" not in claims
    assert body["redirect_url"] == f"{local_stack.base_url}/welcome"


def test_revoked_and_tampered_links_fail_with_their_codes(local_stack: LocalStackHandle, api: httpx.Client) -> None:
    minted = local_stack.mint()
    assert api.post(f"/v1/sign_in_tokens/{minted['id']}/revoke").status_code == 200
    accept = f"{local_stack.base_url}/accept-token"
    revoked = httpx.post(accept, data={"token": minted["token"]}, headers={"accept": "text/html"})
    assert revoked.status_code == 400, revoked.text
    assert "sign_in_token_revoked_code" in revoked.text
    assert revoked.headers["content-type"] == "text/html; charset=utf-8"
    tampered = httpx.post(accept, json={"token": minted["token"][:-2] + "xx"})
    assert tampered.status_code == 400, tampered.text
    assert tampered.json()["errors"][0]["code"] == "ticket_invalid_code"
    assert tampered.headers["content-type"] == "application/json"


# --- Redirects that HTTP cannot carry ----------------------------------------------------------


def resign(local_stack: LocalStackHandle, token: str, redirect_url: str) -> str:
    """The same token re-signed with the stack's ticket key around a raw ``rdr``, as mint signed
    redirects before they were normalised (such tokens are still in mailboxes)."""
    from signin_links.keyring import parse_keyring
    from signin_links.tickets import sign_ticket

    secret = local_stack.state["secrets"]["TicketSigningKeyringSecret"]
    raw = local_stack.aws("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    key = parse_keyring(raw).get(jwt.get_unverified_header(token)["kid"])
    assert key is not None
    claims = jwt.decode(token, options={"verify_signature": False})
    return sign_ticket(
        key, sid=claims["sid"], issued_at=claims["iat"], expires_in_seconds=claims["eis"], redirect_url=redirect_url
    )


def browser_post(local_stack: LocalStackHandle, token: str) -> httpx.Response:
    return httpx.post(
        f"{local_stack.base_url}/accept-token",
        data={"token": token},
        headers={"accept": "text/html"},
        follow_redirects=False,
        timeout=30,
    )


def test_a_non_ascii_redirect_signs_in_and_lands_on_its_ascii_url(local_stack: LocalStackHandle) -> None:
    base = local_stack.base_url
    minted = local_stack.mint(redirect_url=f"{base}/café/日本?q=é")
    sent = f"{base}/caf%C3%A9/%E6%97%A5%E6%9C%AC?q=%C3%A9"
    assert jwt.decode(minted["token"], options={"verify_signature": False})["rdr"] == sent
    answer = browser_post(local_stack, minted["token"])
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == sent
    assert answer.headers["set-cookie"].startswith("__session=")
    assert local_stack.status(minted["id"]) == "accepted"


def test_an_old_token_with_a_raw_non_ascii_redirect_still_signs_in(local_stack: LocalStackHandle) -> None:
    """Sent raw, its Location made the local stack drop the connection after the token was consumed."""
    base = local_stack.base_url
    minted = local_stack.mint(redirect_url=f"{base}/start")
    old = resign(local_stack, minted["token"], f"{base}/日本")
    answer = browser_post(local_stack, old)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{base}/%E6%97%A5%E6%9C%AC"
    assert answer.headers["set-cookie"].startswith("__session=")
    assert local_stack.status(minted["id"]) == "accepted"


def test_an_old_token_whose_redirect_cannot_be_sent_is_refused_and_stays_pending(
    local_stack: LocalStackHandle,
) -> None:
    base = local_stack.base_url
    minted = local_stack.mint(redirect_url=f"{base}/start")
    for raw in (f"{base}/\ud800", "https://[x/"):
        old = resign(local_stack, minted["token"], raw)
        page = httpx.get(f"{base}/accept-token", params={"token": old}, headers={"accept": "text/html"}, timeout=30)
        assert page.status_code == 400, page.text
        assert "ticket_invalid_code" in page.text
        answer = browser_post(local_stack, old)
        assert answer.status_code == 400, answer.text
        assert "ticket_invalid_code" in answer.text
        assert "set-cookie" not in answer.headers
    assert local_stack.status(minted["id"]) == "pending"
