"""Logger, Metrics and Tracer shared by every function (settings come from ``POWERTOOLS_*``).

Rule: nothing logged here or anywhere may contain a sign-in token, a session token, a secret key
or a full accept URL. Log ids (``sit_...``, ``sess_...``) instead.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
