"""The batch contract: the three event shapes the mint function takes besides HTTP, parsed and checked.

Rules:

* A malformed request is rejected whole, before anything is read or written: every error here
  leaves :func:`parse_invocation` as :class:`BatchRejected` (the invocation fails, the event goes
  to the on-failure destination).
* The batch-wide fields (``expires_in_seconds``, ``org_id``) follow the /v1 API's rules
  (``check_mint_request``); so does each user (:func:`read_user`), but a bad user fails alone
  (planning records it), never the batch.
* Exactly one source of users: ``users``, ``user_ids`` or ``manifest``; an inline list holds at
  most ``BATCH_MAX_USERS`` (a manifest is held to the same bound once read, in the minter).
* A ``batch_id`` is an identifier of at most :data:`MAX_BATCH_ID_LENGTH` characters; a chunk index
  is an integer from 0 to :data:`MAX_CHUNK_INDEX`; a whole batch has chunk :data:`WHOLE_BATCH`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signin_links.config import Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, param_missing, reject_unknown
from signin_links.manifest import ManifestLocation, parse_manifest_uri
from signin_links.mint_request import MintRequest, check_identifier, check_mint_request

REQUEST_DETAIL_TYPE = "MintSignInLinks"

MAX_BATCH_ID_LENGTH = 128
MAX_CHUNK_INDEX = 999_999_999  # a manifest row; results keys give it 9 digits
MAX_METADATA_BYTES = 4096  # a minted event carries it; ten of them share PutEvents' 256 KB
WHOLE_BATCH = -1  # the chunk number of a batch minted in one invocation

DETAIL_FIELDS = frozenset({"batch_id", "users", "user_ids", "manifest", "expires_in_seconds", "org_id"})
CHUNK_FIELDS = frozenset({"batch_id", "chunk_index", "users", "user_ids", "expires_in_seconds", "org_id"})
FINALIZE_FIELDS = frozenset({"batch_id", "chunks", "map_results"})
USER_FIELDS = frozenset({"user_id", "redirect_url", "metadata"})
COUNT_FIELDS = ("requested", "minted", "already_minted", "failed", "duplicates")


class BatchRejected(SignInLinksError):
    """The request itself is unusable (malformed detail, unreadable or malformed manifest, a
    batch_id reused for other users): nothing is minted, and the invocation fails with this type
    so the event lands in the function's on-failure destination."""

    @classmethod
    def of(cls, error: SignInLinksError) -> BatchRejected:
        return cls(error.code, error.long_message, param=error.param)


@dataclass(frozen=True)
class BatchRequest:
    batch_id: str
    users: tuple[Any, ...] = ()  # raw user objects, checked one by one (a bad one fails alone)
    manifest: ManifestLocation | None = None
    expires_in_seconds: int | None = None
    org_id: str | None = None
    chunk: int = WHOLE_BATCH


@dataclass(frozen=True)
class FinalizeRequest:
    """The summary step: the chunks' summaries inline (``chunks``), or where the Distributed Map
    wrote them (``map_results``: its ``ResultWriterDetails``, bucket and manifest key)."""

    batch_id: str
    chunks: tuple[Mapping[str, Any], ...] = ()
    map_results: tuple[str, str] | None = None
    incomplete_chunks: int = 0  # result files of failed or pending children (a run read back)


def check_batch_id(value: object) -> str:
    batch_id = check_identifier(value, "batch_id", required=True)
    assert batch_id is not None
    if len(batch_id) > MAX_BATCH_ID_LENGTH:
        raise param_invalid("batch_id", f"must be at most {MAX_BATCH_ID_LENGTH} characters.")
    return batch_id


def parse_detail(detail: Mapping[str, Any], settings: Settings, *, chunked: bool = False) -> BatchRequest:
    """A ``MintSignInLinks`` detail (or a Step Functions chunk) -> :class:`BatchRequest`."""
    reject_unknown(detail, CHUNK_FIELDS if chunked else DETAIL_FIELDS)
    batch_id = check_batch_id(detail.get("batch_id"))
    expires, org_id = detail.get("expires_in_seconds"), detail.get("org_id")
    # The batch-wide fields follow the API's rules; a bad one rejects the whole batch.
    check_mint_request(MintRequest(user_id="batch", expires_in_seconds=expires, org_id=org_id), settings)
    sources = [name for name in ("users", "user_ids", "manifest") if detail.get(name) is not None]
    if not sources:
        raise param_missing("users")
    if len(sources) > 1:
        raise param_invalid(sources[1], f"cannot be given together with {sources[0]}.")
    source = sources[0]
    chunk = WHOLE_BATCH
    if chunked:
        index = detail.get("chunk_index")
        if index is None:
            raise param_missing("chunk_index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_CHUNK_INDEX:
            raise param_invalid("chunk_index", f"must be an integer from 0 to {MAX_CHUNK_INDEX}.")
        chunk = index
    if source == "manifest":
        location = parse_manifest_uri(detail["manifest"], settings.manifest_bucket)
        return BatchRequest(batch_id, manifest=location, expires_in_seconds=expires, org_id=org_id)
    entries = detail[source]
    if not isinstance(entries, list):
        raise param_invalid(source, "must be a list.")
    if not entries:
        raise param_invalid(source, "must not be empty.")
    check_size(len(entries), settings, source)
    users = tuple(entries) if source == "users" else tuple({"user_id": user_id} for user_id in entries)
    return BatchRequest(batch_id, users=users, expires_in_seconds=expires, org_id=org_id, chunk=chunk)


def check_size(count: int, settings: Settings, name: str) -> None:
    if count > settings.batch_max_users:
        raise param_invalid(
            name,
            f"holds {count} users; one invocation mints at most {settings.batch_max_users}. "
            "Larger batches go through a CSV manifest and the MintBatch state machine.",
        )


def check_chunk_summaries(chunks: object, name: str = "chunks") -> tuple[Mapping[str, Any], ...]:
    """A list of chunk summaries, each with non-negative integer counts."""
    if not isinstance(chunks, list):
        raise param_invalid(name, "must be a list of chunk summaries.")
    for chunk in chunks:
        counts = chunk.get("counts") if isinstance(chunk, dict) else None
        if not isinstance(counts, dict) or not all(
            isinstance(counts.get(field, 0), int)
            and not isinstance(counts.get(field, 0), bool)
            and counts.get(field, 0) >= 0
            for field in COUNT_FIELDS
        ):
            raise param_invalid(name, "must hold chunk summaries with non-negative integer counts.")
    return tuple(chunks)


def parse_finalize(event: Mapping[str, Any]) -> FinalizeRequest:
    reject_unknown(event, FINALIZE_FIELDS)
    batch_id = check_batch_id(event.get("batch_id"))
    if ("chunks" in event) == ("map_results" in event):
        raise param_invalid("chunks", "give the chunk summaries (chunks) or where they are (map_results), not both.")
    if "chunks" in event:
        return FinalizeRequest(batch_id, check_chunk_summaries(event["chunks"]))
    where = event["map_results"]
    bucket = where.get("Bucket") if isinstance(where, dict) else None
    key = where.get("Key") if isinstance(where, dict) else None
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise param_invalid("map_results", "must be the Map's ResultWriterDetails: {Bucket, Key}.")
    return FinalizeRequest(batch_id, map_results=(bucket, key))


def parse_invocation(event: Mapping[str, Any], settings: Settings) -> BatchRequest | FinalizeRequest:
    """The three batch shapes the mint function accepts besides HTTP; :class:`BatchRejected`
    for anything malformed."""
    try:
        if "detail-type" in event:
            if event.get("detail-type") != REQUEST_DETAIL_TYPE or event.get("source") != settings.batch_event_source:
                raise param_invalid(
                    "detail-type", f"must be {REQUEST_DETAIL_TYPE} from the source {settings.batch_event_source}."
                )
            detail = event.get("detail")
            if not isinstance(detail, dict):
                raise SignInLinksError(ErrorCode.REQUEST_BODY_INVALID, "The event detail must be a JSON object.")
            return parse_detail(detail, settings)
        if "chunks" in event or "map_results" in event:
            return parse_finalize(event)
        return parse_detail(event, settings, chunked=True)
    except BatchRejected:
        raise
    except SignInLinksError as exc:
        raise BatchRejected.of(exc) from None


def parse_metadata(value: object) -> dict[str, Any] | None:
    """A JSON object, or its text (as a CSV cell holds it); absent or empty means none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise param_invalid("metadata", "must be a JSON object.") from None
    if not isinstance(value, dict):
        raise param_invalid("metadata", "must be a JSON object.")
    if len(json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise param_invalid("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON.")
    return value


def read_user(raw: object, request: BatchRequest, settings: Settings) -> tuple[MintRequest, dict[str, Any] | None]:
    """One user object checked with the API's rules (``check_mint_request``) plus metadata."""
    if not isinstance(raw, dict):
        raise param_invalid("users", "each user must be a JSON object.")
    reject_unknown(raw, USER_FIELDS)
    redirect = raw.get("redirect_url")
    mint = MintRequest(
        user_id=raw.get("user_id"),  # type: ignore[arg-type]  # checked just below
        expires_in_seconds=request.expires_in_seconds,
        org_id=request.org_id,
        redirect_url=None if redirect == "" else redirect,
    )
    settled = check_mint_request(mint, settings)
    return settled, parse_metadata(raw.get("metadata"))
