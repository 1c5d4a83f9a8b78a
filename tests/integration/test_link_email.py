"""Delivery by email through the real send_link_email handler on moto: links minted by mint_link, put
on an email queue shaped as the template's (its redrive policy included), handed to the handler in
batches as Lambda's event source mapping does (``Mail.poll``), SES v2 SendEmail recorded by moto,
the markers in the table, SignInLinkEmailFailed events on the bus.

SES failures are injected by wrapping the SES client (``Mail.wrap_ses``): throttling, rejections,
account errors, a request that never got an answer, no connection at all. Returned messages wait for
their delay in real time; ``Mail.fast_forward`` makes them visible again, as time passing would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from local.event_sources import failed_items, lambda_record
from local.ses_quota import ses_quota
from local.template import load_template
from signin_links import aws
from signin_links.email_queue import (
    MAX_RECEIVE_COUNT,
    RETURN_DELAY_BASE_S,
    RETURN_JITTER,
    SEND_MARGIN_S,
    THROTTLES_PER_BATCH,
)
from signin_links.errors import SignInLinksError
from signin_links.events import EventPublisher
from signin_links.keyring import ED25519, generate_key
from signin_links.send_pace import SendPace, SendQuota
from tests.conftest import REGION, Stack, load_function, reset_caches
from tests.handlers import mint
from tests.integration.conftest import Wrapped
from tests.jwts import eddsa

SENDER = "links@example.com"
TEMPLATE = load_template()
EMAIL_QUEUE = TEMPLATE["Resources"]["EmailQueue"]["Properties"]


def ses_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "SendEmail"
    )


@dataclass
class Mail:
    stack: Stack
    context: Any
    sqs: Any
    queue_url: str
    dead_letter_url: str
    failures_url: str
    monkeypatch: pytest.MonkeyPatch
    responses: list[dict[str, Any]] = field(default_factory=list)

    def module(self) -> Any:
        return load_function("send_link_email")

    def minted(
        self, user_id: str = "user_mail", metadata: dict[str, Any] | None = None, **mint_fields: Any
    ) -> dict[str, Any]:
        """A SignInLinkMinted event for a link minted by mint_link, as EventBridge delivers it."""
        token = mint(self.context, user_id, **mint_fields)
        detail = {
            "batch_id": "wave-mail",
            "user_id": user_id,
            "sign_in_token_id": token["id"],
            "url": token["url"],
            "expires_at": jwt.decode(token["token"], options={"verify_signature": False})["exp"] * 1000,
            "metadata": {"email": f"{user_id}@example.com", "first_name": "Ada"} if metadata is None else metadata,
        }
        return {
            "version": "0",
            "id": "6a7e8feb-0000-4cf7-a9f1-bf3703467718",
            "detail-type": "SignInLinkMinted",
            "source": "signin-links",
            "account": "123456789012",
            "time": "2024-06-01T09:00:00Z",
            "region": REGION,
            "resources": [],
            "detail": detail,
        }

    def put(self, *bodies: dict[str, Any] | str) -> list[str]:
        """Put messages on the email queue, as the LinkMintedRule does; their message ids."""
        return [
            self.sqs.send_message(
                QueueUrl=self.queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body)
            )["MessageId"]
            for body in bodies
        ]

    def poll(self, remaining_ms: Callable[[], int] = lambda: 55_000) -> dict[str, Any] | None:
        """One batch, as the event source mapping runs it: receive, invoke, delete what did not come
        back (local.event_sources' rules). ``None`` when the queue had nothing visible."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages")
        if not received:
            return None
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        records = [lambda_record(message, arn["QueueArn"]) for message in received]
        self.context.get_remaining_time_in_millis = remaining_ms
        response: dict[str, Any] = self.module().lambda_handler({"Records": records}, self.context)
        failed = failed_items(response, [record["messageId"] for record in records])
        assert failed is not None, response  # a valid partial batch response, always
        for record in records:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        self.responses.append(response)
        return response

    def returned(self, response: dict[str, Any] | None) -> list[str]:
        assert response is not None
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    def drain(self, rounds: int = 100) -> None:
        """Poll until nothing is visible, making returned messages visible again each round."""
        for _ in range(rounds):
            if self.poll() is None:
                self.fast_forward()
                if self.poll() is None:
                    return

    def hidden_for(self, message_id: str) -> float:
        """Seconds until a message of the email queue is visible again."""
        message = next(m for m in self._queue()._messages if m.id == message_id)
        return float(message.visible_at / 1000 - time.time())

    def receive_count(self, message_id: str, queue: str = "email") -> int:
        messages = (self._queue() if queue == "email" else self._queue(self.dead_letter_url))._messages
        return int(next(m for m in messages if m.id == message_id).approximate_receive_count)

    def fast_forward(self) -> None:
        """Every returned message visible now, as if its delay had passed."""
        for message in self._queue()._messages:
            message.change_visibility(0)

    def _queue(self, url: str = "") -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        return sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue((url or self.queue_url).rsplit("/", 1)[1])

    def dead_letters(self) -> list[str]:
        return [m.id for m in self._queue(self.dead_letter_url)._messages]

    def invoke(self, event: dict[str, Any], request_id: str = "req-1") -> dict[str, Any]:
        """An EventBridge event invoked directly (not through the queue)."""
        self.context.aws_request_id = request_id
        result: dict[str, Any] = self.module().lambda_handler(event, self.context)
        return result

    def outbox(self) -> list[Any]:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)

    def marker(self, token_id: str) -> dict[str, Any] | None:
        return self.stack.item(f"email#{token_id}")

    def failures(self) -> list[dict[str, Any]]:
        found = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.failures_url, MaxNumberOfMessages=10).get("Messages")
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.failures_url, ReceiptHandle=message["ReceiptHandle"])

    def wrap_ses(self, **overrides: Callable[..., Any]) -> None:
        wrapped = Wrapped(aws.client_without_retries("sesv2"), **overrides)
        self.monkeypatch.setattr(self.module().mailer(), "ses", wrapped)

    def pace(self) -> SendPace:
        pace: SendPace = self.module().queue().pace
        return pace

    def slow_pace(self, rate: float = 8) -> None:
        """A pace of ``rate`` emails/s over 2 invocations (4/s here: a quarter second between
        sends, after a burst of two), so that a batch's sends do not all start at once."""
        self.monkeypatch.setattr(
            self.module().queue(), "pace", SendPace(lambda: SendQuota(rate, 50_000, 0), concurrency=2)
        )


@pytest.fixture
def mail(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mail]:
    ses_quota(max_send_rate=1000, max_24_hour_send=1_000_000)  # the pace never waits long here
    boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity="example.com")
    sqs = boto3.client("sqs", region_name=REGION)
    dead_letters = sqs.create_queue(QueueName="email-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": EMAIL_QUEUE["RedrivePolicy"]["maxReceiveCount"]}
    queue = sqs.create_queue(
        QueueName="email-queue",
        Attributes={"VisibilityTimeout": str(EMAIL_QUEUE["VisibilityTimeout"]), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    monkeypatch.setenv("EMAIL_SENDER", SENDER)
    monkeypatch.setenv("EMAIL_SENDER_NAME", "Example App")
    monkeypatch.setenv("EMAIL_CONFIGURATION_SET", "")
    monkeypatch.setenv("EMAIL_QUEUE_URL", queue)
    monkeypatch.delenv("EMAIL_TEMPLATE_DIR", raising=False)
    reset_caches()
    failures = sqs.create_queue(QueueName="email-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(
        Name="failures", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["SignInLinkEmailFailed"]})
    )
    stack.events.put_targets(Rule="failures", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    yield Mail(stack, context, sqs, queue, dead_letters, failures, monkeypatch)
    reset_caches()


# --- The queue: batches ----------------------------------------------------------------------------


def test_a_batch_of_minted_links_is_mailed_once_each(mail: Mail) -> None:
    events = [mail.minted(f"user_{n}", {"email": f"user{n}@example.com", "first_name": "Ada <b>&"}) for n in range(5)]
    mail.put(*events)
    assert mail.returned(mail.poll()) == []
    sent = mail.outbox()
    assert sorted(m.destinations["ToAddresses"][0] for m in sent) == [f"user{n}@example.com" for n in range(5)]
    for event in events:
        (message,) = [m for m in sent if event["detail"]["url"] in m.body]
        assert message.source == f"Example App <{SENDER}>"
        assert message.subject == "Your sign-in link"
        assert message.body.count(event["detail"]["url"]) == 2
        assert '<p style="margin:0 0 16px">Hello,</p>' in message.body  # a first name with markup is not shown
        marker = mail.marker(event["detail"]["sign_in_token_id"])
        assert marker is not None
        assert marker["status"]["S"] == "sent"
        assert marker["message_id"]["S"] == message.id
        assert int(marker["claimed_at"]["N"]) <= int(marker["updated_at"]["N"])
    assert mail.poll() is None  # every message deleted
    assert mail.failures() == []


def test_a_link_twice_in_a_batch_and_again_later_is_mailed_once(mail: Mail) -> None:
    event = mail.minted()
    mail.put(event, event, mail.minted("user_other"))
    assert mail.returned(mail.poll()) == []
    mail.put(event)  # EventBridge delivered it once more
    assert mail.returned(mail.poll()) == []
    assert sorted(m.destinations["ToAddresses"][0] for m in mail.outbox()) == [
        "user_mail@example.com",
        "user_other@example.com",
    ]


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"first_name": "Ada"}, "no_address"),
        ({"email": "not an address"}, "invalid_address"),
        ({"email": 42}, "invalid_address"),
    ],
)
def test_a_link_without_a_usable_address_is_recorded_published_and_holds_nothing_up(
    mail: Mail, metadata: dict[str, Any], reason: str
) -> None:
    bad, good = mail.minted("user_bad", metadata), mail.minted("user_good")
    mail.put(bad, good)
    assert mail.returned(mail.poll()) == []
    assert [m.destinations["ToAddresses"] for m in mail.outbox()] == [["user_good@example.com"]]
    token_id = bad["detail"]["sign_in_token_id"]
    (failed,) = mail.failures()
    assert failed["source"] == "signin-links"
    assert failed["detail-type"] == "SignInLinkEmailFailed"
    assert failed["detail"] == {
        "sign_in_token_id": token_id,
        "user_id": "user_bad",
        "batch_id": "wave-mail",
        "reason": reason,
        "error_code": None,
    }
    marker = mail.marker(token_id)
    assert marker is not None
    assert marker["status"]["S"] == "failed"
    assert marker["announced"]["BOOL"] is True
    mail.put(bad)  # a duplicate: nothing more
    assert mail.returned(mail.poll()) == []
    assert mail.failures() == []


def test_an_expired_link_is_a_permanent_failure(mail: Mail, monkeypatch: pytest.MonkeyPatch) -> None:
    event = mail.minted(expires_in_seconds=60)
    monkeypatch.setattr(mail.module().mailer(), "clock", lambda: time.time() + 3600)
    mail.put(event)
    assert mail.returned(mail.poll()) == []
    assert mail.outbox() == []
    assert [f["detail"]["reason"] for f in mail.failures()] == ["link_expired"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "",
        json.dumps({"detail-type": "SignInLinkMinted", "source": "signin-links", "detail": "text"}),
        json.dumps({"source": "someone-else", "detail-type": "SignInLinkMinted", "detail": {}}),
        json.dumps([1, 2, 3]),
    ],
)
def test_a_malformed_message_goes_to_the_dead_letter_queue_alone(mail: Mail, body: str) -> None:
    good = mail.minted()
    (bad_id, good_id) = mail.put(body, good)
    response = mail.poll()
    assert mail.returned(response) == [bad_id]
    assert mail.hidden_for(bad_id) <= 0  # no delay: straight back, towards the DLQ
    assert len(mail.outbox()) == 1
    for _ in range(MAX_RECEIVE_COUNT + 2):  # the queue's redrive policy takes it from there
        mail.poll()
    assert mail.dead_letters() == [bad_id]
    assert mail.receive_count(bad_id, "dead-letter") == MAX_RECEIVE_COUNT
    assert len(mail.outbox()) == 1
    assert good_id not in mail.dead_letters()
    assert mail.failures() == []


def test_links_that_are_not_this_stacks_are_ignored_not_dead_lettered(mail: Mail) -> None:
    event = mail.minted()
    token = event["detail"]["url"].split("token=", 1)[1]
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    foreign = eddsa(header, claims, generate_key(ED25519, now=int(time.time())))  # another key, our kid
    hs256_token = jwt.encode(claims, "another key entirely, 32 bytes long!", algorithm="HS256")
    base = event["detail"]["url"].split("?", 1)[0]
    forged = [
        {**event, "detail": {**event["detail"], "url": f"{base}?token={foreign}"}},
        # HS256: the email function verifies EdDSA with public keys, it holds no HMAC key.
        {**event, "detail": {**event["detail"], "url": f"{base}?token={hs256_token}"}},
        {**event, "detail": {**event["detail"], "url": "https://evil.example/accept-token?token=" + token}},
        {**event, "detail": {**event["detail"], "url": event["detail"]["url"] + "x"}},
    ]
    mail.put(*forged)
    assert mail.returned(mail.poll()) == []
    assert mail.poll() is None
    assert mail.dead_letters() == []
    assert mail.outbox() == []
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None  # a forged event cannot block a real email
    mail.put(event)
    mail.poll()
    assert len(mail.outbox()) == 1


def test_a_destination_record_from_before_the_queue_is_mailed(mail: Mail) -> None:
    """What the email DLQ held before the queue existed (an asynchronous invocation's failure
    record), redriven to the email queue: the event it carries is mailed."""
    event = mail.minted()
    record = {
        "version": "1.0",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responsePayload": {"errorType": "SignInLinksError"},
    }
    mail.put(record)
    assert mail.returned(mail.poll()) == []
    assert len(mail.outbox()) == 1


# --- The queue: SES refusing, and the pace -------------------------------------------------------------


def test_a_throttled_email_goes_back_to_the_queue_for_later_without_its_claim(mail: Mail) -> None:
    events = [mail.minted(f"user_{n}") for n in range(4)]
    ids = mail.put(*events)
    real = aws.client_without_retries("sesv2").send_email
    calls: list[str] = []

    def user_1_throttled_once(**request: Any) -> Any:
        address = request["Destination"]["ToAddresses"][0]
        calls.append(address)
        if address == "user_1@example.com" and calls.count(address) == 1:
            raise ses_error("TooManyRequestsException", 429)
        return real(**request)

    mail.wrap_ses(send_email=user_1_throttled_once)
    share = mail.pace().share()
    response = mail.poll()
    (throttled,) = mail.returned(response)
    assert throttled == ids[1]
    assert len(mail.outbox()) == 3  # the others went on, at a slower pace
    assert mail.pace().rate() < share
    assert RETURN_DELAY_BASE_S * (1 - RETURN_JITTER) - 2 <= mail.hidden_for(throttled) <= RETURN_DELAY_BASE_S
    assert mail.marker(events[1]["detail"]["sign_in_token_id"]) is None  # nothing sent: the claim is given back
    mail.fast_forward()  # later: SES takes it
    assert mail.returned(mail.poll()) == []
    assert len(mail.outbox()) == 4
    assert len(calls) == 5


def test_the_longer_a_message_keeps_coming_back_the_longer_it_waits(mail: Mail) -> None:
    (message_id,) = mail.put(mail.minted())
    mail.wrap_ses(send_email=lambda **request: (_ for _ in ()).throw(ses_error("TooManyRequestsException", 429)))
    waits = []
    for _ in range(4):
        assert mail.returned(mail.poll()) == [message_id]
        waits.append(mail.hidden_for(message_id))
        mail.fast_forward()
    assert waits == sorted(waits)
    assert waits[-1] >= 4 * RETURN_DELAY_BASE_S * (1 - RETURN_JITTER) - 2  # 30 s, 60 s, 120 s, 240 s
    assert mail.dead_letters() == []


def test_three_throttles_send_the_rest_of_the_batch_back_at_once(mail: Mail) -> None:
    ids = mail.put(*[mail.minted(f"user_{n}") for n in range(8)])
    calls: list[int] = []

    def throttled(**request: Any) -> Any:
        calls.append(1)
        raise ses_error("TooManyRequestsException", 429)

    mail.wrap_ses(send_email=throttled)
    mail.slow_pace()
    assert sorted(mail.returned(mail.poll())) == sorted(ids)
    assert THROTTLES_PER_BATCH <= len(calls) < len(ids)  # then it stopped asking
    assert mail.outbox() == []
    assert all(mail.hidden_for(message_id) > 10 for message_id in ids)
    for message_id in ids:
        assert mail.receive_count(message_id) == 1


@pytest.mark.parametrize(
    "error",
    [
        ses_error("SendingPausedException"),
        ses_error("AccountSuspendedException"),
        ses_error("InternalFailure", 500),
        EndpointConnectionError(endpoint_url="https://email"),
    ],
)
def test_ses_refusing_for_now_sends_the_batch_back_with_nothing_claimed(mail: Mail, error: BaseException) -> None:
    events = [mail.minted(f"user_{n}") for n in range(8)]
    ids = mail.put(*events)
    calls: list[int] = []

    def refused(**request: Any) -> Any:
        calls.append(1)
        raise error

    mail.wrap_ses(send_email=refused)
    mail.slow_pace()
    assert sorted(mail.returned(mail.poll())) == sorted(ids)
    assert 1 <= len(calls) <= 2  # SES said no: only the sends already under way asked (the burst)
    for event in events:
        assert mail.marker(event["detail"]["sign_in_token_id"]) is None
    assert mail.failures() == []
    mail.monkeypatch.setattr(mail.module().mailer(), "ses", aws.client_without_retries("sesv2"))
    mail.fast_forward()
    assert mail.returned(mail.poll()) == []
    assert len(mail.outbox()) == 8


def test_ses_rejecting_a_message_fails_that_email_for_good(mail: Mail) -> None:
    rejected, good = mail.minted("user_rejected"), mail.minted("user_good")
    mail.put(rejected, good)
    real = aws.client_without_retries("sesv2").send_email

    def reject_one(**request: Any) -> Any:
        if request["Destination"]["ToAddresses"] == ["user_rejected@example.com"]:
            raise ses_error("MessageRejected")
        return real(**request)

    mail.wrap_ses(send_email=reject_one)
    assert mail.returned(mail.poll()) == []
    (failed,) = mail.failures()
    assert failed["detail"]["reason"] == "rejected"
    assert failed["detail"]["error_code"] == "MessageRejected"
    marker = mail.marker(rejected["detail"]["sign_in_token_id"])
    assert marker is not None
    assert marker["status"]["S"] == "failed"
    assert [m.destinations["ToAddresses"] for m in mail.outbox()] == [["user_good@example.com"]]


def test_no_answer_from_ses_is_reported_and_never_sent_again(mail: Mail) -> None:
    event = mail.minted()
    calls: list[int] = []

    def timed_out(**request: Any) -> Any:
        calls.append(1)
        raise ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com")

    mail.wrap_ses(send_email=timed_out)
    mail.put(event)
    assert mail.returned(mail.poll()) == []
    (failed,) = mail.failures()
    assert failed["detail"]["reason"] == "outcome_unknown"
    assert failed["detail"]["error_code"] == "ReadTimeoutError"
    mail.put(event)
    assert mail.returned(mail.poll()) == []
    assert len(calls) == 1
    assert mail.failures() == []


def test_a_claim_held_elsewhere_sends_the_message_back_and_a_stale_one_is_reported(mail: Mail) -> None:
    from signin_links.store import EmailMarkers

    event = mail.minted()
    token_id = event["detail"]["sign_in_token_id"]
    store = EmailMarkers(aws.client("dynamodb"), mail.stack.table_name)
    # Another delivery of this link claimed it a moment ago, and may be sending it now.
    assert store.claim_email(token_id, "message-elsewhere", int(time.time() * 1000), int(time.time()) + 3600) is None
    (message_id,) = mail.put(event)
    assert mail.returned(mail.poll()) == [message_id]
    assert mail.hidden_for(message_id) > 10
    # Much later the claim is still there: its holder died, and may or may not have sent it.
    settings = mail.module().mailer().settings
    later = time.time() + settings.email_claim_timeout_seconds + 1
    mail.monkeypatch.setattr(mail.module().mailer(), "clock", lambda: later)
    mail.fast_forward()
    assert mail.returned(mail.poll()) == []
    assert [f["detail"]["reason"] for f in mail.failures()] == ["outcome_unknown"]
    assert mail.outbox() == []
    marker = mail.marker(token_id)
    assert marker is not None
    assert marker["status"]["S"] == "unknown"


def test_what_the_invocation_has_no_time_for_goes_back_unclaimed(mail: Mail) -> None:
    events = [mail.minted(f"user_{n}") for n in range(4)]
    ids = mail.put(*events)
    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    # One email every 2 s (the sandbox's 1/s over two invocations), 3 s of budget left: two fit.
    pace = SendPace(lambda: SendQuota(1, 200, 0), concurrency=2, clock=lambda: clock[0], sleep=sleep)
    mail.monkeypatch.setattr(mail.module().queue(), "pace", pace)
    remaining = lambda: int((SEND_MARGIN_S + 3 - clock[0]) * 1000)  # noqa: E731
    returned = mail.returned(mail.poll(remaining))
    # A batch's sends run in threads, each taking the next slot of the pace: which two get the slots
    # is the threads' race (an SQS queue promises no order either), how many is not.
    assert len(returned) == 2 and set(returned) <= set(ids)
    assert len(mail.outbox()) == 2
    assert slept == [pytest.approx(2.0)]
    for message_id, event in zip(ids, events, strict=True):
        marker = mail.marker(event["detail"]["sign_in_token_id"])
        if message_id in returned:
            assert marker is None  # back on the queue unclaimed: the next invocation sends it
        else:
            assert marker is not None and marker["status"]["S"] == "sent"


def test_without_the_accounts_quota_nothing_is_claimed_or_sent(mail: Mail) -> None:
    events = [mail.minted(f"user_{n}") for n in range(2)]
    ids = mail.put(*events)
    reads: list[int] = []

    def unreadable() -> SendQuota:
        reads.append(1)
        from signin_links.errors import unavailable

        raise unavailable("Amazon SES")

    mail.monkeypatch.setattr(mail.module().queue(), "pace", SendPace(unreadable, concurrency=2))
    assert sorted(mail.returned(mail.poll())) == sorted(ids)
    assert reads
    assert mail.outbox() == []
    for event in events:
        assert mail.marker(event["detail"]["sign_in_token_id"]) is None


def test_the_pace_comes_from_the_accounts_quota_read_from_ses(mail: Mail) -> None:
    ses_quota(max_send_rate=14)
    reset_caches()
    mail.monkeypatch.setenv("EMAIL_MAXIMUM_CONCURRENCY", "2")
    reset_caches()
    assert mail.pace().share() == 7
    mail.monkeypatch.setenv("EMAIL_SEND_RATE", "4")
    reset_caches()
    assert mail.pace().share() == 2


def test_a_failure_event_that_could_not_be_published_is_published_by_the_next_receive(mail: Mail) -> None:
    event = mail.minted(metadata={})
    mailer = mail.module().mailer()
    real = mailer.publisher
    refused = Wrapped(
        aws.client("events"),
        put_events=lambda **kw: {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]},
    )
    mail.monkeypatch.setattr(mailer, "publisher", EventPublisher(refused, real.bus_name, sleep=lambda seconds: None))
    (message_id,) = mail.put(event)
    assert mail.returned(mail.poll()) == [message_id]
    marker = mail.marker(event["detail"]["sign_in_token_id"])
    assert marker is not None
    assert marker["announced"]["BOOL"] is False
    mail.monkeypatch.setattr(mailer, "publisher", real)
    mail.fast_forward()
    assert mail.returned(mail.poll()) == []
    assert [f["detail"]["reason"] for f in mail.failures()] == ["no_address"]


# --- An event invoked directly (make invoke; one queued before the email queue existed) ---------------


def test_an_event_invoked_directly_is_mailed_once(mail: Mail) -> None:
    event = mail.minted()
    result = mail.invoke(event)
    (sent,) = mail.outbox()
    assert result == {"outcome": "sent", "sign_in_token_id": event["detail"]["sign_in_token_id"], "message_id": sent.id}
    assert mail.invoke(event, "req-2")["outcome"] == "duplicate"
    assert mail.invoke({"source": "signin-links", "detail-type": "Other"})["outcome"] == "ignored"


def test_an_event_invoked_directly_that_ses_refuses_fails_for_lambdas_retry(mail: Mail) -> None:
    event = mail.minted()
    mail.wrap_ses(send_email=lambda **request: (_ for _ in ()).throw(ses_error("TooManyRequestsException", 429)))
    with pytest.raises(SignInLinksError, match="Amazon SES is temporarily unavailable"):
        mail.invoke(event)
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None
    mail.monkeypatch.setattr(mail.module().mailer(), "ses", aws.client_without_retries("sesv2"))
    assert mail.invoke(event)["outcome"] == "sent"


# --- Sending: what goes to SES ----------------------------------------------------------------------


def test_send_email_is_attempted_once_per_call_never_retried_by_the_client(mail: Mail) -> None:
    """A retry after a timeout or a 5xx could send a second email: the SendEmail client makes one
    attempt. (botocore's ``max_attempts: 1`` means one retry; ``total_max_attempts`` counts them all.)"""
    quota = ses_quota(max_send_rate=1)
    client = aws.client_without_retries("sesv2")
    request = {
        "FromEmailAddress": SENDER,
        "Destination": {"ToAddresses": ["ada@example.com"]},
        "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
    }
    client.send_email(**request)
    with pytest.raises(ClientError, match="TooManyRequestsException"):
        client.send_email(**request)
    assert (quota.sent_total, quota.throttled) == (1, 1)  # two attempts in all: none repeated


def test_templates_come_from_email_template_dir(mail: Mail, tmp_path: Path) -> None:
    (tmp_path / "subject.txt").write_text("Welcome, ${metadata.first_name|friend}")
    (tmp_path / "body.txt").write_text("$url")
    (tmp_path / "body.html").write_text('<p><a href="$url">Join</a></p><p>$url</p>')
    mail.monkeypatch.setenv("EMAIL_TEMPLATE_DIR", str(tmp_path))
    reset_caches()
    mail.put(mail.minted())
    mail.poll()
    (sent,) = mail.outbox()
    assert sent.subject == "Welcome, Ada"
    assert sent.body.startswith('<p><a href="http')


def test_the_configuration_set_and_token_tag_are_sent(mail: Mail) -> None:
    mail.monkeypatch.setenv("EMAIL_CONFIGURATION_SET", "links-set")
    reset_caches()
    seen: list[dict[str, Any]] = []
    real = aws.client_without_retries("sesv2").send_email
    mail.wrap_ses(send_email=lambda **request: seen.append(request) or real(**request))
    event = mail.minted()
    mail.put(event)
    mail.poll()
    (request,) = seen
    assert request["ConfigurationSetName"] == "links-set"
    assert request["EmailTags"] == [{"Name": "sign_in_token_id", "Value": event["detail"]["sign_in_token_id"]}]
    body = request["Content"]["Simple"]["Body"]
    assert event["detail"]["url"] in body["Text"]["Data"]
    assert body["Html"]["Data"].count(event["detail"]["url"]) == 2


@pytest.mark.parametrize("variable", ["EMAIL_SENDER", "EMAIL_QUEUE_URL"])
def test_the_function_refuses_to_start_without_a_sender_or_a_queue(mail: Mail, variable: str) -> None:
    from signin_links.config import ConfigError

    mail.monkeypatch.setenv(variable, "")
    reset_caches()
    with pytest.raises(ConfigError, match=variable):
        mail.module().mailer()


# --- Renewals: a fresh link for a dead one goes where the dead link's email went --------------------


def renewal_requested(token_id: str, user_id: str, **detail: Any) -> dict[str, Any]:
    """The SignInLinkRenewalRequested AuditPipe publishes for a recorded renewal (renewal.py)."""
    return {
        "source": "signin-links",
        "detail-type": "SignInLinkRenewalRequested",
        "detail": {"sign_in_token_id": token_id, "user_id": user_id, "delivery": "email", **detail},
    }


def minted_events(mail: Mail) -> Callable[[], list[dict[str, Any]]]:
    """What the mint publishes from now on, as a rule on the bus sees it."""
    queue = mail.sqs.create_queue(QueueName="minted-capture")["QueueUrl"]
    arn = mail.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = mail.stack.env["EVENT_BUS_NAME"]
    mail.stack.events.put_rule(
        Name="minted", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["SignInLinkMinted"]})
    )
    mail.stack.events.put_targets(Rule="minted", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def drain() -> list[dict[str, Any]]:
        messages = mail.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages") or []
        for message in messages:
            mail.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]

    return drain


def test_a_renewed_link_goes_to_the_address_language_and_name_on_record(mail: Mail) -> None:
    first = mail.minted("user_ada", {"email": "ada@example.com", "first_name": "Ada", "locale": "de"})
    mail.put(first)
    assert mail.returned(mail.poll()) == []
    dead = first["detail"]["sign_in_token_id"]
    marker = mail.marker(dead)
    assert marker is not None
    assert (marker["address"]["S"], marker["language"]["S"], marker["name"]["S"]) == ("ada@example.com", "de", "Ada")

    published = minted_events(mail)
    mint = load_function("mint_link")
    answer = mint.lambda_handler(renewal_requested(dead, "user_ada", redirect_url=None), mail.context)
    assert answer["outcome"] == "minted" and answer["renewal_of"] == dead
    (event,) = published()
    assert event["detail"]["renewal_of"] == dead
    assert event["detail"]["metadata"] == {}
    assert event["detail"]["sign_in_token_id"] == answer["sign_in_token_id"] != dead
    assert mail.stack.item(answer["sign_in_token_id"])["user_id"]["S"] == "user_ada"  # type: ignore[index]

    mail.put(event)
    assert mail.returned(mail.poll()) == []
    renewed = [m for m in mail.outbox() if event["detail"]["url"] in m.body]
    (message,) = renewed
    assert message.destinations["ToAddresses"] == ["ada@example.com"]
    assert message.subject == "Ihr Anmeldelink"
    assert "Hallo Ada," in message.body
    assert "Hier ist der neue Anmeldelink, den Sie angefordert haben." in message.body
    again = mail.marker(answer["sign_in_token_id"])
    assert again is not None and again["address"]["S"] == "ada@example.com"  # a renewal of the renewal works too

    # The same request delivered again mints nothing new, and its email is not sent twice.
    assert mint.lambda_handler(renewal_requested(dead, "user_ada"), mail.context) == answer
    (repeat,) = published()
    assert repeat["detail"]["url"] == event["detail"]["url"]
    mail.put(repeat)
    mail.poll()
    assert len([m for m in mail.outbox() if event["detail"]["url"] in m.body]) == 1


def test_a_renewal_never_goes_to_an_address_from_an_event(mail: Mail) -> None:
    first = mail.minted("user_ada", {"email": "ada@example.com"})
    mail.put(first)
    mail.poll()
    published = minted_events(mail)
    load_function("mint_link").lambda_handler(
        renewal_requested(first["detail"]["sign_in_token_id"], "user_ada"), mail.context
    )
    (event,) = published()
    event["detail"]["metadata"] = {"email": "eve@evil.example"}  # whoever could put it on the bus
    mail.put(event)
    mail.poll()
    (message,) = [m for m in mail.outbox() if event["detail"]["url"] in m.body]
    assert message.destinations["ToAddresses"] == ["ada@example.com"]


def test_a_renewal_of_a_link_never_emailed_is_reported_and_sends_nothing(mail: Mail) -> None:
    never = mail.minted("user_ada", {})
    published = minted_events(mail)
    load_function("mint_link").lambda_handler(
        renewal_requested(never["detail"]["sign_in_token_id"], "user_ada"), mail.context
    )
    (event,) = published()
    mail.put(event)
    mail.poll()
    assert [m for m in mail.outbox() if event["detail"]["url"] in m.body] == []
    (failure,) = mail.failures()
    assert failure["detail"]["reason"] == "no_address"


def test_the_mint_ignores_what_is_not_a_renewal_it_delivers(mail: Mail) -> None:
    mint = load_function("mint_link")
    event = renewal_requested("sit_2TkzQ6HYQwtJtPejPLtQiF", "user_ada", delivery="application")
    assert mint.lambda_handler(event, mail.context)["outcome"] == "ignored"
