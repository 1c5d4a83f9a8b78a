"""audit_events: the enrichment step of ``AuditPipe`` (EventBridge Pipes), from stream records to events.

The pipe reads the TokensTable's DynamoDB stream, keeps the records its filters match (the audited
changes) and invokes this function with each batch, a JSON array of stream records. It answers with
one object per event, in the batch's order (``signin_links.audit``): ``detail_type``, ``detail``,
``time``; the pipe's target puts each on the stack's bus (``DetailType: $.detail_type``,
``InputTemplate: <$.detail>``, ``Time: $.time``). A record that is not an audited change, or lacks
what its event needs, is logged and left out: raising would make the pipe retry the whole batch and
hold the stream's shard back until the record expires.

No AWS call, no dependency beyond the standard library and ``signin_links.audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from signin_links.audit import MalformedRecord, audit_event

logger = logging.getLogger("signin_links.audit_events")
logger.setLevel(logging.INFO)


def record_id(record: object) -> str:
    """The stream record's ``eventID`` (never its images, which hold the item)."""
    value = record.get("eventID") if isinstance(record, Mapping) else None
    return value if isinstance(value, str) else "?"


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]]:
    records = event if isinstance(event, list) else []
    if not isinstance(event, list):
        logger.error("audit events: the pipe's payload is not a list of records")
    events: list[dict[str, Any]] = []
    for record in records:
        try:
            found = audit_event(record) if isinstance(record, Mapping) else None
        except MalformedRecord as error:
            logger.error("audit events: record %s left out: %s", record_id(record), error)
            continue
        if found is None:
            logger.warning("audit events: record %s is not an audited change", record_id(record))
            continue
        events.append(found.as_json())
    return events
