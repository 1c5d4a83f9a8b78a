"""Batch minting: one request mints sign-in links for many users (docs/batches.md).

``request`` parses and checks the three event shapes, ``plan`` (pure) decides per user,
``minter`` writes, signs and announces, ``summary`` (pure) reports. A handler needs only the
entry points below: ``TokenBatches(...).run(parse_invocation(event, settings), context)``.
"""

from signin_links.batch.minter import BatchIncomplete, TokenBatches
from signin_links.batch.request import BatchRejected, parse_invocation

__all__ = ["BatchIncomplete", "BatchRejected", "TokenBatches", "parse_invocation"]
