"""audit_events: the enrichment step of ``AuditPipe`` (EventBridge Pipes), from stream records to events.

The pipe reads the TokensTable's DynamoDB stream, keeps the records its filters match (the audited
changes) and invokes this function with each batch, a JSON array of stream records. It answers with
one object per event, in the batch's order (``signin_links.audit``): ``detail_type``, ``detail``,
``time``; the pipe's target puts each on the stack's bus (``DetailType: $.detail_type``,
``InputTemplate: <$.detail>``, ``Time: $.time``). A record that is not an audited change, or lacks
what its event needs, is logged and left out: raising would make the pipe retry the whole batch and
hold the stream's shard back until the record expires.

Each batch also reports how far behind the pipe is: ``AuditRecordAge``, the age in seconds of its
oldest record (from the record's ``ApproximateCreationDateTime``), as one CloudWatch embedded metric
format line (namespace ``SigninLinks``, dimension ``FunctionName``). Pipes publishes no iterator age
for a stream source; ``AuditPipeLagAlarm`` watches this one.

No AWS call, no dependency beyond the standard library and ``signin_links.audit``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from signin_links.audit import MalformedRecord, audit_event

logger = logging.getLogger("signin_links.audit_events")
logger.setLevel(logging.INFO)

METRICS_NAMESPACE = "SigninLinks"
AGE_METRIC = "AuditRecordAge"
MILLISECONDS_FROM = 10**11  # an epoch time above this is in milliseconds (seconds reach it in year 5138)


def oldest_record_age(records: Sequence[object], now: float) -> float | None:
    """Seconds since the oldest record's ``ApproximateCreationDateTime`` (epoch seconds in stream
    records, milliseconds when a stream is set to that precision); None if no record carries one."""
    created = []
    for record in records:
        data = record.get("dynamodb") if isinstance(record, Mapping) else None
        value = data.get("ApproximateCreationDateTime") if isinstance(data, Mapping) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        try:
            seconds = float(value)  # an int past a float's range raises OverflowError
        except OverflowError:
            continue
        if math.isfinite(seconds) and seconds > 0:
            created.append(seconds / 1000 if seconds >= MILLISECONDS_FROM else seconds)
    return max(0.0, now - min(created)) if created else None


def age_metric_line(age_seconds: float, function_name: str, now: float) -> str:
    """One CloudWatch embedded metric format document: ``AuditRecordAge`` for this function."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(now * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["FunctionName"]],
                        "Metrics": [{"Name": AGE_METRIC, "Unit": "Seconds"}],
                    }
                ],
            },
            "FunctionName": function_name,
            AGE_METRIC: round(age_seconds, 3),
        },
        separators=(",", ":"),
    )


def record_id(record: object) -> str:
    """The stream record's ``eventID`` (never its images, which hold the item)."""
    value = record.get("eventID") if isinstance(record, Mapping) else None
    return value if isinstance(value, str) else "?"


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]]:
    records = event if isinstance(event, list) else []
    if not isinstance(event, list):
        logger.error("audit events: the pipe's payload is not a list of records")
    now = time.time()
    age = oldest_record_age(records, now)
    if age is not None:
        # stdout, not the logger: CloudWatch reads EMF from raw lines (as Powertools Metrics prints them)
        print(age_metric_line(age, os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "audit_events"), now), flush=True)
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
