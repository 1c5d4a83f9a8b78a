"""Pacing SendEmail to the account's SES sending rate, read from SES (never guessed).

SES takes at most ``MaxSendRate`` emails a second from an account (14 for a new account out of the
sandbox, 1 in it) and refuses the rest (``TooManyRequestsException``, "Maximum sending rate
exceeded"). The email queue's event source mapping runs at most ``EMAIL_MAXIMUM_CONCURRENCY``
invocations at once (its ``ScalingConfig.MaximumConcurrency``), so each execution environment
takes an equal share::

    share = min(MaxSendRate, EMAIL_SEND_RATE if set) / EMAIL_MAXIMUM_CONCURRENCY   emails/s

and spaces its sends ``1 / share`` seconds apart (:class:`SendPace`), with a burst of at most half
a second of its share after an idle moment (the gap between two batches: a token bucket, the
generic cell rate algorithm), so that the time between batches is not lost. The sum over the
environments never exceeds the account's rate, and their bursts together half a second of it, so
SES has no reason to throttle; when it does anyway (another sender in the account, a quota lowered since it
was read), the environment halves its pace and then regains it step by step (additive increase,
multiplicative decrease: a throttle costs one message a trip back to the queue, never a sleep). The
quota is read with SES v2 ``GetAccount`` when the environment starts and again every
:data:`QUOTA_MAX_AGE_S` (SES raises quotas over time). Several threads of one environment may send
at once (``email_queue``): a slot is taken under a lock and waited for outside it.

Why per environment and not one shared bucket: the only shared state would be a DynamoDB item
written on every send; the concurrency cap already bounds how many environments pace at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import SignInLinksError, unavailable
from signin_links.observability import logger

QUOTA_MAX_AGE_S = 600.0  # SES raises an account's quotas by itself as it sends: read them again this often
MIN_SHARE_FRACTION = 1 / 64  # throttles never slow an environment below this fraction of its share
RECOVERY_STEPS = 20  # successful sends to regain the whole share after a throttle halved it
# After an idle moment, at most this many seconds of the share go at once. Half a second: the
# environments' bursts together stay within SES's own (a second of the rate), with half of it to
# spare for the jitter of sends that are not coordinated across environments.
BURST_S = 0.5


@dataclass(frozen=True)
class SendQuota:
    """The account's SES sending quota (SES v2 ``GetAccount`` ``SendQuota``)."""

    max_send_rate: float  # emails per second
    max_24_hour_send: float  # -1: unlimited
    sent_last_24_hours: float


def read_quota(ses: Any) -> SendQuota:
    """The account's quota from SES v2 ``GetAccount``; ``service_unavailable`` if SES does not answer
    with one (the caller keeps the messages for later)."""
    try:
        quota = ses.get_account()["SendQuota"]
        return SendQuota(
            max_send_rate=float(quota["MaxSendRate"]),
            max_24_hour_send=float(quota["Max24HourSend"]),
            sent_last_24_hours=float(quota.get("SentLast24Hours", 0.0)),
        )
    except (ClientError, BotoCoreError, KeyError, TypeError, ValueError) as exc:
        logger.warning("the SES sending quota could not be read", extra={"error": type(exc).__name__})
        raise unavailable("Amazon SES") from None


class SendPace:
    """One execution environment's pace of SendEmail calls (see the module's docstring).

    ``read`` returns the account's quota (:func:`read_quota` on the SES client); ``concurrency`` is
    how many environments share it; ``cap`` (emails/s, 0: none) a lower ceiling for the whole stack.
    """

    def __init__(
        self,
        read: Callable[[], SendQuota],
        *,
        concurrency: int,
        cap: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._read = read
        self.concurrency = concurrency
        self.cap = cap
        self._clock = clock
        self._sleep = sleep
        self._quota: SendQuota | None = None
        self._read_at = 0.0
        self._factor = 1.0  # the fraction of the share in use (1 until SES throttles)
        self._tat = 0.0  # the theoretical arrival time of the next send (clock seconds; GCRA)
        self._lock = threading.Lock()

    # -- the rate ---------------------------------------------------------------------------------

    def quota(self) -> SendQuota:
        """The account's quota, read again once older than :data:`QUOTA_MAX_AGE_S`; a failed re-read
        keeps the last one (``service_unavailable`` only while none was ever read)."""
        now = self._clock()
        if self._quota is None or now - self._read_at >= QUOTA_MAX_AGE_S:
            try:
                self._quota = self._read()
            except SignInLinksError:
                if self._quota is None:
                    raise
            self._read_at = now
        return self._quota

    def stack_rate(self) -> float:
        """Emails per second the whole stack may send: the account's rate, or the cap if lower."""
        rate = self.quota().max_send_rate
        return min(rate, self.cap) if self.cap > 0 else rate

    def share(self) -> float:
        """This environment's full share of :meth:`stack_rate`, in emails per second."""
        return self.stack_rate() / self.concurrency

    def rate(self) -> float:
        """The pace this environment sends at now (its share, less after throttles)."""
        return self.share() * self._factor

    # -- pacing -----------------------------------------------------------------------------------

    def wait(self, budget_s: float) -> bool:
        """Wait for this environment's next send slot and take it; ``False`` (no wait, no slot) if the
        slot comes later than ``budget_s`` seconds from now, or SES allows no sending at all."""
        with self._lock:
            rate = self.rate()
            if rate <= 0:
                return False
            interval = 1.0 / rate
            tolerance = max(0.0, BURST_S - interval)  # a burst of BURST_S of the pace, at least one send
            now = self._clock()
            start = max(now, self._tat - tolerance)
            if start - now > budget_s:
                return False
            self._tat = max(self._tat, start) + interval
        if start > now:
            self._sleep(start - now)
        return True

    def throttled(self) -> None:
        """SES refused a send for its rate: halve this environment's pace (not below
        :data:`MIN_SHARE_FRACTION` of its share), and no burst: the next send is a whole new
        interval of the slower pace away."""
        with self._lock:
            self._factor = max(MIN_SHARE_FRACTION, self._factor / 2)
            interval = 1.0 / max(self.rate(), 1e-9)
            self._tat = max(self._tat, self._clock() + interval + max(0.0, BURST_S - interval))

    def sent(self) -> None:
        """A send went through: regain part of the share a throttle took."""
        with self._lock:
            self._factor = min(1.0, self._factor + 1.0 / RECOVERY_STEPS)
