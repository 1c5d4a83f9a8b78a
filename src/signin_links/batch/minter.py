"""Batch minting: one request mints sign-in links for many users, safely at least once.

Input (see docs/batches.md): a ``MintSignInLinks`` EventBridge event whose detail is
``{"batch_id", "users" | "user_ids" | "manifest", "expires_in_seconds"?, "org_id"?}``; or, from the
Step Functions state machine, one chunk ``{"batch_id", "chunk_index", "users", ...}``; or the
state machine's final ``{"batch_id", "chunks": [...]}`` that publishes the batch summary.

How a redelivered or re-run batch stays exactly-once per (batch_id, user_id):

* Token ids are derived: ``ids.derived_id("sit", batch_id, user_id)``. The token itself is never
  stored; a re-run re-signs it from the stored record.
* A *unit* of work (a whole batch, or one chunk) first writes a header item with a conditional
  PutItem. If that creates it, no token of the unit can exist and the writes skip any read; if
  it exists, each step of 100 users reads its tokens (BatchGetItem) and writes only the missing
  ones (BatchWriteItem replaces items, so an existing token is never put again).
* Each step publishes ``SignInLinkMinted`` for its users, then records the published token ids
  in a marker item (an atomic set ADD). A re-run publishes only for tokens not in the marker.
* When every user is settled the header is marked completed with its summary; a redelivery of a
  completed unit publishes nothing. Powertools Idempotency (same table) keeps two deliveries of
  one unit from running at the same time.

A batch_id names one request for good. The request's fingerprint (its users, read from the
manifest first when there is one, and its settings) is checked twice: by Powertools' payload
validation against the idempotency record (within the idempotency window, where the record would
otherwise replay the first batch's summary for a different request), and against the header
(after the records expired). Either way a reused batch_id is :class:`BatchRejected`. A unit that
ends ``incomplete`` leaves no idempotency record, so its redelivery runs and announces the rest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signin_links import ids
from signin_links.config import ConfigError, Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, param_missing, reject_unknown, unavailable
from signin_links.events import Event, EventPublisher
from signin_links.keyring import Keyring
from signin_links.manifest import ManifestLocation, ManifestReader, ResultsWriter, parse_manifest_uri, results_key
from signin_links.models import SignInToken, SignInTokenRecord, TokenStatus
from signin_links.observability import logger, metrics
from signin_links.service import MintRequest, SignInTokens, check_identifier, check_mint_request
from signin_links.store import BATCH_COMPLETED, BATCH_RUNNING, BatchHeader

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

REQUEST_DETAIL_TYPE = "MintSignInLinks"
MINTED_DETAIL_TYPE = "SignInLinkMinted"
COMPLETED_DETAIL_TYPE = "SignInLinkBatchCompleted"

MAX_BATCH_ID_LENGTH = 128
MAX_CHUNK_INDEX = 999_999_999  # a manifest row; results keys give it 9 digits
MAX_METADATA_BYTES = 4096  # a minted event carries it; ten of them share PutEvents' 256 KB
STEP_SIZE = 100  # users per step: one BatchGetItem, 4 BatchWriteItem, 10 PutEvents, 1 marker
MAX_SUMMARY_FAILURES = 100  # the summary event stays far below EventBridge's 256 KB
WHOLE_BATCH = -1  # the chunk number of a batch minted in one invocation
TIME_MARGIN_MS = 20_000  # stop starting steps when less than this remains in the invocation
IDEMPOTENCY_KEY_PREFIX = "batch-idempotency"

DETAIL_FIELDS = frozenset({"batch_id", "users", "user_ids", "manifest", "expires_in_seconds", "org_id"})
CHUNK_FIELDS = frozenset({"batch_id", "chunk_index", "users", "user_ids", "expires_in_seconds", "org_id"})
FINALIZE_FIELDS = frozenset({"batch_id", "chunks"})
USER_FIELDS = frozenset({"user_id", "redirect_url", "metadata"})
COUNT_FIELDS = ("requested", "minted", "already_minted", "failed", "duplicates")

Deadline = Callable[[], int]  # milliseconds left in the invocation


class BatchRejected(SignInLinksError):
    """The request itself is unusable (malformed detail, unreadable or malformed manifest, a
    batch_id reused for other users): nothing is minted, and the invocation fails with this type
    so the event lands in the function's on-failure destination."""

    @classmethod
    def of(cls, error: SignInLinksError) -> BatchRejected:
        return cls(error.code, error.long_message, param=error.param)


class BatchIncomplete(Exception):
    """The invocation ran short of time before every step ran; it fails so that Lambda retries it,
    and the retry carries on where this one stopped."""


class _Unfinished(Exception):  # not an error: carries a summary past Powertools
    """An ``incomplete`` summary, raised through the idempotent function so that Powertools keeps
    no record of it (a redelivery must run and announce the rest), then returned by ``run``."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__("batch incomplete")
        self.summary = summary


def reused_batch_id() -> BatchRejected:
    return BatchRejected.of(
        param_invalid("batch_id", "was already used for a batch with other users or settings; use a new batch_id.")
    )


class _NeverRaised(Exception):
    """Stands for Powertools' validation error when the minter runs without idempotency."""


# --- The contract ---------------------------------------------------------------------------


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
    batch_id: str
    chunks: tuple[Mapping[str, Any], ...]


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


def parse_finalize(event: Mapping[str, Any]) -> FinalizeRequest:
    reject_unknown(event, FINALIZE_FIELDS)
    batch_id = check_batch_id(event.get("batch_id"))
    chunks = event.get("chunks")
    if not isinstance(chunks, list):
        raise param_invalid("chunks", "must be a list of chunk summaries.")
    for chunk in chunks:
        counts = chunk.get("counts") if isinstance(chunk, dict) else None
        if not isinstance(counts, dict) or not all(
            isinstance(counts.get(name, 0), int)
            and not isinstance(counts.get(name, 0), bool)
            and counts.get(name, 0) >= 0
            for name in COUNT_FIELDS
        ):
            raise param_invalid("chunks", "must hold chunk summaries with non-negative integer counts.")
    return FinalizeRequest(batch_id, tuple(chunks))


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
        if "chunks" in event:
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


# --- Planning: validate, de-duplicate, derive ids (pure) --------------------------------------


@dataclass(frozen=True)
class Entry:
    """One valid user of the batch, first occurrence of its user_id."""

    index: int  # position in the request (or manifest), from 0
    request: MintRequest  # settled by check_mint_request
    metadata: dict[str, Any] | None
    token_id: str


@dataclass(frozen=True)
class Failure:
    index: int
    user_id: str | None
    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "user_id": self.user_id, "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Duplicate:
    index: int
    user_id: str
    token_id: str


@dataclass
class Plan:
    requested: int
    entries: list[Entry] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)


def token_id_for(batch_id: str, user_id: str) -> str:
    return ids.derived_id(ids.SIGN_IN_TOKEN, batch_id, user_id)


def _user_id_of(raw: object) -> str | None:
    value = raw.get("user_id") if isinstance(raw, dict) else None
    return value[:256] if isinstance(value, str) else None


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


def plan_batch(request: BatchRequest, users: Sequence[object], settings: Settings) -> Plan:
    plan = Plan(requested=len(users))
    first: dict[str, str] = {}
    for index, raw in enumerate(users):
        try:
            mint, metadata = read_user(raw, request, settings)
        except SignInLinksError as exc:
            plan.failures.append(Failure(index, _user_id_of(raw), exc.code.wire_code, exc.long_message))
            continue
        token_id = first.get(mint.user_id)
        if token_id is not None:
            plan.duplicates.append(Duplicate(index, mint.user_id, token_id))
            continue
        token_id = first[mint.user_id] = token_id_for(request.batch_id, mint.user_id)
        plan.entries.append(Entry(index, mint, metadata, token_id))
    return plan


def fingerprint(request: BatchRequest, users: Sequence[object]) -> str:
    """What the request asks for; a batch_id re-sent with other users or settings is caught."""
    digest = hashlib.sha256()
    digest.update(json.dumps([request.expires_in_seconds, request.org_id], default=str).encode())
    for user in users:
        digest.update(b"\n")
        digest.update(json.dumps(user, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def header_key(batch_id: str, chunk: int) -> str:
    return ids.derived_id("batch", batch_id, str(chunk))


def marker_key(batch_id: str, chunk: int, step: int) -> str:
    return ids.derived_id("bann", batch_id, str(chunk), str(step))


# --- Minting --------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    minted: list[tuple[Entry, SignInToken]] = field(default_factory=list)
    already: list[tuple[Entry, SignInTokenRecord, str]] = field(default_factory=list)  # url if wanted
    failed: list[tuple[Entry, SignInToken, str]] = field(default_factory=list)  # event not delivered
    skipped: bool = False


@dataclass(frozen=True)
class Unit:
    """What every step of one unit of work shares."""

    request: BatchRequest
    keyring: Keyring
    base_url: str
    now: float
    read_first: bool
    want_urls: bool  # the results object lists every user's URL
    marker_ttl: int
    deadline: Deadline | None


def minted_detail(batch_id: str, entry: Entry, minted: SignInToken) -> dict[str, Any]:
    record = minted.record
    return {
        "batch_id": batch_id,
        "user_id": record.user_id,
        "sign_in_token_id": record.id,
        "url": minted.url,
        "expires_at": record.expires_at * 1000,  # Unix ms, like the API's timestamps
        "metadata": entry.metadata,
    }


class BatchMinter:
    """The batch use case. ``idempotency`` (a Powertools persistence layer) keeps two deliveries of
    one unit from running at once; without it (benchmarks, some tests) the header and markers
    alone keep re-runs exactly-once per user."""

    def __init__(
        self,
        settings: Settings,
        tokens: SignInTokens,
        publisher: EventPublisher,
        *,
        manifests: ManifestReader | None = None,
        results: ResultsWriter | None = None,
        idempotency: BasePersistenceLayer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.store = tokens.store
        self.publisher = publisher
        self.manifests = manifests
        self.results = results
        self.clock = clock
        self._idempotent: Callable[..., dict[str, Any]] | None = None
        self._validation_error: type[Exception] = _NeverRaised
        if idempotency is not None:
            from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
            from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError

            self._validation_error = IdempotencyValidationError
            self._idempotency_config = IdempotencyConfig(
                # The key is the unit (batch, chunk); the fingerprint of the request is validated
                # against the stored record, so a reused batch_id is never answered with the
                # summary of another request.
                event_key_jmespath="[batch_id, chunk]",
                payload_validation_jmespath="fingerprint",
                expires_after_seconds=settings.batch_idempotency_seconds,
                raise_on_no_idempotency_key=True,
            )
            self._idempotent = idempotent_function(
                self._mint_unit,
                data_keyword_argument="unit",
                persistence_store=idempotency,
                config=self._idempotency_config,
                key_prefix=IDEMPOTENCY_KEY_PREFIX,
            )

    def run(self, request: BatchRequest | FinalizeRequest, context: LambdaContext | None = None) -> dict[str, Any]:
        """Mint a batch (or a chunk), or publish a distributed batch's summary; returns the
        summary (counts and bounded failures, never a URL)."""
        if isinstance(request, FinalizeRequest):
            return self.finalize(request)
        # The users first (a manifest is read here): they are part of the fingerprint that the
        # idempotency record is checked against.
        users = self._users(request)
        unit = {"batch_id": request.batch_id, "chunk": request.chunk, "fingerprint": fingerprint(request, users)}
        deadline = context.get_remaining_time_in_millis if context is not None else None
        try:
            if self._idempotent is None:
                return self._mint_unit(unit=unit, request=request, users=users, deadline=deadline)
            if context is not None:
                self._idempotency_config.register_lambda_context(context)
            return self._idempotent(unit=unit, request=request, users=users, deadline=deadline)
        except _Unfinished as unfinished:
            return unfinished.summary
        except self._validation_error:
            logger.warning("batch_id reused for another request", extra=self._log(request))
            raise reused_batch_id() from None

    def _mint_unit(
        self, *, unit: dict[str, Any], request: BatchRequest, users: Sequence[object], deadline: Deadline | None
    ) -> dict[str, Any]:
        settings = self.settings
        base_url = self.tokens.batch_base_url()  # before any write: no URL, no stored token
        keyring = self.tokens.ticket_keyring()  # before any write: no key, no stored token
        now = self.clock()
        now_ms = int(now * 1000)
        plan = plan_batch(request, users, settings)
        ttl = int(now) + settings.max_expires_in_seconds + settings.token_retention_seconds
        header = BatchHeader(
            key=header_key(request.batch_id, request.chunk),
            batch_id=request.batch_id,
            chunk=request.chunk,
            fingerprint=unit["fingerprint"],
            status=BATCH_RUNNING,
            created_at=now_ms,
        )
        existing = self.store.start_batch(header, ttl)
        if existing is not None:
            if existing.fingerprint and existing.fingerprint != header.fingerprint:
                raise reused_batch_id()
            if existing.status == BATCH_COMPLETED and existing.summary is not None:
                logger.info("batch already completed; nothing published again", extra=self._log(request))
                return {**existing.summary, "redelivery": True}
        steps = [plan.entries[start : start + STEP_SIZE] for start in range(0, len(plan.entries), STEP_SIZE)]
        markers = [marker_key(request.batch_id, request.chunk, number) for number in range(len(steps))]
        announced = self.store.announced(markers) if existing is not None else {}
        shared = Unit(
            request=request,
            keyring=keyring,
            base_url=base_url,
            now=now,
            # A fresh whole batch cannot have tokens yet; a chunk's users may have been minted by
            # another chunk (a user listed twice in a manifest), so chunks always read first.
            read_first=existing is not None or request.chunk != WHOLE_BATCH,
            want_urls=request.manifest is not None or (request.chunk != WHOLE_BATCH and self.results is not None),
            marker_ttl=ttl,
            deadline=deadline,
        )
        workers = max(1, min(settings.batch_concurrency, len(steps)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch") as pool:
            futures = [
                pool.submit(self._step, shared, step, markers[number], announced.get(markers[number], set()))
                for number, step in enumerate(steps)
            ]
        outcomes = [future.result() for future in futures]  # every step has ended; the first error re-raises
        if any(outcome.skipped for outcome in outcomes):
            logger.warning("batch ran short of time; failing so that the retry resumes", extra=self._log(request))
            raise BatchIncomplete(f"batch {request.batch_id!r}: time ran out; the retry resumes it")
        summary = self._summary(request, plan, outcomes)
        if shared.want_urls and self.results is not None:
            key = results_key(request.batch_id, request.chunk)
            summary["results"] = self.results.write(key, self._result_lines(plan, outcomes))
        if request.chunk == WHOLE_BATCH and not self.publisher.publish_one(COMPLETED_DETAIL_TYPE, summary):
            raise unavailable("EventBridge")  # the retry re-runs: every user is already announced
        if summary["status"] == BATCH_COMPLETED:
            self.store.complete_batch(header.key, summary, int(self.clock() * 1000))
        logger.info("batch minted", extra={**self._log(request), **summary["counts"], "status": summary["status"]})
        # Here, not in the handler: a redelivery answered from the idempotency store or the
        # completed header must not count the batch's links a second time.
        metrics.add_metric(name="BatchSignInTokensMinted", unit="Count", value=summary["counts"]["minted"])
        metrics.add_metric(name="BatchUsersFailed", unit="Count", value=summary["counts"]["failed"])
        if summary["status"] != BATCH_COMPLETED:
            raise _Unfinished(summary)  # no idempotency record: the redelivery announces the rest
        return summary

    def _users(self, request: BatchRequest) -> Sequence[object]:
        if request.manifest is None:
            return request.users
        if self.manifests is None:
            raise ConfigError("a manifest was given but this function has no S3 client")
        try:
            users = self.manifests.read(request.manifest, max_bytes=self.settings.batch_max_manifest_bytes)
            if not users:
                raise param_invalid("manifest", "holds no users.")
            check_size(len(users), self.settings, "manifest")
        except SignInLinksError as exc:
            if exc.code is ErrorCode.SERVICE_UNAVAILABLE:
                raise
            raise BatchRejected.of(exc) from None
        return users

    def _out_of_time(self, deadline: Deadline | None) -> bool:
        return deadline is not None and deadline() < TIME_MARGIN_MS

    def _step(self, unit: Unit, entries: list[Entry], marker: str, announced: set[str]) -> StepOutcome:
        """Up to 100 users: write the missing tokens, announce those not yet announced, record them."""
        outcome = StepOutcome()
        if self._out_of_time(unit.deadline):
            outcome.skipped = True
            return outcome
        request = unit.request
        existing = self.store.get_batch_tokens([entry.token_id for entry in entries]) if unit.read_first else {}
        new_records: list[SignInTokenRecord] = []
        to_announce: list[tuple[Entry, SignInTokenRecord]] = []
        for entry in entries:
            found = existing.get(entry.token_id)
            if found is None:
                record = self.tokens.new_record(
                    entry.request, token_id=entry.token_id, now=unit.now, batch_id=request.batch_id
                )
                new_records.append(record)
                to_announce.append((entry, record))
            elif (
                found.chunk == request.chunk
                and found.record.status is TokenStatus.PENDING
                and entry.token_id not in announced
            ):
                to_announce.append((entry, found.record))  # written by an earlier run that stopped short
            else:
                url = self.tokens.issue(found.record, unit.keyring, unit.base_url).url if unit.want_urls else ""
                outcome.already.append((entry, found.record, url))
        self.store.put_batch_tokens(new_records, self.settings.ttl_for, request.chunk)
        minted = [(entry, self.tokens.issue(record, unit.keyring, unit.base_url)) for entry, record in to_announce]
        events = [Event(MINTED_DETAIL_TYPE, minted_detail(request.batch_id, entry, token)) for entry, token in minted]
        failed = {failure.index: failure.error_code for failure in self.publisher.publish(events)} if events else {}
        for position, (entry, token) in enumerate(minted):
            if position in failed:
                outcome.failed.append((entry, token, failed[position]))
            else:
                outcome.minted.append((entry, token))
        self.store.add_announced(marker, [token.record.id for _, token in outcome.minted], unit.marker_ttl)
        return outcome

    def _summary(self, request: BatchRequest, plan: Plan, outcomes: list[StepOutcome]) -> dict[str, Any]:
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
            "status": "incomplete" if undelivered else BATCH_COMPLETED,
            "counts": counts,
            "failures": [failure.to_json() for failure in failures[:MAX_SUMMARY_FAILURES]],
            "failures_truncated": max(0, len(failures) - MAX_SUMMARY_FAILURES),
            "results": None,
        }
        if request.chunk != WHOLE_BATCH:
            summary["chunk_index"] = request.chunk
        return summary

    def _result_lines(self, plan: Plan, outcomes: list[StepOutcome]) -> list[dict[str, Any]]:
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

    def finalize(self, request: FinalizeRequest) -> dict[str, Any]:
        """The Step Functions path's last state: one summary for the whole batch (the failures
        themselves are in each chunk's results object)."""
        counts = {name: sum(int(chunk["counts"].get(name, 0)) for chunk in request.chunks) for name in COUNT_FIELDS}
        incomplete = any(chunk.get("status", BATCH_COMPLETED) != BATCH_COMPLETED for chunk in request.chunks)
        bucket = self.results.bucket if self.results is not None else ""
        summary: dict[str, Any] = {
            "batch_id": request.batch_id,
            "status": "incomplete" if incomplete else BATCH_COMPLETED,
            "mode": "distributed",
            "chunks": len(request.chunks),
            "counts": counts,
            "failures": [],
            "failures_truncated": counts["failed"],
            "results": f"s3://{bucket}/{results_key(request.batch_id, 0).rsplit('/', 1)[0]}/" if bucket else None,
        }
        if not self.publisher.publish_one(COMPLETED_DETAIL_TYPE, summary):
            raise unavailable("EventBridge")
        logger.info("distributed batch summarised", extra={"batch_id": request.batch_id, **counts})
        return summary

    @staticmethod
    def _log(request: BatchRequest) -> dict[str, Any]:
        return {"batch_id": request.batch_id, "chunk": request.chunk}
