"""What a running local stack's SES sent, read from its ``/_local/outbox`` (JSON)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import LocalStackHandle


def outbox(stack: LocalStackHandle) -> list[dict[str, Any]]:
    """Every email the stack sent, newest first."""
    response = httpx.get(f"{stack.base_url}/_local/outbox", headers={"Accept": "application/json"}, timeout=30)
    assert response.status_code == 200
    mails: list[dict[str, Any]] = response.json()
    return mails


def mails_to(stack: LocalStackHandle, address: str) -> list[dict[str, Any]]:
    """The emails sent to ``address`` alone."""
    return [mail for mail in outbox(stack) if mail["to"] == [address]]
