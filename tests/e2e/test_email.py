"""Delivery by email on the local stack, from an event put on the bus to a clicked link.

A stack with delivery by email on (the local default) runs for this module, its SES at a small
account's rate (``LOCAL_SES_MAX_SEND_RATE``: moto refuses what goes faster, as SES does). A batch
event put on its bus mints through the ``MintBatch`` rule; each ``SignInLinkMinted`` goes to the
email queue through the ``LinkMintedRule``; the queue's event source mapping hands batches to
``SendLinkEmailFunction``; moto's SES records the email; the stack's ``/_local/outbox`` shows it; a
real Chromium opens it, clicks "Sign in" and is signed in, and the session it gets verifies through
the JWKS.
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
from local.template import load_template
from signin_links.batch.plan import token_id_for
from tests.e2e.batch_events import put_batch
from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.inbox import mails_to, outbox
from tests.e2e.polling import wait_for

SES_RATE = 4  # emails/s: two invocations at once, 2/s each
SENTINEL = "sit_000000000000sentinel"


@pytest.fixture(scope="module")
def mail_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    env = {"LOCAL_SES_MAX_SEND_RATE": str(SES_RATE)}
    with running_stack(tmp_path_factory.mktemp("email-stack"), env=env) as stack:
        yield stack


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
    # moto puts both copies on the email queue within PutEvents, and the mapping deletes a message only
    # once the function handled it: a drained queue means both copies were handled, none mailed.
    wait_for(lambda: queue_drained(mail_stack), timeout=60, interval=0.5)
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
    # A sentinel put after both: a bounce of ours for another token. Once it arrived, the complaint
    # put before it would have too: another configuration set's complaint is not ours.
    sentinel = {
        "eventType": "Bounce",
        "mail": {
            "messageId": "m-2",
            "tags": {"ses:configuration-set": [configuration_set], "sign_in_token_id": [SENTINEL]},
        },
    }
    mail_stack.aws("events").put_events(
        Entries=[
            {
                "Source": "aws.ses",
                "DetailType": "Email Bounced",
                "Detail": json.dumps(sentinel),
                "EventBusName": "default",
            }
        ]
    )
    arrivals: list[dict[str, Any]] = []
    wait_for(lambda: arrivals.extend(received(mail_stack, arrived)) or len(arrivals) >= 2, timeout=30, interval=0.5)
    assert sorted(
        (event["detail-type"], *event["detail"]["mail"]["tags"]["sign_in_token_id"]) for event in arrivals
    ) == [
        ("Email Bounced", token_id),
        ("Email Bounced", SENTINEL),
    ]


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


def queue_url(stack: LocalStackHandle, logical_id: str) -> str:
    return str(stack.state["queues"][logical_id])


def queue_drained(stack: LocalStackHandle) -> bool:
    """Nothing waiting in the email queue, nothing being handled."""
    attributes = stack.aws("sqs").get_queue_attributes(
        QueueUrl=queue_url(stack, "EmailQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_the_email_queue_sits_between_the_bus_and_the_function(mail_stack: LocalStackHandle) -> None:
    (mapping,) = mail_stack.state["event_sources"]
    assert mapping["mapping"] == "SendLinkEmailQueueMapping"
    assert mapping["function"] == "SendLinkEmailFunction"
    assert mapping["queue"] == queue_url(mail_stack, "EmailQueue").rsplit("/", 1)[1]
    assert (mapping["batch_size"], mapping["maximum_concurrency"], mapping["local_concurrency"]) == (10, 2, 2)
    assert mapping["report_batch_item_failures"] is True
    (rule,) = [rule for rule in mail_stack.state["rules"] if rule["origin"] == "LinkMintedRule"]
    (target,) = rule["targets"]
    assert target["local"] is True
    assert target["target"] == "EmailQueue"  # a queue, not the function: nothing is invoked per event
    assert "SQS event sources" in mail_stack.output()


def test_a_wave_faster_than_the_ses_rate_is_paced_and_mailed_once_each(mail_stack: LocalStackHandle) -> None:
    batch_id = f"e2e-wave-{uuid.uuid4().hex[:8]}"
    users = [{"user_id": f"user_{n}", "metadata": {"email": f"wave{n}.{batch_id}@example.com"}} for n in range(24)]
    started = time.monotonic()
    put_batch(mail_stack, {"batch_id": batch_id, "users": users})
    addresses = {user["metadata"]["email"] for user in users}
    wait_for(lambda: addresses <= {mail["to"][0] for mail in outbox(mail_stack)}, timeout=120, interval=0.5)
    elapsed = time.monotonic() - started
    mails = [mail for mail in outbox(mail_stack) if mail["to"][0] in addresses]
    assert len(mails) == 24  # once each
    # Never faster than the pace: 12 emails per invocation at 2/s is at least 5.5 s from first to last.
    assert elapsed >= (24 / 2 - 1) / (SES_RATE / 2)
    # And the pace kept under SES's rate: SES refused nothing, nothing went back to the queue or the DLQ.
    assert "SES did not take the link email for now" not in mail_stack.output()
    dead_letters = mail_stack.aws("sqs").get_queue_attributes(
        QueueUrl=queue_url(mail_stack, "EmailDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert dead_letters["ApproximateNumberOfMessages"] == "0"


def test_a_malformed_message_on_the_email_queue_goes_to_the_dead_letter_queue_alone(
    mail_stack: LocalStackHandle,
) -> None:
    sqs = mail_stack.aws("sqs")
    marker = f"not an event {uuid.uuid4().hex}"
    sqs.send_message(QueueUrl=queue_url(mail_stack, "EmailQueue"), MessageBody=marker)
    address = f"ok.{uuid.uuid4().hex[:8]}@example.com"
    put_batch(
        mail_stack,
        {
            "batch_id": f"e2e-dlq-{uuid.uuid4().hex[:8]}",
            "users": [{"user_id": "user_ok", "metadata": {"email": address}}],
        },
    )
    wait_for(lambda: mails_to(mail_stack, address), timeout=60, interval=0.5)

    def dead_lettered() -> list[dict[str, Any]]:
        messages = (
            sqs.receive_message(
                QueueUrl=queue_url(mail_stack, "EmailDeadLetterQueue"), MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages")
            or []
        )
        return [message for message in messages if message["Body"] == marker]

    (message,) = wait_for(dead_lettered, timeout=90, interval=0.5)
    # Received the template's maxReceiveCount times from the email queue (then moved), once by us here.
    redrive = load_template()["Resources"]["EmailQueue"]["Properties"]["RedrivePolicy"]
    assert int(message["Attributes"]["ApproximateReceiveCount"]) == redrive["maxReceiveCount"] + 1
    assert "malformed email queue message" in mail_stack.output()
