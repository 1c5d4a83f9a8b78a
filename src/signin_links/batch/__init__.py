"""Batch minting (being split into modules; see minter.py for now)."""

from signin_links.batch.minter import (
    IDEMPOTENCY_KEY_PREFIX,
    MINTED_DETAIL_TYPE,
    BatchIncomplete,
    BatchMinter,
    BatchRejected,
    BatchRequest,
    FinalizeRequest,
    fingerprint,
    header_key,
    marker_key,
    parse_invocation,
    parse_metadata,
    plan_batch,
    token_id_for,
)

__all__ = [
    "IDEMPOTENCY_KEY_PREFIX",
    "MINTED_DETAIL_TYPE",
    "BatchIncomplete",
    "BatchMinter",
    "BatchRejected",
    "BatchRequest",
    "FinalizeRequest",
    "fingerprint",
    "header_key",
    "marker_key",
    "parse_invocation",
    "parse_metadata",
    "plan_batch",
    "token_id_for",
]
