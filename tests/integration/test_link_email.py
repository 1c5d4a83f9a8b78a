"""Delivery by email through the real send_link_email handler on moto: links minted by mint_link,
SES v2 SendEmail recorded by moto, the markers in the table, SignInLinkEmailFailed events on the bus.

SES failures are injected by wrapping the SES client (``Wrapped``): throttling, rejections, account
errors, a request that never got an answer, no connection at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from signin_links import aws
from signin_links.errors import SignInLinksError
from tests.conftest import REGION, Stack, load_function, reset_caches
from tests.handlers import mint
from tests.integration.test_batch import Wrapped

SENDER = "links@example.com"


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
    monkeypatch: pytest.MonkeyPatch

    def handler(self) -> Any:
        return load_function("send_link_email").lambda_handler

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
            "metadata": {"email": "ada@example.com", "first_name": "Ada"} if metadata is None else metadata,
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

    def deliver(self, event: dict[str, Any], request_id: str = "req-1") -> dict[str, Any]:
        self.context.aws_request_id = request_id
        result: dict[str, Any] = self.handler()(event, self.context)
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
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages") or []
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wrap_ses(self, **overrides: Callable[..., Any]) -> None:
        wrapped = Wrapped(aws.client_without_retries("sesv2"), **overrides)
        mailer = load_function("send_link_email").mailer()
        self.monkeypatch.setattr(mailer, "ses", wrapped)
        self.monkeypatch.setattr(mailer, "sleep", lambda seconds: None)


@pytest.fixture
def mail(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mail]:
    boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity="example.com")
    monkeypatch.setenv("EMAIL_SENDER", SENDER)
    monkeypatch.setenv("EMAIL_SENDER_NAME", "Example App")
    monkeypatch.setenv("EMAIL_CONFIGURATION_SET", "")
    monkeypatch.delenv("EMAIL_TEMPLATE_DIR", raising=False)
    reset_caches()
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="email-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(
        Name="failures", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["SignInLinkEmailFailed"]})
    )
    stack.events.put_targets(Rule="failures", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    yield Mail(stack, context, sqs, url, monkeypatch)
    reset_caches()


def test_a_minted_link_is_mailed_once(mail: Mail) -> None:
    event = mail.minted(metadata={"email": "ada@example.com", "first_name": "Ada <b>&"})
    result = mail.deliver(event)
    (sent,) = mail.outbox()
    assert result == {"outcome": "sent", "sign_in_token_id": event["detail"]["sign_in_token_id"], "message_id": sent.id}
    assert sent.source == f"Example App <{SENDER}>"
    assert sent.destinations == {"ToAddresses": ["ada@example.com"]}
    assert sent.subject == "Your sign-in link"
    url = event["detail"]["url"]
    assert sent.body.count(url) == 2
    assert f'href="{url}"' in sent.body  # moto keeps the HTML part
    assert '<p style="margin:0 0 16px">Hello,</p>' in sent.body  # a first name with markup is not shown
    marker = mail.marker(event["detail"]["sign_in_token_id"])
    assert marker is not None
    assert marker["status"]["S"] == "sent"
    assert marker["message_id"]["S"] == sent.id
    assert mail.failures() == []


def test_a_duplicated_event_sends_nothing_twice(mail: Mail) -> None:
    event = mail.minted()
    assert mail.deliver(event, "req-1")["outcome"] == "sent"
    again = mail.deliver(event, "req-2")  # EventBridge delivered it again: another invocation
    assert again == {"outcome": "duplicate", "sign_in_token_id": event["detail"]["sign_in_token_id"], "reason": "sent"}
    assert len(mail.outbox()) == 1


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"first_name": "Ada"}, "no_address"),
        (None, "no_address"),
        ({"email": "not an address"}, "invalid_address"),
        ({"email": 42}, "invalid_address"),
    ],
)
def test_a_link_without_a_usable_address_is_recorded_and_published_once(
    mail: Mail, metadata: dict[str, Any] | None, reason: str
) -> None:
    event = mail.minted(metadata=metadata or {})
    if metadata is None:
        event["detail"]["metadata"] = None
    token_id = event["detail"]["sign_in_token_id"]
    assert mail.deliver(event) == {"outcome": "failed", "sign_in_token_id": token_id, "reason": reason}
    assert mail.deliver(event, "req-2")["outcome"] == "duplicate"
    (failed,) = mail.failures()
    assert failed["source"] == "signin-links"
    assert failed["detail-type"] == "SignInLinkEmailFailed"
    assert failed["detail"] == {
        "sign_in_token_id": token_id,
        "user_id": "user_mail",
        "batch_id": "wave-mail",
        "reason": reason,
        "error_code": None,
    }
    marker = mail.marker(token_id)
    assert marker is not None
    assert marker["status"]["S"] == "failed"
    assert marker["announced"]["BOOL"] is True
    assert mail.outbox() == []


def test_one_failure_does_not_block_the_others(mail: Mail) -> None:
    good, bad = mail.minted("user_good"), mail.minted("user_bad", metadata={})
    assert mail.deliver(bad, "req-bad")["outcome"] == "failed"
    assert mail.deliver(good, "req-good")["outcome"] == "sent"
    assert [message.destinations["ToAddresses"] for message in mail.outbox()] == [["ada@example.com"]]


def forged(event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    return {**event, "detail": {**event["detail"], **detail}}


def test_events_that_are_not_links_of_this_stack_are_ignored(mail: Mail) -> None:
    event = mail.minted()
    other = mail.minted("user_other")
    token = event["detail"]["url"].split("token=", 1)[1]
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    foreign = jwt.encode(claims, "another key entirely, 32 bytes long!", algorithm="HS256", headers=header)
    base = event["detail"]["url"].split("?", 1)[0]
    for bad in (
        forged(event, url=f"{base}?token={foreign}"),  # not signed by the ticket keyring
        forged(event, url="https://evil.example/accept-token?token=" + token),  # another origin
        forged(event, sign_in_token_id=other["detail"]["sign_in_token_id"]),  # the token names another id
        forged(event, url=event["detail"]["url"] + "x"),  # a broken signature
    ):
        result = mail.deliver(bad)
        assert result["outcome"] == "ignored", result
    assert mail.outbox() == []
    assert mail.failures() == []
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None
    assert mail.marker(other["detail"]["sign_in_token_id"]) is None  # a forged event cannot block a real email
    assert mail.deliver(other)["outcome"] == "sent"


def test_an_expired_link_is_a_permanent_failure(mail: Mail, monkeypatch: pytest.MonkeyPatch) -> None:
    event = mail.minted(expires_in_seconds=60)
    mailer = load_function("send_link_email").mailer()
    monkeypatch.setattr(mailer, "clock", lambda: time.time() + 3600)
    assert mail.deliver(event)["reason"] == "link_expired"
    assert mail.outbox() == []
    assert [f["detail"]["reason"] for f in mail.failures()] == ["link_expired"]


def test_throttling_is_retried_with_backoff_then_sent(mail: Mail) -> None:
    event = mail.minted()
    calls: list[int] = []
    real = aws.client_without_retries("sesv2").send_email

    def throttled_twice(**request: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise ses_error("TooManyRequestsException", 429)
        return real(**request)

    mail.wrap_ses(send_email=throttled_twice)
    waits: list[float] = []
    mail.monkeypatch.setattr(load_function("send_link_email").mailer(), "sleep", waits.append)
    assert mail.deliver(event)["outcome"] == "sent"
    assert len(calls) == 3
    assert len(waits) == 2
    assert all(0 <= wait <= 5 for wait in waits)
    assert len(mail.outbox()) == 1


def test_throttled_too_long_releases_the_claim_and_fails_for_a_retry(mail: Mail) -> None:
    event = mail.minted()
    calls: list[int] = []

    def always_throttled(**request: Any) -> Any:
        calls.append(1)
        raise ses_error("TooManyRequestsException", 429)

    mail.wrap_ses(send_email=always_throttled)
    with pytest.raises(SignInLinksError, match="Amazon SES is temporarily unavailable"):
        mail.deliver(event)
    assert len(calls) == 5  # EMAIL_MAX_ATTEMPTS
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None  # nothing was sent: the claim is given back
    mail.monkeypatch.setattr(load_function("send_link_email").mailer(), "ses", aws.client_without_retries("sesv2"))
    assert mail.deliver(event)["outcome"] == "sent"  # Lambda's retry (same request id), SES no longer throttling


@pytest.mark.parametrize(
    "code", ["SendingPausedException", "AccountSuspendedException", "NotFoundException", "InternalFailure"]
)
def test_ses_refusing_for_now_gives_the_claim_back(mail: Mail, code: str) -> None:
    event = mail.minted()
    mail.wrap_ses(
        send_email=lambda **request: (_ for _ in ()).throw(ses_error(code, 500 if code == "InternalFailure" else 400))
    )
    with pytest.raises(SignInLinksError):
        mail.deliver(event)
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None
    assert mail.failures() == []


def test_ses_rejecting_the_message_is_a_permanent_failure(mail: Mail) -> None:
    event = mail.minted()
    mail.wrap_ses(send_email=lambda **request: (_ for _ in ()).throw(ses_error("MessageRejected")))
    result = mail.deliver(event)
    assert result["outcome"] == "failed"
    assert result["reason"] == "rejected"
    (failed,) = mail.failures()
    assert failed["detail"]["error_code"] == "MessageRejected"
    marker = mail.marker(event["detail"]["sign_in_token_id"])
    assert marker is not None
    assert marker["status"]["S"] == "failed"


def test_no_answer_from_ses_is_never_sent_again(mail: Mail) -> None:
    event = mail.minted()
    calls: list[int] = []

    def timed_out(**request: Any) -> Any:
        calls.append(1)
        raise ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com")

    mail.wrap_ses(send_email=timed_out)
    result = mail.deliver(event)
    assert result["outcome"] == "unknown"
    assert result["reason"] == "outcome_unknown"
    assert mail.deliver(event, "req-2")["outcome"] == "duplicate"
    assert len(calls) == 1
    (failed,) = mail.failures()
    assert failed["detail"]["reason"] == "outcome_unknown"
    assert failed["detail"]["error_code"] == "ReadTimeoutError"


def test_no_connection_means_nothing_was_sent(mail: Mail) -> None:
    event = mail.minted()
    mail.wrap_ses(
        send_email=lambda **request: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url="https://email"))
    )
    with pytest.raises(SignInLinksError):
        mail.deliver(event)
    assert mail.marker(event["detail"]["sign_in_token_id"]) is None


def test_an_attempt_that_died_mid_send_is_reported_not_resent(mail: Mail) -> None:
    from signin_links.store import EmailMarkers

    event = mail.minted()
    token_id = event["detail"]["sign_in_token_id"]
    store = EmailMarkers(aws.client("dynamodb"), mail.stack.table_name)
    now_ms = int(time.time() * 1000)
    # The first attempt of request A claimed the email, then its sandbox died (timeout, crash).
    assert store.claim_email(token_id, "req-A", now_ms, int(time.time()) + 3600) is None
    # Another delivery of the event (request B) while A's claim is fresh: A may still be sending.
    assert mail.deliver(event, "req-B")["outcome"] == "in_progress"
    # Lambda retries A (same request id): A's own earlier attempt is certainly over.
    assert mail.deliver(event, "req-A") == {
        "outcome": "unknown",
        "sign_in_token_id": token_id,
        "reason": "outcome_unknown",
    }
    assert mail.outbox() == []
    assert [f["detail"]["reason"] for f in mail.failures()] == ["outcome_unknown"]
    assert mail.deliver(event, "req-C")["outcome"] == "duplicate"


def test_a_claim_older_than_the_claim_timeout_is_taken_over(mail: Mail) -> None:
    from signin_links.store import EmailMarkers

    event = mail.minted()
    token_id = event["detail"]["sign_in_token_id"]
    store = EmailMarkers(aws.client("dynamodb"), mail.stack.table_name)
    long_ago = int((time.time() - 3600) * 1000)
    assert store.claim_email(token_id, "req-A", long_ago, int(time.time()) + 3600) is None
    assert mail.deliver(event, "req-B")["outcome"] == "unknown"
    assert mail.outbox() == []


def test_a_failure_event_that_could_not_be_published_is_published_by_the_retry(mail: Mail) -> None:
    event = mail.minted(metadata={})
    mailer = load_function("send_link_email").mailer()
    real = mailer.publisher._client
    mail.monkeypatch.setattr(
        mailer.publisher,
        "_client",
        Wrapped(real, put_events=lambda **kw: {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}),
    )
    mail.monkeypatch.setattr(mailer.publisher, "_sleep", lambda seconds: None)
    with pytest.raises(SignInLinksError, match="EventBridge"):
        mail.deliver(event)
    marker = mail.marker(event["detail"]["sign_in_token_id"])
    assert marker is not None
    assert marker["status"]["S"] == "failed"
    assert marker["announced"]["BOOL"] is False
    mail.monkeypatch.setattr(mailer.publisher, "_client", real)
    assert mail.deliver(event)["outcome"] == "failed"
    assert [f["detail"]["reason"] for f in mail.failures()] == ["no_address"]
    assert mail.deliver(event, "req-2")["outcome"] == "duplicate"
    assert mail.failures() == []


def test_templates_come_from_email_template_dir(mail: Mail, tmp_path: Path) -> None:
    (tmp_path / "subject.txt").write_text("Welcome, ${metadata.first_name|friend}")
    (tmp_path / "body.txt").write_text("$url")
    (tmp_path / "body.html").write_text('<p><a href="$url">Join</a></p><p>$url</p>')
    mail.monkeypatch.setenv("EMAIL_TEMPLATE_DIR", str(tmp_path))
    reset_caches()
    mail.deliver(mail.minted())
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
    mail.deliver(event)
    (request,) = seen
    assert request["ConfigurationSetName"] == "links-set"
    assert request["EmailTags"] == [{"Name": "sign_in_token_id", "Value": event["detail"]["sign_in_token_id"]}]
    body = request["Content"]["Simple"]["Body"]
    assert event["detail"]["url"] in body["Text"]["Data"]
    assert body["Html"]["Data"].count(event["detail"]["url"]) == 2


def test_the_function_refuses_to_start_without_a_sender(mail: Mail) -> None:
    from signin_links.config import ConfigError

    mail.monkeypatch.setenv("EMAIL_SENDER", "")
    reset_caches()
    with pytest.raises(ConfigError, match="EMAIL_SENDER"):
        mail.deliver(mail.minted())
