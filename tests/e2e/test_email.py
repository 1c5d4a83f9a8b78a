"""Delivery by email on the local stack, from an event put on the bus to a clicked link.

A stack with delivery by email on (the local default) runs for this module. A batch event put on
its bus mints through the ``MintBatch`` rule; each ``SignInLinkMinted`` reaches
``SendLinkEmailFunction`` through the ``LinkMinted`` rule; moto's SES records the email; the stack's
``/_local/outbox`` shows it; a real Chromium opens it, clicks "Sign in" and is signed in, and the
session it gets verifies through the JWKS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from local.outbox import Mail, index
from signin_links.batch.plan import token_id_for
from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.test_rules import put_batch, wait_for


@pytest.fixture(scope="module")
def mail_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    with running_stack(tmp_path_factory.mktemp("email-stack")) as stack:
        yield stack


def outbox(stack: LocalStackHandle) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.base_url}/_local/outbox", headers={"Accept": "application/json"}, timeout=30)
    assert response.status_code == 200
    mails: list[dict[str, Any]] = response.json()
    return mails


def mails_to(stack: LocalStackHandle, address: str) -> list[dict[str, Any]]:
    return [mail for mail in outbox(stack) if mail["to"] == [address]]


def received(stack: LocalStackHandle, url: str) -> list[dict[str, Any]]:
    messages = stack.aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
    for message in messages:
        stack.aws("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(message["Body"]) for message in messages]


def verify_session(stack: LocalStackHandle, token: str) -> dict[str, Any]:
    jwks = httpx.get(f"{stack.base_url}/.well-known/jwks.json", timeout=30).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(key for key in jwks["keys"] if key["kid"] == kid)).key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
    return claims


@pytest.mark.browser
def test_from_an_event_on_the_bus_to_a_clicked_email_link(mail_stack: LocalStackHandle, browser: Any) -> None:
    batch_id = f"e2e-mail-{uuid.uuid4().hex[:8]}"
    address = f"ada.{uuid.uuid4().hex[:8]}@example.com"
    put_batch(
        mail_stack,
        {"batch_id": batch_id, "users": [{"user_id": "user_ada", "metadata": {"email": address, "first_name": "Ada"}}]},
    )
    (mail,) = wait_for(lambda: mails_to(mail_stack, address), timeout=90, interval=0.5)
    assert mail["subject"] == "Your sign-in link"
    assert mail["from"] == "signin-links@example.com"

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{mail_stack.base_url}/_local/outbox")
    page.get_by_role("row").filter(has_text=address).get_by_role("link").click()
    page.get_by_text("Hello Ada,").wait_for()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_text("Signed in as user_ada").wait_for()
    assert page.url == f"{mail_stack.base_url}/accept-token"
    assert mail_stack.status(token_id_for(batch_id, "user_ada")) == "accepted"
    (cookie,) = [cookie for cookie in context.cookies() if cookie["name"] == "__session"]
    assert verify_session(mail_stack, cookie["value"])["sub"] == "user_ada"
    context.close()


def test_each_link_is_mailed_once_and_a_user_without_an_address_is_reported(mail_stack: LocalStackHandle) -> None:
    batch_id = f"e2e-once-{uuid.uuid4().hex[:8]}"
    address = f"grace.{uuid.uuid4().hex[:8]}@example.com"
    minted = mail_stack.capture(
        {"source": ["signin-links"], "detail-type": ["SignInLinkMinted"], "detail": {"batch_id": [batch_id]}},
    )
    failed = mail_stack.capture(
        {"source": ["signin-links"], "detail-type": ["SignInLinkEmailFailed"], "detail": {"batch_id": [batch_id]}},
    )
    put_batch(
        mail_stack,
        {
            "batch_id": batch_id,
            "users": [{"user_id": "user_grace", "metadata": {"email": address}}, {"user_id": "user_nomail"}],
        },
    )
    wait_for(lambda: mails_to(mail_stack, address), timeout=90, interval=0.5)
    (failure,) = wait_for(lambda: received(mail_stack, failed), timeout=60, interval=0.5)
    assert failure["detail"]["reason"] == "no_address"
    assert failure["detail"]["user_id"] == "user_nomail"
    assert "url" not in failure["detail"]

    # EventBridge delivers at least once: the same SignInLinkMinted, put on the bus twice more.
    events = wait_for(lambda: received(mail_stack, minted), timeout=30, interval=0.5)
    grace = next(event for event in events if event["detail"]["user_id"] == "user_grace")
    entry = {
        "Source": grace["source"],
        "DetailType": grace["detail-type"],
        "Detail": json.dumps(grace["detail"]),
        "EventBusName": mail_stack.env("MintLinkFunction")["EVENT_BUS_NAME"],
    }
    mail_stack.aws("events").put_events(Entries=[entry, entry])
    wait_for(lambda: mail_stack.output().count('"status":"sent"') >= 2, timeout=60, interval=0.5)
    time.sleep(1)
    assert len(mails_to(mail_stack, address)) == 1
    marker = mail_stack.item(f"email#{token_id_for(batch_id, 'user_grace')}")
    assert marker is not None
    assert marker["status"]["S"] == "sent"


def test_ses_bounces_and_complaints_reach_the_stacks_bus(mail_stack: LocalStackHandle) -> None:
    configuration_set = mail_stack.env("SendLinkEmailFunction")["EMAIL_CONFIGURATION_SET"]
    assert configuration_set  # the stack created one, and the function sends with it
    assert mail_stack.aws("sesv2").get_configuration_set(ConfigurationSetName=configuration_set)
    assert "EmailDeadLetterQueue" in mail_stack.state["queues"]
    arrived = mail_stack.capture({"source": ["aws.ses"]})
    token_id = "sit_0000000000000000bounce"
    for detail_type, configured in (("Email Bounced", configuration_set), ("Email Complaint Received", "another-set")):
        detail = {
            "eventType": detail_type.split()[1],
            "mail": {
                "messageId": "m-1",
                "tags": {"ses:configuration-set": [configured], "sign_in_token_id": [token_id]},
            },
        }
        # What SES publishes to the default bus for the configuration set's event destination.
        mail_stack.aws("events").put_events(
            Entries=[
                {
                    "Source": "aws.ses",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": "default",
                }
            ]
        )
    (bounce,) = wait_for(lambda: received(mail_stack, arrived), timeout=30, interval=0.5)
    assert bounce["detail-type"] == "Email Bounced"
    assert bounce["detail"]["mail"]["tags"]["sign_in_token_id"] == [token_id]
    time.sleep(1)
    assert received(mail_stack, arrived) == []  # another configuration set's complaint is not ours


def test_the_outbox_serves_each_mail_and_nothing_else(mail_stack: LocalStackHandle) -> None:
    assert httpx.get(f"{mail_stack.base_url}/_local/outbox/no-such-id", timeout=30).status_code == 404
    assert httpx.post(f"{mail_stack.base_url}/_local/outbox", timeout=30).status_code == 405
    assert httpx.get(f"{mail_stack.base_url}/_local/other", timeout=30).status_code == 404
    page = httpx.get(f"{mail_stack.base_url}/_local/outbox", timeout=30)
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "GET /_local/outbox/{id} -> 404" in mail_stack.output()  # the log names the route, not the id


def test_the_outbox_index_escapes_what_it_shows() -> None:
    page = index([Mail("id<1>", '"Eve" <e@x.test>', ["<a@x.test>"], "<script>alert(1)</script>", "", False)]).decode()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "id%3C1%3E" in page
