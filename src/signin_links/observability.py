"""Logger and Metrics shared by every function (settings come from ``POWERTOOLS_*``).

Rule: nothing logged here or anywhere may contain a sign-in token, a session token, a secret key
or a full accept URL. Log ids (``sit_...``, ``sess_...``) instead.

Tracing is Lambda's own (``Tracing: Active`` in template.yaml): Lambda records each invocation's
segments in X-Ray without an SDK in the package, and the Logger adds the trace id
(``xray_trace_id``, from ``_X_AMZN_TRACE_ID``) to every line next to ``correlation_id``. Powertools'
Tracer is not used: it needs the X-Ray SDK (``aws-xray-sdk``, end of support 2027-02-25), which cost
a cold start its import and every request its subsegments (docs/performance.md).
"""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
_METRICS = threading.Lock()


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the Count metric ``name``, safely from several threads (the email queue
    sends from a few): Powertools' ``add_metric`` reads, then stores, a metric's values, so a first
    value added by two threads at once would lose one."""
    with _METRICS:
        metrics.add_metric(name=name, unit="Count", value=value)
