"""Fault injection on the accept page: Secrets Manager and DynamoDB errors, throttling and outages
give a 503 with ``Retry-After`` (the JSON envelope, or a page for a browser), and a token is never
consumed without a session; EventBridge failing never fails a sign-in (the accept never calls it)
and loses no audit event (the pipe retries)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import Stack, reset_caches
from tests.handlers import HTML, JSON, Answer, accept, accept_get_event, invoke, mint, status_of
from tests.pipes import audit_pipe, bus_queue
from tests.robustness.faults import DYNAMODB_FAULTS, SECRETS_FAULTS, ErrorFactory, client_error, injected, secret_is

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

EVENTS_FAULTS: dict[str, ErrorFactory] = {
    "ThrottlingException": client_error("ThrottlingException"),
    "InternalException": client_error("InternalException", 500),
    "EndpointConnectionError": DYNAMODB_FAULTS["EndpointConnectionError"],
}


def assert_unavailable(answer: Answer, *, as_json: bool = True) -> None:
    assert answer.status == 503, answer.body[:500]
    assert int(answer.headers["Retry-After"]) >= 1
    assert not answer.cookies, "a session cookie on a failed sign-in"
    assert "injected" not in answer.body, "the AWS error leaked into the response"
    if as_json:
        assert answer.headers["Content-Type"] == JSON
        body = answer.json()
        assert set(body) == {"errors", "clerk_trace_id"}
        assert body["errors"][0]["code"] == "service_unavailable"
    else:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert answer.code == "service_unavailable"
        assert answer.headers.get("Cache-Control") == "no-store"


@pytest.mark.parametrize("fault", SECRETS_FAULTS.values(), ids=SECRETS_FAULTS.keys())
@pytest.mark.parametrize("secret", ["TICKET_VERIFICATION_KEYRING_SECRET_ID", "SESSION_KEYRING_SECRET_ID"])
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_accept_with_secrets_manager_failing_is_503_and_consumes_nothing(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory, secret: str, as_json: bool
) -> None:
    minted = mint(context)
    reset_caches()  # a cold accept function: keyrings must be read
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", "GetSecretValue", fault, when=secret_is(stack, secret))
        assert_unavailable(accept(context, minted["token"], as_json=as_json), as_json=as_json)
        assert faults.failed, "the injected fault never fired"
        assert faults.count("dynamodb") == 0, "wrote to the table without its keys"
        assert status_of(stack, minted["id"]) == "pending"
        faults.clear()
        answer = accept(context, minted["token"], as_json=as_json)
        assert answer.status in (200, 303)
        assert answer.cookies
        assert status_of(stack, minted["id"]) == "accepted"


@pytest.mark.parametrize("fault", DYNAMODB_FAULTS.values(), ids=DYNAMODB_FAULTS.keys())
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_accept_with_dynamodb_failing_is_503_and_leaves_the_token_pending(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory, as_json: bool
) -> None:
    pipe = audit_pipe(stack)
    minted = mint(context)
    before = stack.item(minted["id"])
    with injected(monkeypatch) as faults:
        # The accept's one DynamoDB call: the token's update and the session's put, one transaction.
        faults.fail("dynamodb", "TransactWriteItems", fault)
        assert_unavailable(accept(context, minted["token"], as_json=as_json), as_json=as_json)
        assert faults.failed == [("dynamodb", "TransactWriteItems")]
        made = [(service, operation) for service, operation, _ in faults.calls if service != "secretsmanager"]
        assert made == [("dynamodb", "TransactWriteItems")], "the accept made another call than its one write"
        assert stack.item(minted["id"]) == before
        # Its audit events come from that write's stream records: none were written, none are announced.
        assert pipe.drain() == 0, "announced an acceptance that did not happen"
        faults.clear()
        assert accept(context, minted["token"], as_json=as_json).status in (200, 303)
    assert pipe.drain() == 2  # the same pipe announces the acceptance that did happen


@pytest.mark.parametrize("fault", EVENTS_FAULTS.values(), ids=EVENTS_FAULTS.keys())
def test_an_eventbridge_outage_neither_fails_a_sign_in_nor_loses_its_audit_event(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory
) -> None:
    received = bus_queue(stack)
    backoffs: list[float] = []
    pipe = audit_pipe(stack, sleep=backoffs.append)
    minted = mint(context)
    outage = itertools.count()
    with injected(monkeypatch) as faults:
        faults.fail("events", "PutEvents", fault, when=lambda params: next(outage) < 3)  # 3 calls fail
        answer = accept(context, minted["token"])
        assert answer.status == 200, answer.body
        assert answer.cookies
        assert faults.count("events") == 0, "the sign-in called EventBridge"
        assert pipe.drain() == 2  # the token accepted and the session created, in one transaction
        assert faults.failed == [("events", "PutEvents")] * 3
    assert status_of(stack, minted["id"]) == "accepted"
    assert len(backoffs) == 3, "retried without backing off"
    assert backoffs == sorted(backoffs), "retried without backing off"
    events = received()
    assert sorted(event["detail-type"] for event in events) == ["SessionCreated", "SignInTokenAccepted"]
    assert {event["detail"]["sign_in_token_id"] for event in events} == {minted["id"]}


@pytest.mark.parametrize("fault", SECRETS_FAULTS.values(), ids=SECRETS_FAULTS.keys())
def test_the_page_and_the_jwks_with_secrets_manager_failing_are_503(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, fault: ErrorFactory
) -> None:
    minted = mint(context)
    reset_caches()
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", "GetSecretValue", fault)
        page = invoke("accept_token", accept_get_event(minted["token"], accept=HTML), context)
        assert_unavailable(page, as_json=False)
        jwks_event = accept_get_event(None, accept=JSON)
        jwks_event["rawPath"] = jwks_event["requestContext"]["http"]["path"] = "/.well-known/jwks.json"
        jwks_event["routeKey"] = jwks_event["requestContext"]["routeKey"] = "GET /.well-known/jwks.json"
        assert_unavailable(invoke("accept_token", jwks_event, context))
        assert faults.count("dynamodb") == 0
    assert status_of(stack, minted["id"]) == "pending"


def test_a_warm_accept_survives_a_secrets_manager_outage(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert accept(context, mint(context)["token"]).status == 200  # warms the keyring caches
    minted = mint(context)
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", None, SECRETS_FAULTS["EndpointConnectionError"])
        assert accept(context, minted["token"]).status == 200
        assert faults.count("secretsmanager") == 0
        assert faults.count("dynamodb") == faults.count("dynamodb", "TransactWriteItems") == 1
