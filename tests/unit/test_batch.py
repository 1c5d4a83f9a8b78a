"""Batch minting without I/O: the request contract, planning (validation, de-duplication, ids),
manifest parsing, and the store's retry of unprocessed batch items (on a fake client)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from signin_links import ids
from signin_links.batch.plan import fingerprint, header_key, marker_key, plan_batch, token_id_for
from signin_links.batch.request import BatchRejected, BatchRequest, FinalizeRequest, parse_invocation, parse_metadata
from signin_links.config import parse_settings
from signin_links.errors import SignInLinksError
from signin_links.manifest import ManifestReader, parse_csv, parse_jsonl, parse_manifest_uri, results_key
from signin_links.store import BatchLedger

SETTINGS = parse_settings(
    {
        "TABLE_NAME": "t",
        "ALLOWED_REDIRECT_ORIGINS": "https://app.example.com",
        "ACCEPT_BASE_URL": "https://links.example.com",
        "BATCH_MAX_USERS": "50",
    }
)


def eventbridge(detail: Any, **envelope: Any) -> dict[str, Any]:
    return {"detail-type": "MintSignInLinks", "source": "signin-links.batches", "detail": detail, **envelope}


# --- The contract ---------------------------------------------------------------------------------


def test_an_eventbridge_event_becomes_a_whole_batch_request() -> None:
    request = parse_invocation(
        eventbridge({"batch_id": "b1", "users": [{"user_id": "u"}], "expires_in_seconds": 60, "org_id": "org_1"}),
        SETTINGS,
    )
    assert request == BatchRequest("b1", users=({"user_id": "u"},), expires_in_seconds=60, org_id="org_1", chunk=-1)


def test_user_ids_are_short_for_users_objects() -> None:
    request = parse_invocation(eventbridge({"batch_id": "b1", "user_ids": ["a", "b"]}), SETTINGS)
    assert isinstance(request, BatchRequest)
    assert request.users == ({"user_id": "a"}, {"user_id": "b"})


def test_a_manifest_request_names_its_object() -> None:
    request = parse_invocation(eventbridge({"batch_id": "b1", "manifest": "s3://bkt/dir/users.csv"}), SETTINGS)
    assert isinstance(request, BatchRequest)
    assert request.manifest is not None
    assert (request.manifest.bucket, request.manifest.key, request.manifest.format) == ("bkt", "dir/users.csv", "csv")


def test_the_state_machine_shapes() -> None:
    chunk = parse_invocation({"batch_id": "b1", "chunk_index": 3000, "users": [{"user_id": "u"}]}, SETTINGS)
    assert isinstance(chunk, BatchRequest)
    assert chunk.chunk == 3000
    final = parse_invocation({"batch_id": "b1", "chunks": [{"counts": {"minted": 2}, "status": "completed"}]}, SETTINGS)
    assert isinstance(final, FinalizeRequest)
    assert final.chunks[0]["counts"] == {"minted": 2}


@pytest.mark.parametrize(
    ("event", "param"),
    [
        (eventbridge({"batch_id": "b", "users": [{"user_id": "u"}]}, source="other"), "detail-type"),
        (eventbridge("not an object"), None),
        (eventbridge({"batch_id": "b", "users": [{}] * 51}), "users"),
        (eventbridge({"batch_id": "b", "user_ids": ["u"], "manifest": "s3://b/k.csv"}), "manifest"),
        (eventbridge({"batch_id": "b", "manifest": "s3://bucket-only"}), "manifest"),
        (eventbridge({"batch_id": "b", "manifest": "s3://b/users.xlsx"}), "manifest"),
        (eventbridge({"batch_id": "b", "manifest": 42}), "manifest"),
        (eventbridge({"batch_id": "b\u2028", "user_ids": ["u"]}), "batch_id"),
        ({"batch_id": "b", "chunk_index": True, "users": [{"user_id": "u"}]}, "chunk_index"),
        ({"batch_id": "b", "chunks": [{"counts": {"minted": True}}]}, "chunks"),
        ({"batch_id": "b", "chunks": ["x"]}, "chunks"),
    ],
)
def test_malformed_requests_are_rejected(event: dict[str, Any], param: str | None) -> None:
    with pytest.raises(BatchRejected) as caught:
        parse_invocation(event, SETTINGS)
    assert caught.value.param == param
    assert isinstance(caught.value, SignInLinksError)
    assert caught.value.status < 500


def test_manifest_bucket_setting_limits_where_manifests_come_from() -> None:
    assert parse_manifest_uri("s3://allowed/k.jsonl", "allowed").key == "k.jsonl"
    with pytest.raises(SignInLinksError, match="must be in the bucket allowed"):
        parse_manifest_uri("s3://other/k.jsonl", "allowed")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ({"a": 1}, {"a": 1}), ('{"a": [1, 2]}', {"a": [1, 2]})],
)
def test_metadata_is_an_object_or_its_json_text(value: Any, expected: Any) -> None:
    assert parse_metadata(value) == expected


@pytest.mark.parametrize("value", ["[1]", "{not json", 7, ["a"], {"big": "x" * 5000}])
def test_other_metadata_is_invalid(value: Any) -> None:
    with pytest.raises(SignInLinksError) as caught:
        parse_metadata(value)
    assert caught.value.param == "metadata"


# --- Planning -------------------------------------------------------------------------------------


def test_planning_validates_each_user_dedupes_and_derives_ids() -> None:
    request = BatchRequest("b1", expires_in_seconds=120)
    users = [
        {"user_id": "a", "redirect_url": "https://app.example.com/x", "metadata": {"n": 1}},
        {"user_id": "b", "redirect_url": "https://elsewhere.example/"},
        {"user_id": "a", "metadata": {"n": 2}},
        {"user_id": "c", "redirect_url": ""},
        {"user_id": None},
        7,
    ]
    plan = plan_batch(request, users, SETTINGS)
    assert plan.requested == 6
    assert [(e.index, e.request.user_id) for e in plan.entries] == [(0, "a"), (3, "c")]
    first = plan.entries[0]
    assert first.metadata == {"n": 1}
    assert first.request.redirect_url == "https://app.example.com/x"
    assert first.request.expires_in_seconds == 120
    assert first.token_id == token_id_for("b1", "a")
    assert plan.entries[1].request.redirect_url is None  # an empty cell means "absent"
    assert [(d.index, d.user_id, d.token_id) for d in plan.duplicates] == [(2, "a", first.token_id)]
    assert [(f.index, f.user_id, f.code) for f in plan.failures] == [
        (1, "b", "form_param_value_invalid"),
        (4, None, "form_param_missing"),
        (5, None, "form_param_value_invalid"),
    ]


def test_ids_are_deterministic_per_batch_and_user_and_valid_token_ids() -> None:
    token = token_id_for("b1", "user_1")
    assert token == token_id_for("b1", "user_1")
    assert ids.is_id(token, "sit")
    assert len({token, token_id_for("b2", "user_1"), token_id_for("b1", "user_2")}) == 3
    keys = {header_key("b1", -1), header_key("b1", 0), marker_key("b1", -1, 0), marker_key("b1", -1, 1)}
    assert len(keys) == 4
    assert not any(key.startswith("sit_") for key in keys)


def test_the_fingerprint_follows_what_is_asked() -> None:
    request = BatchRequest("b1")
    users = [{"user_id": "a", "metadata": {"x": 1, "y": 2}}]
    same = fingerprint(request, [{"metadata": {"y": 2, "x": 1}, "user_id": "a"}])
    assert fingerprint(request, users) == same
    assert fingerprint(request, [{"user_id": "b"}]) != same
    assert fingerprint(BatchRequest("b1", expires_in_seconds=60), users) != same
    assert fingerprint(BatchRequest("b1", org_id="o"), users) != same


# --- Manifests ------------------------------------------------------------------------------------


def test_csv_manifest_rows_become_user_objects() -> None:
    text = 'User_ID , metadata\r\nu1,"{""a"": 1}"\r\n\r\nu2,\r\n'
    assert parse_csv(text) == [{"user_id": "u1", "metadata": '{"a": 1}'}, {"user_id": "u2", "metadata": None}]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is empty"),
        ("user_id,user_id\nu,u\n", "once"),
        ("name\nu\n", "unknown column"),
        ("user_id\nu,extra\n", "row 2 has 2 cells"),
        ('user_id\n"unterminated\n', "not valid CSV"),
    ],
)
def test_malformed_csv_manifests(text: str, why: str) -> None:
    with pytest.raises(SignInLinksError, match=why):
        parse_csv(text)


def test_jsonl_manifest_lines() -> None:
    assert parse_jsonl('{"user_id": "a"}\n\n  \n{"user_id": "b", "metadata": {}}\n') == [
        {"user_id": "a"},
        {"user_id": "b", "metadata": {}},
    ]
    with pytest.raises(SignInLinksError, match="line 2 is not a JSON object"):
        parse_jsonl('{"user_id": "a"}\n"b"\n')


class FakeS3:
    def __init__(self, body: bytes, length: int | None = None) -> None:
        self.body, self.length = body, length

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"ContentLength": len(self.body) if self.length is None else self.length, "Body": io.BytesIO(self.body)}


def test_a_manifest_larger_than_allowed_is_refused_before_reading() -> None:
    location = parse_manifest_uri("s3://b/k.csv")
    with pytest.raises(SignInLinksError, match="at most 10 are accepted"):
        ManifestReader(FakeS3(b"user_id\nu1\nu2\nu3\n")).read(location, max_bytes=10)
    with pytest.raises(SignInLinksError, match="larger than 10 bytes"):  # a Content-Length that lies
        ManifestReader(FakeS3(b"user_id\nu1\nu2\nu3\n", length=5)).read(location, max_bytes=10)


def test_results_keys() -> None:
    assert results_key("wave 1/é", -1) == "results/wave%201%2F%C3%A9.jsonl"
    assert results_key("w", 2000) == "results/w/chunk-000002000.jsonl"


# --- Store: unprocessed items and keys -------------------------------------------------------------


class FakeDynamoDB:
    """Leaves the last item (or key) of every request unprocessed, ``stubborn`` times per request."""

    def __init__(self, stubborn: int) -> None:
        self.stubborn = stubborn
        self.items: dict[str, dict[str, Any]] = {}
        self.write_calls: list[int] = []
        self.get_calls: list[int] = []
        self._left: dict[str, int] = {}

    def _hold_back(self, key: str) -> bool:
        left = self._left.setdefault(key, self.stubborn)
        self._left[key] = left - 1
        return left > 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        self.write_calls.append(len(requests))
        assert len(requests) <= 25
        *done, last = requests
        for request in done:
            item = request["PutRequest"]["Item"]
            self.items[item["pk"]["S"]] = item
        if self._hold_back(last["PutRequest"]["Item"]["pk"]["S"]):
            return {"UnprocessedItems": {table: [last]}}
        self.items[last["PutRequest"]["Item"]["pk"]["S"]] = last["PutRequest"]["Item"]
        return {"UnprocessedItems": {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.get_calls.append(len(keys))
        assert len(keys) <= 100
        assert request["ConsistentRead"] is True
        *done, last = keys
        found = [self.items[k["pk"]["S"]] for k in done if k["pk"]["S"] in self.items]
        if self._hold_back("get:" + last["pk"]["S"]):
            return {"Responses": {table: found}, "UnprocessedKeys": {table: {**request, "Keys": [last]}}}
        if last["pk"]["S"] in self.items:
            found.append(self.items[last["pk"]["S"]])
        return {"Responses": {table: found}, "UnprocessedKeys": {}}


def item(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


def test_batch_put_sends_25_a_call_and_retries_unprocessed_items_with_growing_jittered_pauses() -> None:
    client = FakeDynamoDB(stubborn=3)
    pauses: list[float] = []
    store = BatchLedger(client, "t", sleep=pauses.append)
    calls = store.batch_put([item(n) for n in range(60)])
    assert sorted(client.items) == sorted(f"k{n}" for n in range(60))
    assert client.write_calls[:2] == [25, 1]
    assert calls == len(client.write_calls) == 3 * 4
    ceilings = [min(store.batch_max_delay, store.batch_base_delay * 2**a) for a in (1, 2, 3)] * 3
    assert len(pauses) == 9
    assert all(0 <= p <= c for p, c in zip(pauses, ceilings, strict=True))


def test_batch_put_gives_up_as_unavailable_after_its_attempts() -> None:
    store = BatchLedger(FakeDynamoDB(stubborn=100), "t", sleep=lambda _: None)
    with pytest.raises(SignInLinksError) as caught:
        store.batch_put([item(n) for n in range(3)])
    assert caught.value.code.wire_code == "service_unavailable"


def test_batch_get_reads_100_keys_a_call_and_retries_unprocessed_keys() -> None:
    client = FakeDynamoDB(stubborn=0)
    store = BatchLedger(client, "t", sleep=lambda _: None)
    store.batch_put([item(n) for n in range(0, 250, 2)])
    client.stubborn = 2
    found = store.batch_get([f"k{n}" for n in range(250)] + ["k0"])
    assert sorted(found) == sorted(f"k{n}" for n in range(0, 250, 2))
    assert client.get_calls == [100, 1, 1, 100, 1, 1, 50, 1, 1]
