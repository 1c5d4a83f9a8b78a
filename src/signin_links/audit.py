"""Audit events from the table's DynamoDB stream: which committed change is which event.

The table is the outbox. A request makes its one conditional write and nothing else; the write's
stream record (old and new image of the item) is read by ``AuditPipe`` (EventBridge Pipes, see
``template.yaml``), whose filters keep the records of audited changes and hand them, in batches, to
``AuditEventsFunction`` (``functions/audit_events``). That function maps each record here to the
event the pipe puts on the stack's bus (source ``signin-links``): ``detail_type``, ``detail`` and
``time`` (the change's ``updated_at``). An event therefore exists exactly when its change was
committed; nothing written (a rejected attempt, a same-browser retry) means no event.

Adding an event is two edits: a filter in ``AuditPipe``'s ``FilterCriteria`` (so only its records
invoke the function) and a :class:`Change` in :data:`CHANGES` (its detail). ``tests/unit/
test_audit.py`` checks that the two agree on every record shape it generates.

Pure and dependency-free (standard library only): ``functions/audit_events`` ships nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SOURCE = "signin-links"
SIGN_IN_TOKEN_PREFIX = "sit_"
SESSION_PREFIX = "sess_"
RENEWAL_PREFIX = "renew#"  # = store.RENEWAL_PREFIX (this module imports nothing of the package)
RENEWAL_DETAIL_TYPE = "SignInLinkRenewalRequested"

Image = Mapping[str, Any]  # a stream record's NewImage / OldImage: {"name": {"S": "..."}, ...}


class MalformedRecord(ValueError):
    """A record the filters let through lacks something its event needs (named in the message)."""


def text(image: Image, name: str) -> str:
    """The string attribute ``name`` of a DynamoDB-typed image."""
    value = image.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("S"), str):
        return str(value["S"])
    raise MalformedRecord(f"no string attribute {name!r}")


def number(image: Image, name: str) -> int:
    """The integer attribute ``name`` of a DynamoDB-typed image."""
    value = image.get(name)
    raw = value.get("N") if isinstance(value, Mapping) else None
    try:
        return int(str(raw))
    except ValueError:
        raise MalformedRecord(f"no integer attribute {name!r}") from None


Detail = Callable[[Image], dict[str, Any]]


@dataclass(frozen=True)
class Change:
    """One audited change: an item of one kind (id prefix) going from one status to another."""

    detail_type: str
    id_prefix: str
    old_status: frozenset[str] | None  # None: the item is new (an INSERT)
    new_status: frozenset[str]
    detail: Detail  # the event's detail, from the new image

    def matches(self, record: Mapping[str, Any]) -> bool:
        stream = record.get("dynamodb")
        if not isinstance(stream, Mapping):
            return False
        key = _string(_get(stream, "Keys"), "pk")
        if key is None or not key.startswith(self.id_prefix):
            return False
        new = _string(_get(stream, "NewImage"), "status")
        if self.old_status is None:
            return record.get("eventName") == "INSERT" and new in self.new_status
        old = _string(_get(stream, "OldImage"), "status")
        return record.get("eventName") == "MODIFY" and old in self.old_status and new in self.new_status


def _get(mapping: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = mapping.get(name)
    return value if isinstance(value, Mapping) else {}


def _string(image: Mapping[str, Any], name: str) -> str | None:
    try:
        return text(image, name)
    except MalformedRecord:
        return None


def _sign_in_token_accepted(new: Image) -> dict[str, Any]:
    # ``retried`` stays for the shape consumers know: a same-browser retry writes nothing, so it
    # has no event (it is counted by the SignInTokenRetriesAccepted metric).
    return {
        "sign_in_token_id": text(new, "pk"),
        "user_id": text(new, "user_id"),
        "session_id": text(new, "session_id"),
        "retried": False,
    }


def _sign_in_token_revoked(new: Image) -> dict[str, Any]:
    return {"sign_in_token_id": text(new, "pk"), "user_id": text(new, "user_id")}


def _session(new: Image) -> dict[str, Any]:
    """A session's change: which session, whose, from which browser sign-in and which link, and,
    when the service ended it for a reason, that reason (``signed_out``, ``signed_in_again``,
    ``refresh_token_reused``, ``all_sessions_revoked``)."""
    detail = {
        "session_id": text(new, "pk"),
        "user_id": text(new, "user_id"),
        "client_id": text(new, "client_id"),
        "sign_in_token_id": text(new, "sign_in_token_id"),
    }
    reason = _string(new, "status_reason")
    if reason:
        detail["reason"] = reason
    return detail


def _renewal_requested(new: Image) -> dict[str, Any]:
    """A fresh link asked for in place of a dead one: ``delivery`` "email" is the stack's to mint and
    mail (its rule routes the event to the mint), "application" the application's to act on."""
    return {
        "sign_in_token_id": text(new, "sign_in_token_id"),
        "user_id": text(new, "user_id"),
        "redirect_url": _string(new, "redirect_url"),
        "org_id": _string(new, "org_id"),
        "delivery": text(new, "delivery"),
    }


PENDING = frozenset({"pending"})
ACTIVE = frozenset({"active"})

CHANGES: tuple[Change, ...] = (
    Change("SignInTokenAccepted", SIGN_IN_TOKEN_PREFIX, PENDING, frozenset({"accepted"}), _sign_in_token_accepted),
    Change("SignInTokenRevoked", SIGN_IN_TOKEN_PREFIX, PENDING, frozenset({"revoked"}), _sign_in_token_revoked),
    # A session is created by the accept's transaction (an INSERT, active); every later status change
    # is one conditional write from active (sign-out, revoke, and expiry or abandonment once a
    # refresh finds it past expire_at / abandon_at).
    Change("SessionCreated", SESSION_PREFIX, None, ACTIVE, _session),
    Change("SessionEnded", SESSION_PREFIX, ACTIVE, frozenset({"ended"}), _session),
    Change("SessionRevoked", SESSION_PREFIX, ACTIVE, frozenset({"revoked"}), _session),
    Change("SessionExpired", SESSION_PREFIX, ACTIVE, frozenset({"expired"}), _session),
    Change("SessionAbandoned", SESSION_PREFIX, ACTIVE, frozenset({"abandoned"}), _session),
    # The renewal of a dead link: one conditional put per sign-in token (POST /accept-token/renew).
    Change(RENEWAL_DETAIL_TYPE, RENEWAL_PREFIX, None, frozenset({"requested"}), _renewal_requested),
)


@dataclass(frozen=True)
class AuditEvent:
    """What the pipe puts on the bus for one record (its target reads these three fields)."""

    detail_type: str
    detail: dict[str, Any]
    time: str  # RFC 3339, UTC: when the change was committed

    def as_json(self) -> dict[str, Any]:
        return {"detail_type": self.detail_type, "detail": self.detail, "time": self.time}


def change_of(record: Mapping[str, Any], changes: Sequence[Change] = CHANGES) -> Change | None:
    """The audited change a stream record is, or None."""
    return next((change for change in changes if change.matches(record)), None)


def rfc3339(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_event(record: Mapping[str, Any], changes: Sequence[Change] = CHANGES) -> AuditEvent | None:
    """The event of one stream record: None if it is not an audited change; :class:`MalformedRecord`
    if it is one but lacks what its event needs."""
    change = change_of(record, changes)
    if change is None:
        return None
    new = _get(_get(record, "dynamodb"), "NewImage")
    try:
        committed_ms = number(new, "updated_at")
        time = rfc3339(committed_ms)
    except (MalformedRecord, ValueError, OverflowError, OSError):
        raise MalformedRecord("no usable 'updated_at'") from None
    return AuditEvent(detail_type=change.detail_type, detail=change.detail(new), time=time)


def rebuilt_events(item: Image, since_ms: int, until_ms: int, changes: Sequence[Change] = CHANGES) -> list[AuditEvent]:
    """The events of the audited changes ``item`` went through in ``[since_ms, until_ms)``, as the pipe
    would have published them, rebuilt from the item as it stands (a DynamoDB-typed image, as a Scan
    returns it): for when the stream lost them (an outage longer than its 24 hours; the runbook in
    docs/operations.md, ``python -m ops.audit_rebuild``).

    An item keeps its current status, ``created_at`` and ``updated_at``, so: a change that creates
    an item (``old_status`` None) is rebuilt at ``created_at`` with the status it was created in,
    and the change into the current status at ``updated_at``. Every audited item changes status at
    most twice (created, then one change out of ``pending`` or ``active``), so nothing in between is
    lost. :class:`MalformedRecord` if an audited change lacks what its event needs."""
    key, status = _string(item, "pk"), _string(item, "status")
    if key is None or status is None:
        return []
    updated = _number_or_none(item, "updated_at")
    created = _number_or_none(item, "created_at")
    events = []
    for change in changes:
        if not key.startswith(change.id_prefix):
            continue
        if change.old_status is None:
            born = created if created is not None else updated
            if born is None or not since_ms <= born < until_ms:
                continue
            as_created = status if status in change.new_status else min(change.new_status)
            image = {**item, "status": {"S": as_created}, "updated_at": {"N": str(born)}}
            record: dict[str, Any] = {
                "eventName": "INSERT",
                "dynamodb": {"Keys": {"pk": {"S": key}}, "NewImage": image},
            }
        elif status in change.new_status and updated is not None and since_ms <= updated < until_ms:
            old = {"status": {"S": min(change.old_status)}}
            record = {
                "eventName": "MODIFY",
                "dynamodb": {"Keys": {"pk": {"S": key}}, "OldImage": old, "NewImage": item},
            }
        else:
            continue
        event = audit_event(record, (change,))
        if event is not None:
            events.append(event)
    return sorted(events, key=lambda event: event.time)


def _number_or_none(image: Image, name: str) -> int | None:
    try:
        return number(image, name)
    except MalformedRecord:
        return None
