"""Planning a batch: which users get a link, which fail, which repeat, and what each step of minting
did (:class:`StepOutcome`, read by ``summary.py``); pure (no I/O, no clock).

Rules:

* Every user of the request lands in exactly one of ``entries``, ``failures`` or ``duplicates``,
  keeping its position (``index``, from 0) in the request or manifest.
* A user_id's first valid occurrence is its entry; later ones are duplicates pointing at the same
  token id.
* Ids are derived, never random: a sign-in token's from (batch_id, user_id), a unit header's from
  (batch_id, chunk), a step marker's from (batch_id, chunk, step). A re-run of the same request
  derives the same ids, which is what makes it exactly-once per (batch_id, user_id).
* The fingerprint covers the users (in order) and the batch-wide settings: two requests with one
  batch_id and different fingerprints are different requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from signin_links import ids
from signin_links.batch.request import BatchRequest, read_user
from signin_links.config import Settings
from signin_links.errors import SignInLinksError
from signin_links.mint_request import MintRequest
from signin_links.models import SignInToken, SignInTokenRecord


@dataclass(frozen=True)
class Entry:
    """One valid user of the batch, first occurrence of its user_id."""

    index: int  # position in the request (or manifest), from 0
    request: MintRequest  # settled by check_mint_request
    metadata: dict[str, Any] | None
    token_id: str


@dataclass(frozen=True)
class Failure:
    index: int
    user_id: str | None
    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "user_id": self.user_id, "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Duplicate:
    index: int
    user_id: str
    token_id: str


@dataclass
class Plan:
    requested: int
    entries: list[Entry] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)


def token_id_for(batch_id: str, user_id: str) -> str:
    return ids.derived_id(ids.SIGN_IN_TOKEN, batch_id, user_id)


def _user_id_of(raw: object) -> str | None:
    value = raw.get("user_id") if isinstance(raw, dict) else None
    return value[:256] if isinstance(value, str) else None


def plan_batch(request: BatchRequest, users: Sequence[object], settings: Settings) -> Plan:
    plan = Plan(requested=len(users))
    first: dict[str, str] = {}
    for index, raw in enumerate(users):
        try:
            mint, metadata = read_user(raw, request, settings)
        except SignInLinksError as exc:
            plan.failures.append(Failure(index, _user_id_of(raw), exc.code.wire_code, exc.long_message))
            continue
        token_id = first.get(mint.user_id)
        if token_id is not None:
            plan.duplicates.append(Duplicate(index, mint.user_id, token_id))
            continue
        token_id = first[mint.user_id] = token_id_for(request.batch_id, mint.user_id)
        plan.entries.append(Entry(index, mint, metadata, token_id))
    return plan


def fingerprint(request: BatchRequest, users: Sequence[object]) -> str:
    """What the request asks for; a batch_id re-sent with other users or settings is caught."""
    digest = hashlib.sha256()
    digest.update(json.dumps([request.expires_in_seconds, request.org_id], default=str).encode())
    for user in users:
        digest.update(b"\n")
        digest.update(json.dumps(user, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def header_key(batch_id: str, chunk: int) -> str:
    return ids.derived_id("batch", batch_id, str(chunk))


def marker_key(batch_id: str, chunk: int, step: int) -> str:
    return ids.derived_id("bann", batch_id, str(chunk), str(step))


@dataclass
class StepOutcome:
    minted: list[tuple[Entry, SignInToken]] = field(default_factory=list)
    already: list[tuple[Entry, SignInTokenRecord, str]] = field(default_factory=list)  # url if wanted
    failed: list[tuple[Entry, SignInToken, str]] = field(default_factory=list)  # event not delivered
    skipped: bool = False
