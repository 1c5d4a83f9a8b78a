"""Publishing to EventBridge: minted links, batch summaries, audit events.

``PutEvents`` takes at most 10 entries a call; entries that come back failed (``FailedEntryCount``)
are retried with exponential backoff. This module never logs a detail (a minted link's carries the
accept URL). It builds one: :func:`minted_link_detail`, the ``SignInLinkMinted`` shape that batches
and renewals publish and delivery by email reads (``link_email/minted.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import unavailable
from signin_links.models import SignInToken
from signin_links.observability import logger

MAX_ENTRIES_PER_CALL = 10
SOURCE = "signin-links"
# A minted link, published by the batch minter and the renewal, consumed by delivery by email.
MINTED_DETAIL_TYPE = "SignInLinkMinted"


def minted_link_detail(
    minted: SignInToken, *, batch_id: str | None, metadata: dict[str, Any] | None, renewal_of: str | None = None
) -> dict[str, Any]:
    """The ``SignInLinkMinted`` detail of a minted link: a batch's (its user's ``metadata``), or a
    renewal's (``batch_id`` None, no metadata: the email function takes the address on record for
    ``renewal_of``, never one from an event). ``expires_at`` in Unix ms, like the API's timestamps."""
    record = minted.record
    detail: dict[str, Any] = {
        "batch_id": batch_id,
        "user_id": record.user_id,
        "sign_in_token_id": record.id,
        "url": minted.url,
        "expires_at": record.expires_at * 1000,
        "metadata": metadata,
    }
    if renewal_of is not None:
        detail["renewal_of"] = renewal_of
    return detail


@dataclass(frozen=True)
class Event:
    detail_type: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class FailedEvent:
    index: int  # position in the list given to publish()
    error_code: str


class EventPublisher:
    def __init__(
        self,
        client: Any,
        bus_name: str,
        *,
        source: str = SOURCE,
        max_attempts: int = 5,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.bus_name = bus_name
        self.source = source
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._sleep = sleep
        self.calls = 0  # PutEvents calls made (read by the benchmarks)

    def _entry(self, event: Event) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, separators=(",", ":")),
            "EventBusName": self.bus_name,
        }

    def _put(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls += 1
        try:
            response = self._client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("PutEvents failed", extra={"error": type(exc).__name__})
            raise unavailable("EventBridge") from None
        results: list[dict[str, Any]] = response.get("Entries", [])
        return results

    def publish(self, events: Sequence[Event]) -> list[FailedEvent]:
        """Publish ``events`` in calls of 10; return those still failing after every retry."""
        failed: list[FailedEvent] = []
        for start in range(0, len(events), MAX_ENTRIES_PER_CALL):
            pending = list(range(start, min(start + MAX_ENTRIES_PER_CALL, len(events))))
            errors: dict[int, str] = {}
            for attempt in range(self.max_attempts):
                if attempt:
                    self._sleep(self.base_delay * 2 ** (attempt - 1))
                results = self._put([self._entry(events[i]) for i in pending])
                retry = []
                for index, result in zip(pending, results, strict=False):
                    if result.get("ErrorCode"):
                        errors[index] = str(result["ErrorCode"])
                        retry.append(index)
                    else:
                        errors.pop(index, None)
                pending = retry
                if not pending:
                    break
            if pending:
                logger.warning("events not delivered after retries", extra={"count": len(pending)})
            failed.extend(FailedEvent(index=i, error_code=errors.get(i, "Unknown")) for i in pending)
        return failed

    def publish_one(self, detail_type: str, detail: dict[str, Any]) -> bool:
        return not self.publish([Event(detail_type, detail)])
