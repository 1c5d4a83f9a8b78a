"""The email queue: batches of ``SignInLinkMinted`` events from SQS, sent at the account's SES pace.

The stack's ``LinkMinted`` rule puts every minted link's event on the email queue; Lambda's event
source mapping hands the function batches of up to ``EmailBatchSize`` messages, at most
``EmailMaximumConcurrency`` invocations at once, with partial batch responses on. One batch
(:meth:`EmailQueue.handle`):

1. Each message's body is the event as EventBridge delivered it (a Lambda destination record from
   before the queue existed is unwrapped to the event it carries). A body that is not a well-formed
   event of this stack is that message's failure, returned with no delay: the queue's redrive policy
   moves it to the dead-letter queue after ``maxReceiveCount`` receives, and the other messages of
   the batch go on.
2. Each event is prepared (``LinkEmails.prepare``): ignored, failed for good, or an email to send.
   Two messages of one batch for one token: the first one speaks for both.
3. The emails are claimed in one transaction, then sent, up to :data:`SEND_THREADS` at once, each
   in its own slot of this environment's pace (``signin_links.send_pace``), then the sent ones are
   recorded in one write.
4. What SES did not take (throttled, paused, unreachable), what the invocation had no time left
   for, and what another delivery holds a fresh claim on goes back to the queue: its claim given
   back, its visibility set to :func:`return_delay`, its id in ``batchItemFailures``. Nothing
   sleeps on a refusal; the sleeps are the pace's, between sends.

How many times can a message come back? With the pace right, a message is received once: the
mapping never holds more than ``EmailMaximumConcurrency`` batches, each sent at its share of the
rate. It comes back only when SES refuses it (or a batch runs out of time, which the pace prevents
unless ``EmailMaximumConcurrency`` is far above what the account's rate needs; then it is logged).
Each return waits longer (:func:`return_delay`: 30 s doubling to an hour), so a message reaches the
dead-letter queue only after SES refused it ``maxReceiveCount`` times over :func:`survival_seconds`
(about a day: 19 h at the least, with jitter), whatever the batch's size: a 1,000,000-user batch at
14 emails/s spends ~20 h in the queue without a single return, well inside the queue's 14 days.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import SignInLinksError
from signin_links.link_email import Deferred, Delivery, LinkEmails, MalformedEvent, Outbound
from signin_links.observability import count, logger
from signin_links.send_pace import SendPace

RETURN_DELAY_BASE_S = 30  # the first return; SES suggests waiting up to 10 minutes after a throttle
RETURN_DELAY_CAP_S = 3600  # later returns wait at most an hour (SQS allows 12 h)
RETURN_JITTER = 0.2  # each delay is drawn from [80 %, 100 %] of its value, so returns do not bunch up
MAX_RECEIVE_COUNT = 30  # template.yaml's EmailQueue RedrivePolicy (a test keeps them equal)
# Time an invocation keeps for the call that may be under way when its slot comes (SES's connect and
# read timeouts, signin_links.aws) and for the settle, the releases and the visibility changes after.
SEND_MARGIN_S = 2 + 10 + 5
THROTTLES_PER_BATCH = 3  # SES refused this many for its rate: the rest of the batch goes back at once
# Sends in flight at once in one environment: a whole batch (EmailBatchSize is at most 10). One
# SendEmail takes ~40-60 ms, so one thread sends at most ~20/s; with the batch in flight, each in its
# own slot, the pace sets the rate, not the calls' latency (boto3's pool holds 16 connections).
SEND_THREADS = 10


def return_delay(receive_count: int, draw: Callable[[float, float], float] = random.uniform) -> int:
    """Seconds a message that comes back for the ``receive_count``-th time stays invisible:
    ``RETURN_DELAY_BASE_S * 2 ** (receive_count - 1)``, at most ``RETURN_DELAY_CAP_S``, less up to
    ``RETURN_JITTER`` of it."""
    exponent = min(max(receive_count, 1) - 1, 20)
    delay: int = min(RETURN_DELAY_CAP_S, RETURN_DELAY_BASE_S * 2**exponent)
    return max(1, round(delay * draw(1 - RETURN_JITTER, 1.0)))


def survival_seconds(max_receive_count: int = MAX_RECEIVE_COUNT) -> float:
    """The least time a message refused on every receive spends in the queue before SQS moves it to
    the dead-letter queue: its ``max_receive_count`` returns, every delay at its jitter's low end."""
    delays = (
        min(RETURN_DELAY_CAP_S, RETURN_DELAY_BASE_S * 2 ** min(n - 1, 20)) for n in range(1, max_receive_count + 1)
    )
    return float(sum(delays)) * (1 - RETURN_JITTER)


@dataclass(frozen=True)
class QueueMessage:
    """One record of an SQS event."""

    message_id: str
    receipt_handle: str = field(repr=False)
    body: str = field(repr=False)
    receive_count: int = 1


def is_queue_event(event: object) -> bool:
    """Whether ``event`` is a batch from an SQS event source mapping (else an event invoked directly)."""
    return isinstance(event, Mapping) and isinstance(event.get("Records"), list)


def queue_messages(event: Mapping[str, Any]) -> list[QueueMessage]:
    """The messages of an SQS event (Lambda's record shape: ``messageId``, ``receiptHandle``, ``body``,
    ``attributes.ApproximateReceiveCount``). A record without a message id cannot be reported, so it
    is refused: ``ValueError`` fails the invocation, and every message of the batch comes back."""
    messages = []
    for record in event["Records"]:
        if not isinstance(record, Mapping) or not isinstance(record.get("messageId"), str) or not record["messageId"]:
            raise ValueError("an SQS record without a messageId")
        attributes = record.get("attributes")
        count = str(attributes.get("ApproximateReceiveCount", "1")) if isinstance(attributes, Mapping) else "1"
        body = record.get("body")
        messages.append(
            QueueMessage(
                message_id=record["messageId"],
                receipt_handle=str(record.get("receiptHandle") or ""),
                body=body if isinstance(body, str) else "",
                receive_count=int(count) if count.isascii() and count.isdigit() and len(count) < 6 else 1,
            )
        )
    return messages


def message_event(body: str) -> object:
    """The EventBridge event a message carries: the body as JSON, or the event inside a Lambda
    destination record (``requestPayload``: what an asynchronous invocation's failure destination
    held before the queue existed). :class:`MalformedEvent` if the body is not JSON."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedEvent("the message body is not JSON") from None
    if isinstance(event, dict) and "requestPayload" in event and "requestContext" in event:
        return event["requestPayload"]
    return event


class _Sending:
    """What the threads sending one batch share: whether to stop, and why."""

    def __init__(self, remaining_ms: Callable[[], int]) -> None:
        self.remaining_ms = remaining_ms
        self.stopped = False
        self.too_slow = False
        self._throttles = 0
        self._lock = threading.Lock()

    def stop(self, *, too_slow: bool = False) -> None:
        with self._lock:
            self.stopped = True
            self.too_slow |= too_slow

    def throttled(self) -> None:
        with self._lock:
            self._throttles += 1
            self.stopped |= self._throttles >= THROTTLES_PER_BATCH


@dataclass
class _Batch:
    """One batch's bookkeeping: messages returned to the queue (id -> delay) and their outcomes."""

    messages: Sequence[QueueMessage]
    returned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def give_back(self, message: QueueMessage, delay: int, outcome: str) -> None:
        self.returned[message.message_id] = delay
        self.count(outcome)


class EmailQueue:
    """Runs one batch of the email queue (see the module's docstring). ``sqs`` sets the visibility
    of returned messages on ``queue_url``; ``remaining_ms`` is the invocation's time left."""

    def __init__(
        self,
        mailer: LinkEmails,
        pace: SendPace,
        *,
        sqs: Any,
        queue_url: str,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.mailer = mailer
        self.pace = pace
        self.sqs = sqs
        self.queue_url = queue_url
        self._draw = draw
        self._pool: ThreadPoolExecutor | None = None

    def handle(self, messages: Sequence[QueueMessage], remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """Send the batch's emails; the partial batch response (the ids of the messages returned).

        Raises nothing for a message: a malformed one, or one that cannot be sent now (SES, DynamoDB
        or EventBridge unavailable, no time left), is returned in the response for SQS to deliver
        again (a malformed one ends in the dead-letter queue).
        """
        batch = _Batch(messages)
        ready = self._prepare(batch)
        claimed = self._claim(batch, ready)
        self._send(batch, claimed, remaining_ms)
        self._set_visibility(batch)
        logger.info("email batch done", extra={"messages": len(messages), "outcomes": batch.outcomes})
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in batch.returned]}

    # -- the steps --------------------------------------------------------------------------------

    def _later(self, message: QueueMessage) -> int:
        return return_delay(message.receive_count, self._draw)

    def _prepare(self, batch: _Batch) -> list[tuple[QueueMessage, Outbound]]:
        ready: list[tuple[QueueMessage, Outbound]] = []
        tokens: set[str] = set()
        for message in batch.messages:
            try:
                prepared = self.mailer.prepare(message_event(message.body), message.message_id)
            except MalformedEvent as exc:
                logger.error(
                    "malformed email queue message: it goes to the dead-letter queue",
                    extra={"message_id": message.message_id, "reason": str(exc)},
                )
                count("LinkEmailMessagesMalformed")
                batch.give_back(message, 0, "malformed")
                continue
            except SignInLinksError:  # the keyring, the base URL or EventBridge: later
                batch.give_back(message, self._later(message), "deferred")
                continue
            if isinstance(prepared, Delivery):
                self._finished(batch, message, prepared)
            elif prepared.link.token_id in tokens:  # the same link twice in one batch: the first speaks for both
                batch.count("duplicate")
            else:
                tokens.add(prepared.link.token_id)
                ready.append((message, prepared))
        return ready

    def _finished(self, batch: _Batch, message: QueueMessage, delivery: Delivery) -> None:
        if delivery.outcome == "in_progress":  # another delivery's fresh claim: look again later
            batch.give_back(message, self._later(message), "in_progress")
        else:
            batch.count(delivery.outcome)

    def _claim(self, batch: _Batch, ready: list[tuple[QueueMessage, Outbound]]) -> list[tuple[QueueMessage, Outbound]]:
        if not ready:
            return []
        try:
            self.pace.share()  # the account's quota, read before anything is claimed
            held = self.mailer.claim([outbound for _, outbound in ready])
        except SignInLinksError:  # SES's quota or DynamoDB: nothing claimed, all later
            for message, _ in ready:
                batch.give_back(message, self._later(message), "deferred")
            return []
        claimed = []
        for (message, _), result in zip(ready, held, strict=True):
            if isinstance(result, Delivery):
                self._finished(batch, message, result)
            else:
                claimed.append((message, result))
        return claimed

    def _send(
        self, batch: _Batch, claimed: list[tuple[QueueMessage, Outbound]], remaining_ms: Callable[[], int]
    ) -> None:
        """Send the claimed emails, up to :data:`SEND_THREADS` at once, each in its slot of the pace;
        then settle what SES took and give back the claims of what it did not."""
        if not claimed:
            return
        sending = _Sending(remaining_ms)
        if len(claimed) == 1:
            results = [self._send_one(sending, outbound) for _, outbound in claimed]
        else:
            results = list(self._threads().map(lambda item: self._send_one(sending, item[1]), claimed))
        if sending.too_slow:
            self._too_slow(len(claimed))
        sent: list[tuple[Outbound, str]] = []
        unsent: list[Outbound] = []
        for (message, outbound), result in zip(claimed, results, strict=True):
            if isinstance(result, Delivery):
                if result.outcome == "sent":
                    sent.append((outbound, result.message_id or ""))
                batch.count(result.outcome)
                continue
            if result != "unpublished":  # recorded, its failure event not published: the claim is settled
                unsent.append(outbound)
            batch.give_back(message, self._later(message), result)
        self.mailer.settle(sent)
        if unsent:
            try:
                self.mailer.release(unsent)
            except SignInLinksError:
                logger.warning("claims could not be given back: they time out instead", extra={"count": len(unsent)})

    def _send_one(self, sending: _Sending, outbound: Outbound) -> Delivery | str:
        """One email in its slot: its :class:`Delivery`, or why it goes back ("deferred",
        "throttled", or "unpublished" when its failure was recorded but not published)."""
        if not self._slot(sending):
            return "deferred"
        try:
            delivery = self.mailer.send(outbound)
        except Deferred as exc:
            if not exc.throttled:
                sending.stop()
                return "deferred"
            self.pace.throttled()
            sending.throttled()
            return "throttled"
        except SignInLinksError:
            return "unpublished"
        if delivery.outcome == "sent":
            self.pace.sent()
        return delivery

    def _slot(self, sending: _Sending) -> bool:
        """Wait for a slot of the pace, unless the batch stopped (before or during the wait) or no
        slot comes within the invocation's time (then the batch stops)."""
        if sending.stopped:
            return False
        budget_s = sending.remaining_ms() / 1000 - SEND_MARGIN_S
        if not self.pace.wait(budget_s):
            sending.stop(too_slow=budget_s > 0)
            return False
        return not sending.stopped

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:  # one pool per execution environment, kept across invocations
            self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send-email")
        return self._pool

    def _too_slow(self, claimed: int) -> None:
        logger.error(
            "this environment's share of the SES rate is too slow for a whole batch within the timeout: "
            "lower EmailMaximumConcurrency or EmailBatchSize",
            extra={"share_per_s": self.pace.share(), "concurrency": self.pace.concurrency, "batch": claimed},
        )
        count("LinkEmailPaceTooSlow")

    def _set_visibility(self, batch: _Batch) -> None:
        """Hide each returned message for its delay (without this it would come back after the
        queue's visibility timeout). A failure here only means an earlier or later return."""
        handles = {message.message_id: message.receipt_handle for message in batch.messages}
        entries = [
            {"Id": str(n), "ReceiptHandle": handles[message_id], "VisibilityTimeout": delay}
            for n, (message_id, delay) in enumerate(batch.returned.items())
            if handles[message_id]
        ]
        if entries:
            count("LinkEmailMessagesReturned", len(entries))
        for start in range(0, len(entries), 10):
            try:
                response = self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries[start : start + 10]
                )
                failed = [entry.get("Code") for entry in response.get("Failed", [])]
            except (ClientError, BotoCoreError) as exc:
                failed = [type(exc).__name__]
            if failed:
                logger.warning("returned messages' visibility not set", extra={"errors": failed})
