"""Minting a batch (or one Step Functions chunk of it): safely at least once per delivery, exactly
once per (batch_id, user_id).

Rules:

* Nothing is written before the accept base URL and the signing key are known: a batch that
  cannot make links leaves no token behind.
* A *unit* of work (a whole batch, or one chunk) first writes its header (a conditional PutItem).
  If that creates it, no token of the unit can exist, and a whole batch skips every read; if it
  exists, or for a chunk (another chunk may hold a user listed twice in the manifest), each step
  reads its tokens (BatchGetItem) and writes only the missing ones. A token is never put twice
  (BatchWriteItem would replace it).
* The token itself is never stored: a re-run re-signs it from the stored record.
* Each step of :data:`STEP_SIZE` users publishes ``SignInLinkMinted`` for its users, then records
  the published token ids in its marker (an atomic set ADD). A re-run publishes only for pending
  tokens of this unit not in the marker.
* When every user is settled the header is marked completed with the summary; a redelivery of a
  completed unit publishes nothing and answers with that summary.
* A batch_id names one request for good. Its fingerprint (users, read from the manifest first,
  and settings) is checked against the idempotency record (Powertools payload validation, within
  the idempotency window) and against the header (after the record expired); a mismatch is
  :class:`~signin_links.batch.request.BatchRejected`.
* Powertools Idempotency (same table) keeps two deliveries of one unit from running at once. A
  unit that ends ``incomplete`` leaves no idempotency record, so its redelivery runs and
  announces the rest; one that runs short of time raises :class:`BatchIncomplete` so that Lambda
  retries it and the retry resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signin_links.batch.plan import Entry, Plan, StepOutcome, fingerprint, header_key, marker_key, plan_batch
from signin_links.batch.request import (
    WHOLE_BATCH,
    BatchRejected,
    BatchRequest,
    FinalizeRequest,
    check_chunk_summaries,
    check_size,
)
from signin_links.batch.summary import distributed_summary, result_lines, unit_summary
from signin_links.config import ConfigError, Settings
from signin_links.errors import ErrorCode, SignInLinksError, param_invalid, unavailable
from signin_links.events import MINTED_DETAIL_TYPE, Event, EventPublisher, minted_link_detail
from signin_links.keyring import Keyring
from signin_links.manifest import ManifestReader, MapRunResults, ResultsWriter, results_key
from signin_links.models import BATCH_COMPLETED, BATCH_RUNNING, SignInTokenRecord, TokenStatus
from signin_links.observability import logger, metrics
from signin_links.sign_in_tokens import SignInTokens
from signin_links.store import BatchHeader, BatchLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

COMPLETED_DETAIL_TYPE = "SignInLinkBatchCompleted"

STEP_SIZE = 100  # users per step: one BatchGetItem, 4 BatchWriteItem, 10 PutEvents, 1 marker
TIME_MARGIN_MS = 20_000  # stop starting steps when less than this remains in the invocation
IDEMPOTENCY_KEY_PREFIX = "batch-idempotency"

Deadline = Callable[[], int]  # milliseconds left in the invocation


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


class TokenBatches:
    """The batch use case. ``idempotency`` (a Powertools persistence layer) keeps two deliveries of
    one unit from running at once; without it (benchmarks, some tests) the header and markers
    alone keep re-runs exactly-once per user."""

    def __init__(
        self,
        settings: Settings,
        tokens: SignInTokens,
        ledger: BatchLedger,
        publisher: EventPublisher,
        *,
        manifests: ManifestReader | None = None,
        results: ResultsWriter | None = None,
        map_runs: MapRunResults | None = None,
        idempotency: BasePersistenceLayer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.ledger = ledger
        self.publisher = publisher
        self.manifests = manifests
        self.results = results
        self.map_runs = map_runs
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
        summary (counts and bounded failures, never a URL). An ``incomplete`` summary (events not
        delivered) is returned, not raised: a redelivery announces the rest.

        Raises:
            BatchRejected: the manifest cannot be read or is malformed, or the ``batch_id`` was used
                for other users: nothing is minted (the event goes to the on-failure destination).
            BatchIncomplete: the invocation ran short of time; Lambda's retry carries on.
            SignInLinksError: ``service_unavailable`` (503) when the keyring, the published URL, DynamoDB,
                S3 or EventBridge cannot be reached before anything is settled (retried).
        """
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
        """One unit of work, in the order the module's rules set: URL and key, header, steps, summary."""
        base_url = self.tokens.batch_base_url()  # before any write: no URL, no stored token
        keyring = self.tokens.ticket_keyring()  # before any write: no key, no stored token
        now = self.clock()
        plan = plan_batch(request, users, self.settings)
        ttl = int(now) + self.settings.max_expires_in_seconds + self.settings.token_retention_seconds
        header, existing = self._start(request, unit["fingerprint"], now, ttl)
        if existing is not None and existing.status == BATCH_COMPLETED and existing.summary is not None:
            logger.info("batch already completed; nothing published again", extra=self._log(request))
            return {**existing.summary, "redelivery": True}
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
        outcomes = self._run_steps(shared, plan, resumed=existing is not None)
        return self._finish(shared, plan, outcomes, header)

    def _start(
        self, request: BatchRequest, fingerprint: str, now: float, ttl: int
    ) -> tuple[BatchHeader, BatchHeader | None]:
        """Write the unit's header unless it exists; returns it and the one found (``None`` when this
        call created it). :class:`BatchRejected` when the one found is of another request."""
        header = BatchHeader(
            key=header_key(request.batch_id, request.chunk),
            batch_id=request.batch_id,
            chunk=request.chunk,
            fingerprint=fingerprint,
            status=BATCH_RUNNING,
            created_at=int(now * 1000),
        )
        existing = self.ledger.start_batch(header, ttl)
        if existing is not None and existing.fingerprint and existing.fingerprint != header.fingerprint:
            raise reused_batch_id()
        return header, existing

    def _run_steps(self, unit: Unit, plan: Plan, *, resumed: bool) -> list[StepOutcome]:
        """Every step of the plan, ``batch_concurrency`` at a time, each once it has read what an
        earlier run announced (``resumed``). :class:`BatchIncomplete` when one was skipped for time."""
        request = unit.request
        steps = [plan.entries[start : start + STEP_SIZE] for start in range(0, len(plan.entries), STEP_SIZE)]
        markers = [marker_key(request.batch_id, request.chunk, number) for number in range(len(steps))]
        announced = self.ledger.announced(markers) if resumed else {}
        workers = max(1, min(self.settings.batch_concurrency, len(steps)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch") as pool:
            futures = [
                pool.submit(self._step, unit, step, markers[number], announced.get(markers[number], set()))
                for number, step in enumerate(steps)
            ]
        outcomes = [future.result() for future in futures]  # every step has ended; the first error re-raises
        if any(outcome.skipped for outcome in outcomes):
            logger.warning("batch ran short of time; failing so that the retry resumes", extra=self._log(request))
            raise BatchIncomplete(f"batch {request.batch_id!r}: time ran out; the retry resumes it")
        return outcomes

    def _finish(self, unit: Unit, plan: Plan, outcomes: list[StepOutcome], header: BatchHeader) -> dict[str, Any]:
        """Results object, completion event (a whole batch), header completed, metrics; raises
        :class:`_Unfinished` for an ``incomplete`` summary."""
        request = unit.request
        summary = unit_summary(request, plan, outcomes)
        if unit.want_urls and self.results is not None:
            key = results_key(request.batch_id, request.chunk)
            summary["results"] = self.results.write(key, result_lines(plan, outcomes))
        if request.chunk == WHOLE_BATCH and not self.publisher.publish_one(COMPLETED_DETAIL_TYPE, summary):
            raise unavailable("EventBridge")  # the retry re-runs: every user is already announced
        if summary["status"] == BATCH_COMPLETED:
            self.ledger.complete_batch(header.key, summary, int(self.clock() * 1000))
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
        to_write, to_announce = self._triage(unit, entries, announced, outcome)
        self.ledger.put_batch_tokens(to_write, self.settings.ttl_for, unit.request.chunk)
        self._announce(unit, to_announce, outcome)
        self.ledger.add_announced(marker, [token.record.id for _, token in outcome.minted], unit.marker_ttl)
        return outcome

    def _triage(
        self, unit: Unit, entries: list[Entry], announced: set[str], outcome: StepOutcome
    ) -> tuple[list[SignInTokenRecord], list[tuple[Entry, SignInTokenRecord]]]:
        """The step's tokens to write (missing) and to announce (just written, or written by an
        earlier run of this unit and not announced); the rest go to ``outcome.already``."""
        request = unit.request
        existing = self.ledger.get_batch_tokens([entry.token_id for entry in entries]) if unit.read_first else {}
        to_write: list[SignInTokenRecord] = []
        to_announce: list[tuple[Entry, SignInTokenRecord]] = []
        for entry in entries:
            found = existing.get(entry.token_id)
            if found is None:
                record = self.tokens.new_record(
                    entry.request, token_id=entry.token_id, now=unit.now, batch_id=request.batch_id
                )
                to_write.append(record)
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
        return to_write, to_announce

    def _announce(self, unit: Unit, to_announce: list[tuple[Entry, SignInTokenRecord]], outcome: StepOutcome) -> None:
        """Sign each token and publish its ``SignInLinkMinted``; a failed PutEvents entry makes it
        ``outcome.failed`` (not recorded as announced), the others ``outcome.minted``."""
        minted = [(entry, self.tokens.issue(record, unit.keyring, unit.base_url)) for entry, record in to_announce]
        batch_id = unit.request.batch_id
        events = [
            Event(MINTED_DETAIL_TYPE, minted_link_detail(token, batch_id=batch_id, metadata=entry.metadata))
            for entry, token in minted
        ]
        failed = {failure.index: failure.error_code for failure in self.publisher.publish(events)} if events else {}
        for position, (entry, token) in enumerate(minted):
            if position in failed:
                outcome.failed.append((entry, token, failed[position]))
            else:
                outcome.minted.append((entry, token))

    def finalize(self, request: FinalizeRequest) -> dict[str, Any]:
        """The Step Functions path's last state: publish one summary for the whole batch (the chunk
        summaries inline, or read back from where the Distributed Map wrote them).

        Raises:
            BatchRejected: the Map run's results cannot be read back as chunk summaries.
            SignInLinksError: ``service_unavailable`` (503) when S3 or EventBridge cannot be reached.
        """
        if request.map_results is not None:
            request = self._read_map_run(request)
        summary = distributed_summary(request, self.results.bucket if self.results is not None else "")
        if not self.publisher.publish_one(COMPLETED_DETAIL_TYPE, summary):
            raise unavailable("EventBridge")
        logger.info("distributed batch summarised", extra={"batch_id": request.batch_id, **summary["counts"]})
        return summary

    def _read_map_run(self, request: FinalizeRequest) -> FinalizeRequest:
        assert request.map_results is not None
        if self.map_runs is None:
            raise ConfigError("RESULTS_BUCKET is required to read a map run's results")
        bucket, key = request.map_results
        try:
            run = self.map_runs.read(bucket, key, max_bytes=self.settings.batch_max_manifest_bytes)
            chunks = check_chunk_summaries(run.outputs, "map_results")
        except SignInLinksError as exc:
            if exc.code is ErrorCode.SERVICE_UNAVAILABLE:
                raise  # S3 unavailable: the state machine retries the step
            raise BatchRejected.of(exc) from None
        return FinalizeRequest(request.batch_id, chunks, incomplete_chunks=run.unfinished_files)

    @staticmethod
    def _log(request: BatchRequest) -> dict[str, Any]:
        return {"batch_id": request.batch_id, "chunk": request.chunk}
