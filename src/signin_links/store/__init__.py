"""The only code that talks to DynamoDB. Token state lives here; the token itself never does.

One table; each class is the only writer of its items:

* :class:`TokenStore` (``tokens.py``): sign-in tokens (create, revoke, redeem) and, through
  ``sessions.SessionItems``, sessions (``sessions.py``: their items and the sessions list).
* :class:`BatchLedger` (``batches.py``): batch minting's bookkeeping: its tokens' bulk reads and
  writes, unit headers, announcement markers, and the Powertools Idempotency records.
* :class:`EmailMarkers` (``emails.py``): delivery by email, one marker per token.
* :class:`RenewalRequests` (``renewals.py``): "Email me a new link", one request per dead token.

``dynamo.py`` holds what they share (errors, attribute values, put-if-absent, BatchWriteItem).

Item shape (table key ``pk``)::

    pk = "sit_..."        id of the sign-in token
    user_id, status ("pending" | "accepted" | "revoked"), created_at, updated_at (Unix ms),
    expires_at (Unix s), eis (expires_in_seconds), ttl (Unix s, DynamoDB TTL housekeeping),
    redirect_url?, org_id?, batch_id?, session_id?, accepted_at? (Unix ms),
    batch_chunk? (the unit of batch work that wrote it: -1 for a whole batch, else the chunk index)

    pk = "sess_..."       id of a session (written with its token's acceptance, in one transaction)
    kind = "session", user_id, session_user_id (= user_id: key of the sparse SessionsByUser index),
    client_id ("client_...": key of the sparse SessionsByClient index), status ("active" | "ended" |
    "revoked" | "expired" | "abandoned"), created_at, updated_at, last_active_at, expire_at,
    abandon_at (Unix ms), sign_in_token_id, refresh_generation (the current refresh token's
    generation: the token itself is derived, never stored; see refresh_tokens.py), rotated_at (Unix
    ms), ttl (Unix s), org_id?, azp?, client_hash? (Clerk's Frontend API sessions: SHA-256 hex of the
    __client secret), status_reason? (why it ended or was revoked), refresh_hash? (sessions of earlier
    versions only; never read)

    pk = "email#sit_..."  the email of that token (delivery by email; see EmailMarkers)
    status ("sending" | "sent" | "failed" | "unknown"), request_id, claimed_at, updated_at (Unix ms),
    announced (bool), ttl, message_id?, reason?

    pk = "batch_..."      the header of one unit of batch work (id derived from batch_id and chunk)
    batch_id, batch_chunk, fingerprint, status ("running" | "completed"), created_at,
    updated_at (Unix ms), ttl, summary? (JSON, once completed)

    pk = "bann_..."       the announcement marker of one step of a unit (batch_id, chunk, step)
    announced (string set of token ids), ttl

    pk = "batch-idempotency#..."  Powertools Idempotency records (their own attributes, ``ttl`` expiry)

Every state change is one conditional write; ``ClientError`` never leaves this module: it becomes
a domain error (throttling and outages: 503 with ``Retry-After``).
"""

from signin_links.store.batches import BatchHeader, BatchLedger, BatchToken
from signin_links.store.emails import EmailMarkers
from signin_links.store.renewals import RENEWAL_PREFIX, RenewalRequest, RenewalRequests
from signin_links.store.sessions import session_item
from signin_links.store.tokens import RedeemRejected, TokenStore, to_item

__all__ = [
    "RENEWAL_PREFIX",
    "BatchHeader",
    "BatchLedger",
    "BatchToken",
    "EmailMarkers",
    "RedeemRejected",
    "RenewalRequest",
    "RenewalRequests",
    "TokenStore",
    "session_item",
    "to_item",
]
