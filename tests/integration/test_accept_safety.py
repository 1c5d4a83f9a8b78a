"""The accept function's defences: forged and malformed tokens, bad bodies, security headers on
every response, metrics for each outcome and an audit event (from the table's stream) for each
committed change, and no token in any log line."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from datetime import datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signin_links.observability import logger
from tests.conftest import Stack, load_event
from tests.handlers import HTML, Answer, call_accept, get, head, keyring, mint, post, revoke, status_of
from tests.jwts import b64, hs256
from tests.pipes import audit_pipe, bus_queue
from tests.robustness.faults import injected

SECURITY_HEADERS = ("Cache-Control", "Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options")


def forgeries(stack: Stack, context: Any, token: str) -> dict[str, str]:
    """Ways to turn a genuine token into one that must be refused (each for the same sid)."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    head_b64, payload_b64, signature = token.split(".")
    longer = {**claims, "exp": claims["exp"] + 3600}
    session_key = keyring(stack, "SESSION_KEYRING_SECRET_ID").current()
    public_pem = session_key.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    session = post(context, mint(context)["token"], accept="application/json").json()["session_token"]
    return {
        "tampered payload": f"{head_b64}.{b64(json.dumps(longer).encode())}.{signature}",
        "tampered signature": f"{head_b64}.{payload_b64}.{signature[:-4]}AAAA",
        "truncated": token[: len(token) // 2],
        "alg none": jwt.encode(claims, "", algorithm="none", headers={"kid": header["kid"]}),
        "alg none, no signature": f"{b64(json.dumps({'alg': 'none', 'kid': header['kid']}).encode())}.{payload_b64}.",
        "unknown kid": hs256({**header, "kid": "hmac-unknown"}, claims, b"k" * 32),
        "no kid": hs256({"alg": "HS256", "typ": "JWT"}, claims, b"k" * 32),
        "HS256 with a wrong key": hs256(header, claims, b"not-the-ticket-key-but-32-bytes!"),
        "HS384 with the right kid": jwt.encode(claims, b"x" * 48, algorithm="HS384", headers={"kid": header["kid"]}),
        "HS256 keyed with the session public key": hs256({"alg": "HS256", "kid": session_key.kid}, claims, public_pem),
        "RS256 session JWT as a ticket": session,
        "RS256 ticket signed by the session key": jwt.encode(
            claims, session_key.private_key, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "not a JWT": "hello",
        "oversized": "a" * 5000,
    }


def test_forged_and_malformed_tokens_are_invalid_and_consume_nothing(stack: Stack, context: Any) -> None:
    minted = mint(context)
    for name, forged in forgeries(stack, context, minted["token"]).items():
        for accept in (HTML, "application/json"):
            answer = post(context, forged, accept=accept)
            assert (answer.status, answer.code) == (400, "ticket_invalid_code"), name
            assert answer.cookies == [], name
        page = get(context, forged)
        assert (page.status, page.code) == (400, "ticket_invalid_code"), name
        assert "This sign-in link is not valid" in page.body
        assert "Ask for a new sign-in link." in page.body
    assert status_of(stack, minted["id"]) == "pending"
    assert post(context, minted["token"], accept="application/json").status == 200  # the real one still works


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("", "application/x-www-form-urlencoded", 422, "form_param_missing"),
        ("token=", "application/x-www-form-urlencoded", 422, "form_param_missing"),
        ("other=1", "application/x-www-form-urlencoded", 422, "form_param_missing"),
        ("token=a&token=b", "application/x-www-form-urlencoded", 422, "form_param_missing"),
        ("{}", "application/json", 422, "form_param_missing"),
        ('{"token": 12}', "application/json", 400, "ticket_invalid_code"),
        ('{"token": ["x"]}', "application/json", 400, "ticket_invalid_code"),
        ("{nope", "application/json", 400, "request_body_invalid"),
        ("[1]", "application/json; charset=utf-8", 400, "request_body_invalid"),
        ("token=x", "multipart/form-data; boundary=x", 400, "request_body_invalid"),
        ("token=" + "a" * 17000, "application/x-www-form-urlencoded", 413, "request_body_too_large"),
    ],
)
def test_bad_bodies_are_clear_4xx(
    stack: Stack, context: Any, body: str, content_type: str, status: int, code: str
) -> None:
    event = load_event("accept_token_post.json")
    event["body"] = body
    event["headers"].update({"content-type": content_type, "accept": "application/json"})
    answer = call_accept(event, context)
    assert (answer.status, answer.code) == (status, code)
    assert answer.headers["Content-Type"] == "application/json"


def test_every_response_carries_the_security_headers(stack: Stack, context: Any) -> None:
    minted = mint(context, redirect_url="https://app.example.com/x")
    unknown = load_event("jwks.json")
    unknown["rawPath"] = unknown["requestContext"]["http"]["path"] = "/nope"
    answers: dict[str, Answer] = {
        "page": get(context, minted["token"]),
        "page without token": get(context),
        "error page": get(context, "bad"),
        "head": head(context),
        "303": post(context, minted["token"]),
        "already used (html)": post(context, minted["token"]),
        "already used (json)": post(context, minted["token"], accept="application/json"),
        "signed in page": post(context, mint(context)["token"]),
        "json": post(context, mint(context)["token"], accept="application/json"),
        "jwks": call_accept(load_event("jwks.json"), context),
        "unknown route": call_accept(unknown, context),
    }
    for name, answer in answers.items():
        for header in SECURITY_HEADERS:
            assert header in answer.headers, (name, header)
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp, name
        assert "frame-ancestors 'none'" in csp, name
        assert "base-uri 'none'" in csp, name
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        expected_cache = "public, max-age=240" if name == "jwks" else "no-store"
        assert answer.headers["Cache-Control"] == expected_cache, name


def test_inline_script_and_style_are_allowed_by_hash_only(stack: Stack, context: Any) -> None:
    page = get(context)
    csp = page.headers["Content-Security-Policy"]
    (script,) = re.findall(r"<script>(.*?)</script>", page.body, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page.body, re.S)

    def source(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {source(script)};" in csp
    assert f"style-src {source(style)};" in csp
    assert "unsafe-inline" not in csp
    assert "<script src" not in page.body
    # The form posts to this origin, and the redirect after it may go to any allowed origin.
    assert "form-action 'self' https://app.example.com http://127.0.0.1:3000;" in csp


# --- metrics, audit events, logs -------------------------------------------------------------


def emitted_metrics(output: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, dimensions) of every EMF blob printed."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dims = {name: blob[name] for group in directive["Dimensions"] for name in group}
            found.extend((metric["Name"], dims) for metric in directive["Metrics"])
    return found


def test_each_outcome_is_counted_and_each_committed_change_is_audited_once(
    stack: Stack, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    received = bus_queue(stack)
    pipe = audit_pipe(stack)
    accepted = mint(context)
    revoked = mint(context)
    revoke(context, revoked["id"])
    capsys.readouterr()
    first = post(context, accepted["token"])
    session = first.session_cookie()["__session"].value
    post(context, accepted["token"], cookie=session)  # same-browser retry: nothing written
    post(context, accepted["token"])  # already used: nothing written
    post(context, revoked["token"])  # revoked: nothing written
    post(context, "not-a-token")
    metrics = emitted_metrics(capsys.readouterr().out)
    names = [name for name, _ in metrics]
    assert names.count("SignInTokensAccepted") == 2
    assert names.count("SignInTokenRetriesAccepted") == 1
    reasons = sorted(dims["reason"] for name, dims in metrics if name == "SignInTokensRejected")
    assert reasons == ["already_used", "invalid", "revoked"]

    # The revoke, then the accept's one transaction: the token accepted and the session created.
    assert pipe.drain() == 3
    events = received()
    assert {event["source"] for event in events} == {"signin-links"}
    by_type = {event["detail-type"]: event for event in events}
    assert events[0]["detail-type"] == "SignInTokenRevoked"
    assert sorted(by_type) == ["SessionCreated", "SignInTokenAccepted", "SignInTokenRevoked"]
    session_id = jwt.decode(session, options={"verify_signature": False})["sid"]
    assert by_type["SignInTokenRevoked"]["detail"] == {"sign_in_token_id": revoked["id"], "user_id": revoked["user_id"]}
    assert by_type["SignInTokenAccepted"]["detail"] == {
        "sign_in_token_id": accepted["id"],
        "user_id": accepted["user_id"],
        "session_id": session_id,
        "retried": False,
    }
    created = by_type["SessionCreated"]["detail"]
    assert created["session_id"] == session_id
    assert created["sign_in_token_id"] == accepted["id"]
    assert created["user_id"] == accepted["user_id"]
    assert created["client_id"].startswith("client_")
    updated_at = int(stack.item(accepted["id"])["updated_at"]["N"])  # type: ignore[index]
    accepted_at = by_type["SignInTokenAccepted"]["time"]
    assert abs(datetime.fromisoformat(accepted_at.replace("Z", "+00:00")).timestamp() - updated_at / 1000) < 1
    assert accepted["token"] not in json.dumps(events)
    assert session not in json.dumps(events)
    assert pipe.drain() == 0, "an event twice"
    assert received() == [], "an event twice"
    assert pipe.stats.dropped == 0
    assert pipe.stats.dead_lettered_batches == 0


def test_an_accept_calls_no_aws_service_but_its_one_write(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(context, redirect_url="https://app.example.com/")
    post(context, mint(context)["token"])  # warm: the keyrings are cached, as in a warm function
    with injected(monkeypatch) as faults:
        answer = post(context, minted["token"])
        made = [(service, operation) for service, operation, _ in faults.calls]
    assert made == [("dynamodb", "TransactWriteItems")]  # the token's update and the session's put
    assert answer.status == 303, answer.body
    assert status_of(stack, minted["id"]) == "accepted"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(logger.registered_formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


def capture_logs() -> _Records:
    handler = _Records()
    logging.getLogger(logger.name).addHandler(handler)
    return handler


def release_logs(handler: _Records) -> None:
    logging.getLogger(logger.name).removeHandler(handler)


def test_no_log_line_carries_a_token(stack: Stack, context: Any, capsys: pytest.CaptureFixture[str]) -> None:
    handler = capture_logs()
    logger.setLevel("DEBUG")
    try:
        minted = mint(context, redirect_url="https://app.example.com/")
        revoked = mint(context)
        revoke(context, revoked["id"])
        get(context, minted["token"])
        head(context, minted["token"])
        first = post(context, minted["token"])
        session = first.session_cookie()["__session"].value
        post(context, minted["token"], cookie=session)
        post(context, minted["token"], cookie=session + "x")
        post(context, revoked["token"], accept="application/json")
        post(context, minted["token"][:-3], accept="application/json")
        get(context, minted["token"][:-3])
    finally:
        logger.setLevel("INFO")
        release_logs(handler)
    output = "\n".join(handler.lines) + capsys.readouterr().out
    assert "sign-in accepted" in output
    assert "sign-in rejected" in output  # the capture did see the logs
    for secret in (minted["token"], revoked["token"], session, minted["token"][:-3]):
        assert secret not in output
        assert secret.split(".")[2] not in output  # not even the signature part
    assert "accept-token?token=" not in output
