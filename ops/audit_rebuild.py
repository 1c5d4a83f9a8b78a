"""Rebuild the audit events of a stretch of time from the table: the runbook for an ``AuditPipe``
outage longer than the stream's 24 hours (docs/operations.md, "When the pipe fails or falls behind").

    python -m ops.audit_rebuild --table <TokensTableName> --since 2026-12-01T00:00Z --until 2026-12-03T00:00Z
    python -m ops.audit_rebuild ... --bus <EventBusName>           # put them on the bus as well

The table is the source of truth, the events a projection of it: every audited item keeps its
current status, ``created_at`` and ``updated_at``, from which ``signin_links.audit.rebuilt_events``
rebuilds exactly the events the pipe would have published for the changes committed in the window
(``tests/unit/test_audit.py`` checks it on generated item lifecycles). Without ``--bus`` they are
printed as JSON lines (``detail_type``, ``detail``, ``time``); with it they are put on the bus,
``--source`` ``signin-links.rebuilt`` by default: the bus lets only the stack's own roles publish the
source ``signin-links`` (nobody may forge audit events), and your role must be one the bus accepts
(``MintPrincipalArns``). Consumers deduplicate as for the pipe's events, so a window wider than the
outage is harmless. The Scan reads the whole table once (read units for its size).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from signin_links.audit import CHANGES, AuditEvent, MalformedRecord, rebuilt_events

DEFAULT_SOURCE = "signin-links.rebuilt"
PUT_EVENTS_ENTRIES = 10  # EventBridge's limit per PutEvents call


def epoch_ms(text: str) -> int:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as Unix milliseconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def changed_items(dynamodb: Any, table: str, since_ms: int, until_ms: int) -> Iterator[dict[str, Any]]:
    """The audited items (by key prefix) created or changed in the window: one Scan of the table."""
    prefixes = sorted({change.id_prefix for change in CHANGES})
    names = {f":p{n}": {"S": prefix} for n, prefix in enumerate(prefixes)}
    kinds = " OR ".join(f"begins_with(pk, {name})" for name in names)
    window = "(updated_at BETWEEN :since AND :until OR created_at BETWEEN :since AND :until)"
    values = {**names, ":since": {"N": str(since_ms)}, ":until": {"N": str(until_ms)}}
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, FilterExpression=f"({kinds}) AND {window}", ExpressionAttributeValues=values
    ):
        yield from page["Items"]


def rebuild(dynamodb: Any, table: str, since_ms: int, until_ms: int) -> tuple[list[AuditEvent], list[str]]:
    """The window's events in commit order, and the keys of items that could not be rebuilt."""
    events: list[AuditEvent] = []
    malformed: list[str] = []
    for item in changed_items(dynamodb, table, since_ms, until_ms):
        try:
            events.extend(rebuilt_events(item, since_ms, until_ms))
        except MalformedRecord:
            malformed.append(str(item.get("pk", {}).get("S", "?")))
    return sorted(events, key=lambda event: event.time), malformed


def put(events_client: Any, bus: str, source: str, events: Sequence[AuditEvent]) -> int:
    """Put the events on the bus, 10 a call; the number of entries EventBridge refused."""
    failed = 0
    for start in range(0, len(events), PUT_EVENTS_ENTRIES):
        entries = [
            {
                "EventBusName": bus,
                "Source": source,
                "DetailType": event.detail_type,
                "Detail": json.dumps(event.detail),
                "Time": datetime.fromisoformat(event.time.replace("Z", "+00:00")),
            }
            for event in events[start : start + PUT_EVENTS_ENTRIES]
        ]
        failed += int(events_client.put_events(Entries=entries).get("FailedEntryCount", 0))
    return failed


def main(argv: Sequence[str] | None = None, *, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the stack's TokensTableName output")
    parser.add_argument(
        "--since", required=True, help="ISO 8601 start of the window (inclusive), e.g. 2026-12-01T00:00Z"
    )
    parser.add_argument("--until", required=True, help="ISO 8601 end of the window (exclusive)")
    parser.add_argument("--bus", help="put the events on this bus (the stack's EventBusName output)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"their source on the bus (default {DEFAULT_SOURCE})")
    args = parser.parse_args(argv)
    since, until = epoch_ms(args.since), epoch_ms(args.until)
    if until <= since:
        parser.error("--until must be after --since")
    if session is None:
        import boto3

        session = boto3.session.Session()
    events, malformed = rebuild(session.client("dynamodb"), args.table, since, until)
    for key in malformed:
        print(f"not rebuilt (an audited item missing what its event needs): {key}", file=sys.stderr)
    if args.bus:
        failed = put(session.client("events"), args.bus, args.source, events)
        print(
            f"{len(events) - failed} events put on {args.bus} (source {args.source}), {failed} refused", file=sys.stderr
        )
        return 1 if failed or malformed else 0
    for event in events:
        print(json.dumps(event.as_json()))
    print(f"{len(events)} events rebuilt", file=sys.stderr)
    return 1 if malformed else 0


if __name__ == "__main__":
    sys.exit(main())
