"""What moto's SES v2 lacks, added: ``GetAccount``, with the sending quota of a new production
account (14 emails/s, 50,000 a day) unless set otherwise, and SES's throttle: a ``SendEmail``
beyond the rate (a token bucket: a second's burst, refilled at the rate) or the daily quota is
refused with ``TooManyRequestsException``, as SES refuses it. The stack sets the quota from
``LOCAL_SES_MAX_SEND_RATE`` and ``LOCAL_SES_MAX_24_HOUR_SEND``; the tests' in-process moto gets it
too (``tests/conftest.py``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SesQuota:
    """The sending quota moto's SES v2 answers and enforces (see :func:`ses_quota`): a token bucket
    of ``max_send_rate`` sends, refilled at ``max_send_rate`` a second (a second's burst, no more),
    and ``max_24_hour_send`` sends in all (the emulator's life stands for the 24 hours)."""

    max_send_rate: float = 14.0
    max_24_hour_send: float = 50_000.0
    sent_total: int = 0
    throttled: int = 0  # SendEmail calls refused
    _tokens: float | None = None  # None: full
    _refilled_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> str | None:
        """Count one SendEmail, or say why SES refuses it."""
        now = time.monotonic()
        with self.lock:
            tokens = self.max_send_rate if self._tokens is None else self._tokens
            tokens = min(self.max_send_rate, tokens + (now - self._refilled_at) * self.max_send_rate)
            self._refilled_at = now
            if 0 <= self.max_24_hour_send <= self.sent_total:
                reason = "Daily message quota exceeded."
            elif tokens < 1:
                reason = "Maximum sending rate exceeded."
            else:
                self._tokens = tokens - 1
                self.sent_total += 1
                return None
            self._tokens = tokens
            self.throttled += 1
            return reason

    def reset(self) -> None:
        with self.lock:
            self._tokens, self.sent_total, self.throttled = None, 0, 0


SES_QUOTA = SesQuota()


def ses_quota(max_send_rate: float | None = None, max_24_hour_send: float | None = None) -> SesQuota:
    """Give moto's SES v2 ``GetAccount`` and SES's sending throttle (idempotent), with this quota
    (``None``: as it is; the defaults are a new production account's). Returns the quota, whose
    ``throttled`` counts the refusals."""
    from moto.core.exceptions import JsonRESTError
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    if max_send_rate is not None:
        SES_QUOTA.max_send_rate = max_send_rate
    if max_24_hour_send is not None:
        SES_QUOTA.max_24_hour_send = max_24_hour_send
    SES_QUOTA.reset()
    if getattr(SESV2Response.send_email, "throttled", False):
        return SES_QUOTA
    send_email = SESV2Response.send_email

    def throttled_send_email(self: Any) -> str:
        refused = SES_QUOTA.admit()
        if refused is not None:
            error = JsonRESTError("TooManyRequestsException", refused)
            error.code = 429
            raise error
        return send_email(self)

    def get_account(self: Any) -> str:
        quota = {
            "Max24HourSend": SES_QUOTA.max_24_hour_send,
            "MaxSendRate": SES_QUOTA.max_send_rate,
            "SentLast24Hours": float(SES_QUOTA.sent_total),
        }
        return json.dumps(
            {
                "SendQuota": quota,
                "SendingEnabled": True,
                "ProductionAccessEnabled": True,
                "EnforcementStatus": "HEALTHY",
            }
        )

    urls.url_paths["{0}/v2/email/account$"] = SESV2Response.dispatch
    throttled_send_email.throttled = True  # type: ignore[attr-defined]
    SESV2Response.send_email = throttled_send_email  # type: ignore[method-assign]
    SESV2Response.get_account = get_account  # type: ignore[attr-defined]
    return SES_QUOTA
