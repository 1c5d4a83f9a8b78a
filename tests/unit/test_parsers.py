"""Wherever input reaches a parser (json, int, base64, the manifest readers, the batch shapes, the
secrets' JSON), a wrong type, a huge number or an odd character is that input's clear error, never
an exception of another kind escaping to a 5xx or a retried batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signin_links.auth import parse_api_keys
from signin_links.batch.plan import plan_batch
from signin_links.batch.request import BatchRejected, BatchRequest, parse_invocation
from signin_links.config import parse_settings
from signin_links.errors import SignInLinksError
from signin_links.keyring import KeyringFormatError, parse_keyring, read_keys
from signin_links.manifest import parse_csv, parse_jsonl
from tests.strategies import json_values, redirect_urls, tricky_text

SETTINGS = parse_settings({"TABLE_NAME": "t", "ALLOWED_REDIRECT_ORIGINS": "https://app.example.com"})


# --- JSONL manifests: lines end at "\n" only ---------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"])
def test_a_jsonl_string_may_hold_characters_that_str_splitlines_splits_on(separator: str) -> None:
    """JSON allows these raw inside a string; str.splitlines() cut the line there, rejecting the
    whole manifest ("line 1 is not valid JSON")."""
    text = json.dumps({"user_id": f"a{separator}b", "metadata": {"note": separator}}, ensure_ascii=False)
    assert parse_jsonl(text + "\r\n" + '{"user_id": "c"}\n') == [
        {"user_id": f"a{separator}b", "metadata": {"note": separator}},
        {"user_id": "c"},
    ]


@settings(deadline=None)
@given(st.lists(json_values, max_size=5), st.sampled_from(["\n", "\r\n"]))
def test_any_json_lines_read_back(values: list[Any], newline: str) -> None:
    text = newline.join(json.dumps(value, ensure_ascii=False) for value in values)
    try:
        users = parse_jsonl(text)
    except SignInLinksError as error:
        assert error.param == "manifest"
        assert any(not isinstance(value, dict) for value in values)
        return
    expected = [value for value in values if isinstance(value, dict)]
    assert json.dumps(users) == json.dumps(expected)  # (NaN is not equal to itself)


@settings(deadline=None)
@given(st.text(max_size=300) | tricky_text)
def test_any_text_is_a_manifest_or_its_clear_error(text: str) -> None:
    for parse in (parse_csv, parse_jsonl):
        try:
            users = parse(text)
        except SignInLinksError as error:
            assert error.param == "manifest"
            assert error.code.wire_code == "form_param_value_invalid"
        else:
            assert all(isinstance(user, dict) for user in users)


# --- Batch shapes: numbers that DynamoDB or the summary cannot hold ----------------------------------


@pytest.mark.parametrize("index", [10**9, 10**30, 2**64])
def test_a_chunk_index_beyond_any_manifest_is_rejected(index: int) -> None:
    """DynamoDB keeps 38 digits; a larger chunk_index failed its PutItem as "unavailable", retried."""
    with pytest.raises(BatchRejected) as caught:
        parse_invocation({"batch_id": "b", "chunk_index": index, "users": [{"user_id": "u"}]}, SETTINGS)
    assert caught.value.param == "chunk_index"


@pytest.mark.parametrize("count", [-1, -(10**30)])
def test_negative_chunk_counts_are_rejected(count: int) -> None:
    with pytest.raises(BatchRejected) as caught:
        parse_invocation({"batch_id": "b", "chunks": [{"counts": {"minted": count}}]}, SETTINGS)
    assert caught.value.param == "chunks"


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["batch_id", "chunk_index", "users", "user_ids", "expires_in_seconds", "org_id", "chunks"]),
        json_values,
    )
)
def test_any_state_machine_payload_is_a_request_or_rejected(payload: dict[str, Any]) -> None:
    try:
        request = parse_invocation(payload, SETTINGS)
    except BatchRejected:
        return
    assert getattr(request, "batch_id", None) == payload["batch_id"]


# --- Secrets' JSON: the operator's mistake is a clear error, not a TypeError on every request --------


@pytest.mark.parametrize(
    "raw",
    [
        '{"secret_keys": 5}',
        '{"secret_keys": true}',
        '{"secret_keys": {"a": "sk_test_0123456789abcdef"}}',
        '{"secret_key": ["sk_test_0123456789abcdef"]}',
        "[1, 2]",
        "7",
        "null",
    ],
)
def test_an_api_keys_secret_of_the_wrong_shape_holds_no_key(raw: str) -> None:
    assert parse_api_keys(raw) == ()


@pytest.mark.parametrize(
    "raw",
    [
        '{"kind": "hmac", "keys": 5}',
        '{"kind": "hmac", "keys": true}',
        '{"kind": "hmac", "keys": [{"kid": "k", "created_at": 1e400, "secret": "' + "A" * 43 + '"}]}',
        '{"kind": "hmac", "keys": [{"kid": "k", "activates_at": Infinity, "secret": "' + "A" * 43 + '"}]}',
        '{"kind": "hmac", "keys": [{"kid": "k", "created_at": NaN, "secret": "' + "A" * 43 + '"}]}',
        '{"kind": ["hmac"], "keys": []}',
    ],
)
def test_a_keyring_secret_of_the_wrong_shape_is_a_keyring_format_error(raw: str) -> None:
    with pytest.raises(KeyringFormatError):
        read_keys(raw)
    with pytest.raises(KeyringFormatError):
        parse_keyring(raw)


# --- A batch's users: each one's problem is its own (the batch goes on for the others) --------------

user_objects = st.fixed_dictionaries(
    {},
    optional={
        "user_id": st.sampled_from(["u1", "u2", "u1"]) | tricky_text | json_values,
        "redirect_url": redirect_urls | json_values,
        "metadata": json_values | st.sampled_from(['{"a": 1}', "{", "[]", '"x"']),
        "extra": json_values,
    },
)


@settings(deadline=None)
@given(st.lists(user_objects | json_values, min_size=1, max_size=8))
def test_any_users_are_planned_one_by_one(users: list[Any]) -> None:
    request = parse_invocation({"batch_id": "b", "chunk_index": 0, "users": users}, SETTINGS)
    assert isinstance(request, BatchRequest)
    plan = plan_batch(request, request.users, SETTINGS)  # never raises: a bad user fails alone
    indexes = sorted(
        [entry.index for entry in plan.entries]
        + [failure.index for failure in plan.failures]
        + [duplicate.index for duplicate in plan.duplicates]
    )
    assert indexes == list(range(len(users)))
    for entry in plan.entries:
        redirect = entry.request.redirect_url
        if redirect is not None:
            assert redirect.isascii(), redirect
            assert SETTINGS.redirect_allowed(redirect), redirect
