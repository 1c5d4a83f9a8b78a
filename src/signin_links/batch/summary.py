"""What a batch reports: the summary (returned, and published as ``SignInLinkBatchCompleted``) and
the results object's lines; pure.

Rules:

* A summary never holds a URL or a token: counts, at most :data:`MAX_SUMMARY_FAILURES` failures
  (``failures_truncated`` says how many more), and where the results object is.
* ``status`` is ``completed`` only when every planned user's link was minted and announced (or
  already was); ``incomplete`` when some ``SignInLinkMinted`` events were not delivered: a
  redelivery announces them.
* The counts add up: ``requested = minted + already_minted + failed + duplicates``, where failed
  counts invalid users and undelivered events alike.
* The results object lists every user of the request once, in request order, with its status
  (``minted``, ``already_minted``, ``failed``, ``duplicate``) and, for links, the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signin_links.batch.plan import Entry, Failure, Plan, StepOutcome
from signin_links.batch.request import COUNT_FIELDS, WHOLE_BATCH, BatchRequest, FinalizeRequest
from signin_links.manifest import results_key
from signin_links.models import BATCH_COMPLETED, SignInTokenRecord

MAX_SUMMARY_FAILURES = 100  # the summary event stays far below EventBridge's 256 KB
INCOMPLETE = "incomplete"


def unit_summary(request: BatchRequest, plan: Plan, outcomes: Sequence[StepOutcome]) -> dict[str, Any]:
    """The summary of one unit of work (a whole batch, or one chunk)."""
    undelivered = [
        Failure(entry.index, entry.request.user_id, "event_delivery_failed", f"PutEvents entry failed: {code}")
        for outcome in outcomes
        for entry, _, code in outcome.failed
    ]
    failures = sorted(plan.failures + undelivered, key=lambda failure: failure.index)
    counts = {
        "requested": plan.requested,
        "minted": sum(len(outcome.minted) for outcome in outcomes),
        "already_minted": sum(len(outcome.already) for outcome in outcomes),
        "failed": len(failures),
        "duplicates": len(plan.duplicates),
    }
    summary: dict[str, Any] = {
        "batch_id": request.batch_id,
        # "incomplete": some links were minted but not announced; a redelivery announces them.
        "status": INCOMPLETE if undelivered else BATCH_COMPLETED,
        "counts": counts,
        "failures": [failure.to_json() for failure in failures[:MAX_SUMMARY_FAILURES]],
        "failures_truncated": max(0, len(failures) - MAX_SUMMARY_FAILURES),
        "results": None,
    }
    if request.chunk != WHOLE_BATCH:
        summary["chunk_index"] = request.chunk
    return summary


def result_lines(plan: Plan, outcomes: Sequence[StepOutcome]) -> list[dict[str, Any]]:
    """The results object: one line per user of the request, in request order."""
    lines: list[tuple[int, dict[str, Any]]] = []

    def link(status: str, entry: Entry, record: SignInTokenRecord, url: str) -> None:
        lines.append(
            (
                entry.index,
                {
                    "index": entry.index,
                    "user_id": record.user_id,
                    "status": status,
                    "sign_in_token_id": record.id,
                    "url": url,
                    "expires_at": record.expires_at * 1000,
                    "metadata": entry.metadata,
                },
            )
        )

    for outcome in outcomes:
        for entry, token in outcome.minted:
            link("minted", entry, token.record, token.url)
        for entry, record, url in outcome.already:
            link("already_minted", entry, record, url)
        for entry, token, code in outcome.failed:
            failure = Failure(entry.index, token.record.user_id, "event_delivery_failed", code)
            lines.append((entry.index, {**failure.to_json(), "status": "failed"}))
    for failure in plan.failures:
        lines.append((failure.index, {**failure.to_json(), "status": "failed"}))
    for duplicate in plan.duplicates:
        lines.append(
            (
                duplicate.index,
                {
                    "index": duplicate.index,
                    "user_id": duplicate.user_id,
                    "status": "duplicate",
                    "sign_in_token_id": duplicate.token_id,
                },
            )
        )
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


def distributed_summary(request: FinalizeRequest, results_bucket: str) -> dict[str, Any]:
    """The Step Functions path's one summary for the whole batch: the chunks' counts added up (the
    failures themselves are in each chunk's results object)."""
    counts = {name: sum(int(chunk["counts"].get(name, 0)) for chunk in request.chunks) for name in COUNT_FIELDS}
    incomplete = request.incomplete_chunks > 0 or any(
        chunk.get("status", BATCH_COMPLETED) != BATCH_COMPLETED for chunk in request.chunks
    )
    folder = results_key(request.batch_id, 0).rsplit("/", 1)[0]
    return {
        "batch_id": request.batch_id,
        "status": INCOMPLETE if incomplete else BATCH_COMPLETED,
        "mode": "distributed",
        "chunks": len(request.chunks),
        "counts": counts,
        "failures": [],
        "failures_truncated": counts["failed"],
        "results": f"s3://{results_bucket}/{folder}/" if results_bucket else None,
    }
