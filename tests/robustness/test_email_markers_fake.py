"""``FakeStore`` (tests/email_world.py), which the email property tests run on, is ``EmailMarkers``
(``signin_links.store``) in memory: any sequence of the mailer's calls, run on both (the real one on
moto, with the template's table), gives the same answers, the same errors and the same markers.

Calls are drawn as the mailer makes them: ``claim_emails`` with one claim or more (DynamoDB refuses
an empty transaction; the mailer sends two or more), and ``record_sent`` (only the holder of a "sending" claim
settles it, which the unconditional BatchWriteItem relies on): it is drawn only where that holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import count
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from signin_links.errors import SignInLinksError
from signin_links.models import EMAIL_FAILED, EMAIL_SENDING, EMAIL_SENT, EMAIL_UNKNOWN, EmailMarker
from signin_links.store import EmailMarkers
from signin_links.store.emails import email_marker_from_item, email_marker_key
from tests.conftest import REGION
from tests.email_world import FakeStore

TOKENS = ["a", "b", "c"]  # few, so that calls meet each other's markers
REQUESTS = ["req-1", "req-2", "req-3"]
TTL = 1_760_000_000


def first(claim: tuple[str, str]) -> str:
    return claim[0]


tokens = st.sampled_from(TOKENS)
requests = st.sampled_from(REQUESTS)
texts = st.sampled_from(["", "no_address", "outcome_unknown", "msg-1", "ada@example.com", "名前"])
calls = st.one_of(
    st.tuples(st.just("claim_email"), tokens, requests),
    st.tuples(st.just("record_email_failure"), tokens, requests, texts),
    st.tuples(
        st.just("claim_emails"), st.lists(st.tuples(tokens, requests), min_size=1, max_size=3, unique_by=lambda c: c[0])
    ),
    st.tuples(st.just("record_sent"), tokens, texts, texts, st.sampled_from(["", "en", "ar"])),
    st.tuples(
        st.just("settle_email"), tokens, requests, st.sampled_from([EMAIL_SENT, EMAIL_FAILED, EMAIL_UNKNOWN]), texts
    ),
    st.tuples(st.just("take_over_email"), tokens, requests, requests),
    st.tuples(st.just("release_email"), tokens, requests),
    st.tuples(st.just("mark_email_announced"), tokens),
    st.tuples(st.just("sent_to"), tokens),
)


@dataclass
class Table:
    """The template's table on moto, and the real store on it."""

    dynamodb: Any
    name: str
    markers: EmailMarkers

    def markers_of(self, token_ids: list[str]) -> dict[str, EmailMarker]:
        """The stored markers of ``token_ids`` (one consistent BatchGetItem)."""
        keys = [{"pk": {"S": email_marker_key(token_id)}} for token_id in token_ids]
        request = {self.name: {"Keys": keys, "ConsistentRead": True}}
        items = self.dynamodb.batch_get_item(RequestItems=request)["Responses"][self.name]
        return {marker.token_id: marker for marker in map(email_marker_from_item, items)}


@pytest.fixture(scope="module")
def table() -> Iterator[Table]:
    with mock_aws():
        from local.resources import create_tables

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        name = create_tables(dynamodb)["TokensTable"]
        yield Table(dynamodb, name, EmailMarkers(dynamodb, name, sleep=lambda seconds: None))


def outcome(call: Any) -> tuple[str, Any]:
    """What a call answered, or the error it raised (its code for a domain error)."""
    try:
        return "answer", call()
    except SignInLinksError as exc:
        return "error", exc.code
    except Exception as exc:
        return "error", type(exc).__name__


def run(store: Any, name: str, args: tuple[Any, ...], ns: str, now_ms: int) -> tuple[str, Any]:
    token = f"{ns}{args[0]}" if args and isinstance(args[0], str) else ""
    if name == "claim_email":
        return outcome(lambda: store.claim_email(token, args[1], now_ms, TTL))
    if name == "record_email_failure":
        return outcome(lambda: store.record_email_failure(token, args[1], args[2], now_ms, TTL))
    if name == "claim_emails":
        claims = [(f"{ns}{token_id}", claimer, TTL) for token_id, claimer in args[0]]
        return outcome(lambda: store.claim_emails(claims, now_ms))
    if name == "settle_email":
        _, request_id, status, text = args
        return outcome(lambda: store.settle_email(token, request_id, status, now_ms, message_id=text, reason=text))
    if name == "take_over_email":
        return outcome(lambda: store.take_over_email(token, args[1], args[2], now_ms))
    if name == "release_email":
        return outcome(lambda: store.release_email(token, args[1]))
    if name == "mark_email_announced":
        return outcome(lambda: store.mark_email_announced(token))
    assert name == "sent_to"
    return outcome(lambda: store.sent_to(token))


def without_ns(value: Any, ns: str) -> Any:
    if isinstance(value, EmailMarker):
        return replace(value, token_id=value.token_id.removeprefix(ns))
    return value


namespaces = count()


@settings(deadline=None)
@given(sequence=st.lists(calls, max_size=25))
def test_the_fake_store_answers_and_holds_what_email_markers_do(table: Table, sequence: list[tuple[Any, ...]]) -> None:
    ns = f"sit_{next(namespaces)}_"  # each example its own tokens in the module's table
    markers, fake = table.markers, FakeStore()
    for step, (name, *args) in enumerate(sequence):
        now_ms = 1_750_000_000_000 + step
        if name == "record_sent":
            token_id, message_id, address, language = args
            held = fake.markers.get(f"{ns}{token_id}")
            if held is None or held.status != EMAIL_SENDING:
                continue  # only the claim's holder settles it
            sent = replace(
                held, status=EMAIL_SENT, updated_at=now_ms, message_id=message_id, address=address, language=language
            )
            answers = [
                outcome(lambda store=store, sent=sent: store.record_sent([(sent, TTL)])) for store in (markers, fake)
            ]
        else:
            answers = [run(store, name, tuple(args), ns, now_ms) for store in (markers, fake)]
        real, faked = ((kind, without_ns(value, ns)) for kind, value in answers)
        assert faked == real, (name, args)
        mine = [f"{ns}{token_id}" for token_id in TOKENS]
        assert {token_id: fake.markers[token_id] for token_id in mine if token_id in fake.markers} == (
            table.markers_of(mine)
        ), (name, args)
