"""Batch minting through the real mint_link handler on moto: EventBridge events (inline users and
S3 manifests), redelivery, injected partial failures and crashes, and the Step Functions chunk path.

Published events are captured the way a consumer would see them: an EventBridge rule on the bus
sends every ``signin-links`` event to an SQS queue, which the tests drain.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError

from signin_links.batch import BatchIncomplete, BatchRejected
from signin_links.batch.plan import token_id_for
from tests.conftest import REGION, Stack, load_event, load_function
from tests.integration.conftest import MANIFEST_BUCKET, RESULTS_BUCKET, Batches, Wrapped


def users(count: int, prefix: str = "user_") -> list[dict[str, Any]]:
    return [{"user_id": f"{prefix}{n:05d}"} for n in range(count)]


def ticket_key(stack: Stack) -> dict[str, Any]:
    """The public keys that verify the stack's sign-in tokens (what the accept reads), by kid."""
    from signin_links.keyring import parse_keyring

    raw = stack.secretsmanager.get_secret_value(SecretId=stack.env["TICKET_VERIFICATION_KEYRING_SECRET_ID"])[
        "SecretString"
    ]
    return {key.kid: key.verifier for key in parse_keyring(raw).keys}


def claims_of(url: str, keys: dict[str, Any]) -> dict[str, Any]:
    token = url.split("token=", 1)[1]
    kid = jwt.get_unverified_header(token)["kid"]
    decoded: dict[str, Any] = jwt.decode(token, keys[kid], algorithms=["EdDSA"])
    return decoded


# --- The contract, end to end -----------------------------------------------------------------


def test_the_example_event_mints_each_user_once_and_announces_each(batches: Batches) -> None:
    event = load_event("mint_batch.json")
    summary = batches.handler()(event, batches.context)
    detail = event["detail"]
    batch_id = detail["batch_id"]
    assert summary["status"] == "completed"
    assert summary["counts"] == {"requested": 3, "minted": 3, "already_minted": 0, "failed": 0, "duplicates": 0}
    assert summary["failures"] == []
    assert "url" not in json.dumps(summary)

    tokens = {item["user_id"]["S"]: item for item in batches.tokens(batch_id)}
    assert set(tokens) == {user["user_id"] for user in detail["users"]}
    for user_id, item in tokens.items():
        assert item["pk"]["S"] == token_id_for(batch_id, user_id)
        assert item["status"]["S"] == "pending"
        assert int(item["eis"]["N"]) == 604800

    minted = {m["user_id"]: m for m in batches.minted()}
    assert set(minted) == set(tokens)
    keys = ticket_key(batches.stack)
    for user in detail["users"]:
        message = minted[user["user_id"]]
        assert set(message) == {"batch_id", "user_id", "sign_in_token_id", "url", "expires_at", "metadata"}
        assert message["batch_id"] == batch_id
        assert message["metadata"] == user.get("metadata")
        assert message["sign_in_token_id"] == tokens[user["user_id"]]["pk"]["S"]
        assert message["url"].startswith("https://links.example.com/accept-token?token=")
        claims = claims_of(message["url"], keys)
        assert claims["sid"] == message["sign_in_token_id"]
        assert claims["exp"] * 1000 == message["expires_at"]
        assert claims.get("rdr") == user.get("redirect_url")
        token = message["url"].split("token=", 1)[1]
        assert token not in json.dumps(tokens[user["user_id"]])  # the token itself is never stored

    (published,) = batches.summaries()
    assert published == summary


def minted_metric(capsys: pytest.CaptureFixture[str]) -> list[float]:
    """The BatchSignInTokensMinted values the invocations flushed (EMF lines on stdout)."""
    values: list[float] = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            values.extend(json.loads(line).get("BatchSignInTokensMinted", []))
    return values


def test_a_redelivered_event_mints_and_announces_nothing_more(
    batches: Batches, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = {"batch_id": "wave-7", "user_ids": [f"user_{n}" for n in range(250)]}
    first = batches.deliver(detail)
    assert first["counts"]["minted"] == 250
    items = {item["pk"]["S"]: item for item in batches.tokens("wave-7")}
    assert len(items) == 250
    assert len(batches.minted()) == 250
    assert minted_metric(capsys) == [250]

    # Within the idempotency window Powertools answers with the stored summary.
    assert batches.deliver(detail) == first
    # Later (records expired), the completed header answers: nothing is published again.
    batches.forget_idempotency()
    again = batches.deliver(detail)
    assert again["redelivery"] is True
    assert again["counts"] == first["counts"]

    assert {item["pk"]["S"]: item for item in batches.tokens("wave-7")} == items  # not even re-put
    assert len(batches.minted()) == 250
    assert len(batches.summaries()) == 1
    assert minted_metric(capsys) == []  # and the links are not counted twice


def test_invalid_users_are_reported_and_the_others_minted(batches: Batches) -> None:
    detail = {
        "batch_id": "mixed",
        "users": [
            {"user_id": "good_1", "redirect_url": "https://app.example.com/start"},
            {"user_id": ""},
            {"user_id": "bad\u0007id"},
            {"user_id": "evil", "redirect_url": "https://evil.example/steal"},
            {"user_id": "meta", "metadata": ["not", "an", "object"]},
            {"user_id": "extra", "favourite_colour": "blue"},
            "user_as_a_string",
            {"user_id": "good_2", "metadata": '{"plan": "pro"}'},
            {"user_id": "good_1"},  # a duplicate: minted once (the first one wins)
            {"user_id": "u" * 257},
        ],
    }
    summary = batches.deliver(detail)
    assert summary["status"] == "completed"
    assert summary["counts"] == {"requested": 10, "minted": 2, "already_minted": 0, "failed": 7, "duplicates": 1}
    failures = {f["index"]: f for f in summary["failures"]}
    assert sorted(failures) == [1, 2, 3, 4, 5, 6, 9]
    assert failures[1]["code"] == failures[2]["code"] == failures[9]["code"] == "form_param_value_invalid"
    assert failures[3]["code"] == "form_param_value_invalid"
    assert "redirect_url" in failures[3]["reason"]
    assert failures[4]["code"] == "form_param_value_invalid"
    assert "metadata" in failures[4]["reason"]
    assert failures[5]["code"] == "form_param_unknown"
    assert "favourite_colour" in failures[5]["reason"]
    assert failures[6]["user_id"] is None
    assert failures[3]["user_id"] == "evil"
    assert len(failures[9]["user_id"]) == 256  # bounded in the summary
    assert sorted(item["user_id"]["S"] for item in batches.tokens("mixed")) == ["good_1", "good_2"]
    minted = {m["user_id"]: m for m in batches.minted()}
    assert set(minted) == {"good_1", "good_2"}
    assert minted["good_2"]["metadata"] == {"plan": "pro"}
    assert claims_of(minted["good_1"]["url"], ticket_key(batches.stack))["rdr"] == "https://app.example.com/start"


def test_the_failures_list_of_the_summary_is_bounded(batches: Batches) -> None:
    detail = {"batch_id": "many-bad", "users": [{"user_id": ""} for _ in range(150)] + users(3)}
    summary = batches.deliver(detail)
    assert summary["counts"]["failed"] == 150
    assert summary["counts"]["minted"] == 3
    assert len(summary["failures"]) == 100
    assert summary["failures_truncated"] == 50
    assert [f["index"] for f in summary["failures"]] == list(range(100))


# --- Manifests ------------------------------------------------------------------------------------

CSV_MANIFEST = (
    "user_id,redirect_url,metadata\r\n"
    'user_a,https://app.example.com/cart,"{""cart"": 3}"\r\n'
    "user_b,,\r\n"
    "user_c,https://evil.example/,\r\n"
    "\r\n"
    "user_a,,\r\n"
)
JSONL_MANIFEST = (
    '{"user_id": "user_a", "redirect_url": "https://app.example.com/cart", "metadata": {"cart": 3}}\n'
    '{"user_id": "user_b"}\n'
    "\n"
    '{"user_id": "user_c", "redirect_url": "https://evil.example/"}\n'
    '{"user_id": "user_a"}\n'
)


@pytest.mark.parametrize(("key", "body"), [("m/cart.csv", "\ufeff" + CSV_MANIFEST), ("m/cart.jsonl", JSONL_MANIFEST)])
def test_a_manifest_batch_mints_and_writes_a_results_object(batches: Batches, key: str, body: str) -> None:
    detail = {"batch_id": f"cart-{key[-3:]}", "manifest": batches.put_manifest(key, body), "expires_in_seconds": 3600}
    summary = batches.deliver(detail)
    assert summary["counts"] == {"requested": 4, "minted": 2, "already_minted": 0, "failed": 1, "duplicates": 1}
    assert summary["failures"][0]["index"] == 2
    assert summary["failures"][0]["user_id"] == "user_c"
    suffix = key.rsplit(".", 1)[1]
    assert summary["results"] == f"s3://{RESULTS_BUCKET}/results/cart-{suffix[-3:]}.jsonl"
    lines = batches.results(summary["results"])
    assert [(line["index"], line["user_id"], line["status"]) for line in lines] == [
        (0, "user_a", "minted"),
        (1, "user_b", "minted"),
        (2, "user_c", "failed"),
        (3, "user_a", "duplicate"),
    ]
    minted = {m["user_id"]: m for m in batches.minted()}
    assert lines[0]["url"] == minted["user_a"]["url"]
    assert lines[0]["metadata"] == {"cart": 3}
    assert lines[3]["sign_in_token_id"] == lines[0]["sign_in_token_id"]
    assert claims_of(lines[1]["url"], ticket_key(batches.stack))["eis"] == 3600
    head = batches.s3.head_object(Bucket=RESULTS_BUCKET, Key=summary["results"].split("/", 3)[3])
    assert head["ServerSideEncryption"] == "AES256"


def test_a_redelivered_manifest_batch_lists_every_url_again(batches: Batches) -> None:
    detail = {"batch_id": "cart-again", "manifest": batches.put_manifest("m/again.csv", CSV_MANIFEST)}
    first = batches.deliver(detail)
    lines = batches.results(first["results"])
    batches.s3.delete_object(Bucket=RESULTS_BUCKET, Key=first["results"].split("/", 3)[3])
    # a crash before the header was marked completed: the re-run rewrites the full results
    batches.reopen("cart-again")
    batches.forget_idempotency()
    again = batches.deliver(detail)
    assert again["counts"]["minted"] == 0
    assert again["counts"]["already_minted"] == 2
    relisted = batches.results(again["results"])
    assert [line["status"] for line in relisted] == ["already_minted", "already_minted", "failed", "duplicate"]
    assert [line.get("url") for line in relisted] == [line.get("url") for line in lines]  # same key: same token
    assert len(batches.minted()) == 2


@pytest.mark.parametrize(
    ("key", "body", "why"),
    [
        ("m/missing.csv", None, "could not be read (NoSuchKey)"),
        ("m/no-header.csv", "", "is empty"),
        ("m/no-user-column.csv", "id,redirect_url\r\nu1,\r\n", "user_id"),
        ("m/unknown-column.csv", "user_id,email\r\nu1,a@b.c\r\n", "unknown column"),
        ("m/ragged.csv", "user_id,metadata\r\nu1\r\nu2,{}\r\n", "row 2 has 1 cells"),
        ("m/bad.jsonl", '{"user_id": "u1"}\n{"user_id": \n', "line 2 is not valid JSON"),
        ("m/array.jsonl", '{"user_id": "u1"}\n["u2"]\n', "line 2 is not a JSON object"),
        ("m/latin1.csv", "user_id\r\nJos\xe9\r\n".encode("latin-1"), "not UTF-8"),
        ("m/users.txt", "user_id\r\nu1\r\n", ".csv or .jsonl"),
        ("m/empty.jsonl", "\n\n", "holds no users"),
    ],
)
def test_a_malformed_manifest_is_rejected_and_mints_nothing(
    batches: Batches, key: str, body: str | bytes | None, why: str
) -> None:
    uri = batches.put_manifest(key, body) if body is not None else f"s3://{MANIFEST_BUCKET}/{key}"
    with pytest.raises(BatchRejected) as caught:
        batches.deliver({"batch_id": "broken", "manifest": uri})
    assert caught.value.code.wire_code == "form_param_value_invalid"
    assert caught.value.param == "manifest"
    assert why in caught.value.long_message
    assert batches.all_items("broken") == []
    assert batches.events() == []


def test_a_manifest_outside_the_configured_bucket_is_rejected(batches: Batches) -> None:
    batches.set_env(MANIFEST_BUCKET=MANIFEST_BUCKET)
    uri = batches.put_manifest("m/ok.csv", "user_id\r\nu1\r\n", bucket=RESULTS_BUCKET)
    with pytest.raises(BatchRejected, match=f"must be in the bucket {MANIFEST_BUCKET}"):
        batches.deliver({"batch_id": "elsewhere", "manifest": uri})
    assert batches.all_items("elsewhere") == []


@pytest.mark.parametrize(
    ("detail", "param", "code"),
    [
        ({"users": [{"user_id": "u"}]}, "batch_id", "form_param_missing"),
        ({"batch_id": "", "users": [{"user_id": "u"}]}, "batch_id", "form_param_value_invalid"),
        ({"batch_id": "a\nb", "users": [{"user_id": "u"}]}, "batch_id", "form_param_value_invalid"),
        ({"batch_id": "b" * 129, "users": [{"user_id": "u"}]}, "batch_id", "form_param_value_invalid"),
        ({"batch_id": 7, "users": [{"user_id": "u"}]}, "batch_id", "form_param_value_invalid"),
        ({"batch_id": "x"}, "users", "form_param_missing"),
        ({"batch_id": "x", "users": []}, "users", "form_param_value_invalid"),
        ({"batch_id": "x", "users": {"user_id": "u"}}, "users", "form_param_value_invalid"),
        ({"batch_id": "x", "user_ids": "u1,u2"}, "user_ids", "form_param_value_invalid"),
        (
            {"batch_id": "x", "users": [{"user_id": "u"}], "manifest": "s3://b/k.csv"},
            "manifest",
            "form_param_value_invalid",
        ),
        ({"batch_id": "x", "manifest": "https://b/k.csv"}, "manifest", "form_param_value_invalid"),
        (
            {"batch_id": "x", "user_ids": ["u"], "expires_in_seconds": 0},
            "expires_in_seconds",
            "form_param_value_invalid",
        ),
        (
            {"batch_id": "x", "user_ids": ["u"], "expires_in_seconds": "60"},
            "expires_in_seconds",
            "form_param_value_invalid",
        ),
        ({"batch_id": "x", "user_ids": ["u"], "org_id": 5}, "org_id", "form_param_value_invalid"),
        ({"batch_id": "x", "user_ids": ["u"], "priority": "high"}, "priority", "form_param_unknown"),
        ({"batch_id": "x", "user_ids": ["u"], "chunk_index": 1}, "chunk_index", "form_param_unknown"),
    ],
)
def test_a_malformed_detail_is_rejected_and_mints_nothing(
    batches: Batches, detail: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(BatchRejected) as caught:
        batches.deliver(detail)
    assert (caught.value.param, caught.value.code.wire_code) == (param, code)
    assert batches.tokens("x") == []
    assert batches.events() == []


def test_an_event_of_another_type_or_source_is_rejected(batches: Batches) -> None:
    for field_name, value in (("detail-type", "SomethingElse"), ("source", "someone.else")):
        event = batches.event({"batch_id": "x", "user_ids": ["u"]})
        event[field_name] = value
        with pytest.raises(BatchRejected, match="MintSignInLinks"):
            batches.handler()(event, batches.context)
    event = batches.event({})
    event["detail"] = ["not", "an", "object"]
    with pytest.raises(BatchRejected, match="detail must be a JSON object"):
        batches.handler()(event, batches.context)
    assert batches.tokens("x") == []


def test_more_users_than_one_invocation_takes_is_rejected(batches: Batches) -> None:
    batches.set_env(BATCH_MAX_USERS="5")
    with pytest.raises(BatchRejected, match="at most 5") as caught:
        batches.deliver({"batch_id": "big", "users": users(6)})
    assert caught.value.param == "users"
    assert "state machine" in caught.value.long_message
    uri = batches.put_manifest("m/big.csv", "user_id\r\n" + "".join(f"u{n}\r\n" for n in range(6)))
    with pytest.raises(BatchRejected, match="at most 5"):
        batches.deliver({"batch_id": "big", "manifest": uri})
    assert batches.all_items("big") == []


def test_a_batch_id_reused_for_other_users_is_rejected(batches: Batches) -> None:
    """Past the idempotency window (its records expired): the batch header's fingerprint answers."""
    batches.deliver({"batch_id": "once", "user_ids": ["a", "b"]})
    batches.forget_idempotency()
    with pytest.raises(BatchRejected, match="already used") as caught:
        batches.deliver({"batch_id": "once", "user_ids": ["a", "c"]})
    assert caught.value.param == "batch_id"
    assert sorted(i["user_id"]["S"] for i in batches.tokens("once")) == ["a", "b"]
    assert len(batches.minted()) == 2


# Within the idempotency window (nothing cleared: what a user meets when re-sending a batch_id a
# minute later), a replay of the first batch's summary would exit 0 and mint nothing for the new
# users: the stored record's payload hash refuses a batch_id reused with another payload.
@pytest.mark.parametrize(
    "second",
    [
        {"user_ids": ["a", "c"]},
        {"user_ids": ["a", "b", "c"]},
        {"users": [{"user_id": "a"}, {"user_id": "b", "metadata": {"plan": "pro"}}]},
        {"user_ids": ["a", "b"], "expires_in_seconds": 60},
        {"user_ids": ["a", "b"], "org_id": "org_other"},
    ],
)
def test_a_batch_id_reused_within_the_idempotency_window_is_rejected(batches: Batches, second: dict[str, Any]) -> None:
    first = batches.deliver({"batch_id": "again", "user_ids": ["a", "b"]})
    with pytest.raises(BatchRejected, match="already used") as caught:
        batches.deliver({"batch_id": "again", **second})
    assert caught.value.param == "batch_id"
    assert caught.value.code.wire_code == "form_param_value_invalid"
    assert sorted(i["user_id"]["S"] for i in batches.tokens("again")) == ["a", "b"]
    # The identical redelivery is still answered from the stored record: nothing announced twice.
    assert batches.deliver({"batch_id": "again", "user_ids": ["a", "b"]}) == first
    assert len(batches.minted()) == 2
    assert len(batches.summaries()) == 1


def test_a_manifest_rewritten_under_a_reused_batch_id_is_rejected(batches: Batches) -> None:
    """A manifest batch's fingerprint is its content, read before the idempotency check."""
    uri = batches.put_manifest("m/wave.csv", "user_id\r\nu1\r\nu2\r\n")
    detail = {"batch_id": "wave", "manifest": uri}
    first = batches.deliver(detail)
    assert first["counts"]["minted"] == 2
    assert batches.deliver(detail) == first  # the same manifest: the stored summary
    batches.put_manifest("m/wave.csv", "user_id\r\nu1\r\nu3\r\n")
    with pytest.raises(BatchRejected, match="already used"):
        batches.deliver(detail)
    assert sorted(i["user_id"]["S"] for i in batches.tokens("wave")) == ["u1", "u2"]
    assert len(batches.minted()) == 2


def test_a_chunk_reused_for_other_users_is_rejected(batches: Batches) -> None:
    base = {"batch_id": "chunky", "chunk_index": 0, "expires_in_seconds": None, "org_id": None}
    first = batches.invoke({**base, "users": [{"user_id": "u1"}]})
    assert batches.invoke({**base, "users": [{"user_id": "u1"}]}) == first
    with pytest.raises(BatchRejected, match="already used"):
        batches.invoke({**base, "users": [{"user_id": "u2"}]})
    assert [i["user_id"]["S"] for i in batches.tokens("chunky")] == ["u1"]


def test_a_bad_redirect_is_that_users_failure_and_the_batch_goes_on(batches: Batches) -> None:
    """A malformed redirect fails that user alone: no ValueError escapes the invocation (which would
    retry the whole batch, then send it to the DLQ)."""
    bad = ["https://[x/", "https://app.example.com]/", "http://[::1", "https://app.example.com\uff0fevil.com/"]
    detail = {
        "batch_id": "redirects",
        "users": [
            {"user_id": "first", "redirect_url": "https://app.example.com/start"},
            *({"user_id": f"bad_{n}", "redirect_url": url} for n, url in enumerate(bad)),
            {"user_id": "cafe", "redirect_url": "https://app.example.com/café"},
        ],
    }
    summary = batches.deliver(detail)
    assert summary["counts"] == {"requested": 6, "minted": 2, "already_minted": 0, "failed": 4, "duplicates": 0}
    assert [(f["index"], f["user_id"], f["code"]) for f in summary["failures"]] == [
        (n + 1, f"bad_{n}", "form_param_value_invalid") for n in range(4)
    ]
    assert all("redirect_url" in f["reason"] for f in summary["failures"])
    minted = {m["user_id"]: m for m in batches.minted()}
    assert set(minted) == {"first", "cafe"}
    assert claims_of(minted["cafe"]["url"], ticket_key(batches.stack))["rdr"] == "https://app.example.com/caf%C3%A9"


def test_batches_need_an_accept_base_url(batches: Batches) -> None:
    from signin_links.config import ConfigError

    batches.set_env(ACCEPT_BASE_URL="", ACCEPT_BASE_URL_PARAMETER="")
    with pytest.raises(ConfigError, match="ACCEPT_BASE_URL"):
        batches.deliver({"batch_id": "nowhere", "user_ids": ["a"]})
    assert batches.all_items("nowhere") == []


def test_a_first_deploy_batch_links_to_the_stacks_published_url(batches: Batches) -> None:
    """No AcceptBaseUrl, no custom domain: the template publishes the API's own URL in an SSM
    parameter (it cannot be an environment variable: the API names the functions)."""
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/signin-links-test/accept-base-url", Value="https://abc123.execute-api.x/", Type="String")
    batches.set_env(ACCEPT_BASE_URL="", ACCEPT_BASE_URL_PARAMETER="/signin-links-test/accept-base-url")
    summary = batches.deliver({"batch_id": "first-deploy", "user_ids": ["a", "b"]})
    assert summary["counts"]["minted"] == 2
    urls = [detail["url"] for detail in batches.minted()]
    assert len(urls) == 2
    assert all(url.startswith("https://abc123.execute-api.x/accept-token?token=") for url in urls)


def test_an_unreadable_published_url_fails_the_batch_for_a_retry_before_any_write(batches: Batches) -> None:
    from signin_links.errors import ErrorCode, SignInLinksError

    batches.set_env(ACCEPT_BASE_URL="", ACCEPT_BASE_URL_PARAMETER="/signin-links-test/missing")
    with pytest.raises(SignInLinksError) as caught:
        batches.deliver({"batch_id": "no-url-yet", "user_ids": ["a"]})
    assert caught.value.code is ErrorCode.SERVICE_UNAVAILABLE  # retried by Lambda, then the DLQ
    assert batches.all_items("no-url-yet") == []


# --- Partial failures and crashes ---------------------------------------------------------------


def test_unprocessed_items_and_keys_are_retried_until_written(batches: Batches) -> None:
    calls: Counter[str] = Counter()

    def flaky(client: Any) -> Any:
        def batch_write_item(**kwargs: Any) -> dict[str, Any]:
            calls["write"] += 1
            ((table, requests),) = kwargs["RequestItems"].items()
            if calls["write"] % 2 and len(requests) > 1:  # every other call: half left unprocessed
                half = len(requests) // 2
                client.batch_write_item(RequestItems={table: requests[:half]})
                return {"UnprocessedItems": {table: requests[half:]}}
            response: dict[str, Any] = client.batch_write_item(**kwargs)
            return response

        def batch_get_item(**kwargs: Any) -> dict[str, Any]:
            calls["get"] += 1
            ((table, request),) = kwargs["RequestItems"].items()
            keys = request["Keys"]
            if calls["get"] % 2 and len(keys) > 1:
                half = len(keys) // 2
                response = client.batch_get_item(RequestItems={table: {**request, "Keys": keys[:half]}})
                response["UnprocessedKeys"] = {table: {**request, "Keys": keys[half:]}}
                return dict(response)
            result: dict[str, Any] = client.batch_get_item(**kwargs)
            return result

        return Wrapped(client, batch_write_item=batch_write_item, batch_get_item=batch_get_item)

    batches.use_clients(dynamodb=flaky)
    batches.monkeypatch.setattr(load_function("mint_link").batch_minter().ledger, "batch_base_delay", 0)  # no waits
    summary = batches.deliver({"batch_id": "flaky", "users": users(260)})
    assert summary["counts"]["minted"] == 260
    assert summary["status"] == "completed"
    assert len(batches.tokens("flaky")) == 260
    assert len(batches.minted()) == 260
    assert calls["write"] > 11  # 11 calls of 25 without failures; the halves were retried

    # A re-run reads (BatchGetItem, also half-unprocessed) and finds every token: nothing is re-put.
    batches.reopen("flaky")
    batches.forget_idempotency()
    writes = calls["write"]
    again = batches.deliver({"batch_id": "flaky", "users": users(260)})
    assert again["counts"] == {**summary["counts"], "minted": 0, "already_minted": 260}
    assert calls["write"] == writes
    assert calls["get"] > 3
    assert len(batches.minted()) == 260


def test_failed_event_entries_are_retried_and_permanent_failures_reported(batches: Batches) -> None:
    attempts: Counter[str] = Counter()

    def flaky(client: Any) -> Any:
        def put_events(**kwargs: Any) -> dict[str, Any]:
            entries = kwargs["Entries"]
            results: list[dict[str, Any]] = []
            forward = []
            for entry in entries:
                user = json.loads(entry["Detail"]).get("user_id", "")
                attempts[user] += 1
                if user == "user_00007" or (user.endswith("3") and attempts[user] == 1):
                    results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
                else:
                    forward.append(entry)
                    results.append({})
            if forward:
                sent = client.put_events(Entries=forward)["Entries"]
                ids = iter(sent)
                results = [r if r else next(ids) for r in results]
            failed = sum(1 for r in results if r.get("ErrorCode"))
            return {"FailedEntryCount": failed, "Entries": results}

        return Wrapped(client, put_events=put_events)

    batches.use_clients(events=flaky)
    batches.monkeypatch.setattr(load_function("mint_link").batch_minter().publisher, "base_delay", 0)  # no waits
    detail = {"batch_id": "lossy", "users": users(40)}
    summary = batches.deliver(detail)
    assert summary["status"] == "incomplete"
    assert summary["counts"] == {"requested": 40, "minted": 39, "already_minted": 0, "failed": 1, "duplicates": 0}
    assert summary["failures"] == [
        {
            "index": 7,
            "user_id": "user_00007",
            "code": "event_delivery_failed",
            "reason": "PutEvents entry failed: InternalFailure",
        }
    ]
    assert attempts["user_00003"] == 2
    assert attempts["user_00007"] == 5  # retried, then given up
    minted = Counter(m["user_id"] for m in batches.minted())
    assert len(minted) == 39
    assert set(minted.values()) == {1}
    assert "user_00007" not in minted
    assert len(batches.tokens("lossy")) == 40  # the token exists; only its announcement failed

    # The header is not completed, so a redelivery announces the one that failed, and only it; at
    # once, within the idempotency window (nothing cleared): an incomplete run leaves no idempotency
    # record that would replay its summary instead.
    batches.healthy()
    again = batches.deliver(detail)
    assert again["status"] == "completed"
    assert again["counts"] == {"requested": 40, "minted": 1, "already_minted": 39, "failed": 0, "duplicates": 0}
    minted = Counter(m["user_id"] for m in batches.minted())
    assert len(minted) == 40
    assert set(minted.values()) == {1}
    assert len(batches.tokens("lossy")) == 40


@pytest.mark.parametrize("where", ["BatchWriteItem", "PutEvents"])
def test_a_batch_that_died_half_way_finishes_on_rerun_with_every_user_once(batches: Batches, where: str) -> None:
    detail = {"batch_id": f"crash-{where}", "users": users(1000)}
    doomed = {f"user_{n:05d}" for n in range(500, 1000)}  # steps 5..9 die; steps 0..4 complete

    def dies_on_doomed_users(client: Any) -> Any:
        def error() -> ClientError:
            return ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, where)

        if where == "BatchWriteItem":

            def batch_write_item(**kwargs: Any) -> dict[str, Any]:
                ((_, requests),) = kwargs["RequestItems"].items()
                if any(r["PutRequest"]["Item"]["user_id"]["S"] in doomed for r in requests):
                    raise error()
                result: dict[str, Any] = client.batch_write_item(**kwargs)
                return result

            return Wrapped(client, batch_write_item=batch_write_item)

        def put_events(**kwargs: Any) -> dict[str, Any]:
            if any(json.loads(e["Detail"]).get("user_id") in doomed for e in kwargs["Entries"]):
                raise error()
            result: dict[str, Any] = client.put_events(**kwargs)
            return result

        return Wrapped(client, put_events=put_events)

    batches.use_clients(**{"dynamodb" if where == "BatchWriteItem" else "events": dies_on_doomed_users})
    with pytest.raises(Exception) as caught:
        batches.deliver(detail)
    assert caught.value.code.wire_code == "service_unavailable"  # type: ignore[attr-defined]
    first_run = Counter(m["user_id"] for m in batches.minted())
    assert set(first_run) == {f"user_{n:05d}" for n in range(500)}
    # PutEvents died after the tokens were written; BatchWriteItem died before.
    assert len(batches.tokens(detail["batch_id"])) == (1000 if where == "PutEvents" else 500)

    batches.healthy()  # the idempotency record was removed when the invocation failed: no waiting
    summary = batches.deliver(detail)
    assert summary["status"] == "completed"
    assert summary["counts"] == {"requested": 1000, "minted": 500, "already_minted": 500, "failed": 0, "duplicates": 0}
    everyone = Counter(m["user_id"] for m in batches.minted())
    assert len(everyone) == 1000
    assert set(everyone.values()) == {1}
    tokens = batches.tokens(detail["batch_id"])
    assert len(tokens) == 1000
    assert {t["status"]["S"] for t in tokens} == {"pending"}
    assert len(batches.summaries()) == 1


def test_an_invocation_short_of_time_stops_and_the_retry_resumes(batches: Batches) -> None:
    class Running:
        """A Lambda context whose clock runs out after a number of questions."""

        def __init__(self, answers: int) -> None:
            self.answers = answers
            vars(self).update({k: getattr(batches.context, k) for k in dir(batches.context) if not k.startswith("_")})
            self.get_remaining_time_in_millis = self._remaining

        def _remaining(self) -> int:
            self.answers -= 1
            return 60_000 if self.answers >= 0 else 5_000

    batches.set_env(BATCH_CONCURRENCY="1")  # steps in order, so "three steps ran" is exact
    detail = {"batch_id": "slow", "users": users(700)}
    with pytest.raises(BatchIncomplete):
        batches.deliver(detail, context=Running(answers=3))
    done = len(batches.minted())
    assert 0 < done < 700
    assert done % 100 == 0  # whole steps ran, then the rest were left
    assert len(batches.tokens("slow")) == done
    summary = batches.deliver(detail)
    assert summary["counts"] == {
        "requested": 700,
        "minted": 700 - done,
        "already_minted": done,
        "failed": 0,
        "duplicates": 0,
    }
    everyone = Counter(m["user_id"] for m in batches.minted())
    assert len(everyone) == 700
    assert set(everyone.values()) == {1}


def test_a_second_delivery_while_the_first_runs_is_refused(batches: Batches) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    detail = {"batch_id": "twice-at-once", "users": users(30)}
    refused: list[Exception] = []

    def meddling(client: Any) -> Any:
        def put_events(**kwargs: Any) -> dict[str, Any]:
            if not refused:  # the same event delivered again while the first delivery is running
                try:
                    batches.deliver(detail)
                except IdempotencyAlreadyInProgressError as exc:
                    refused.append(exc)
            result: dict[str, Any] = client.put_events(**kwargs)
            return result

        return Wrapped(client, put_events=put_events)

    batches.use_clients(events=meddling)
    batches.set_env(BATCH_CONCURRENCY="1")
    summary = batches.deliver(detail)
    assert len(refused) == 1
    assert summary["counts"]["minted"] == 30
    assert len(batches.minted()) == 30


def test_a_reused_batch_id_arriving_while_the_first_runs_is_rejected(batches: Batches) -> None:
    """Not "in progress" (which Lambda retries, and which then met the first batch's stored
    summary): rejected at once, whatever state the first delivery's record is in."""
    detail = {"batch_id": "overlap", "users": users(30)}
    outcomes: list[Exception] = []

    def meddling(client: Any) -> Any:
        def put_events(**kwargs: Any) -> dict[str, Any]:
            if not outcomes:  # another request under the same batch_id, while the first is running
                try:
                    batches.deliver({"batch_id": "overlap", "users": users(30, prefix="other_")})
                except Exception as exc:
                    outcomes.append(exc)
            result: dict[str, Any] = client.put_events(**kwargs)
            return result

        return Wrapped(client, put_events=put_events)

    batches.use_clients(events=meddling)
    batches.set_env(BATCH_CONCURRENCY="1")
    summary = batches.deliver(detail)
    assert len(outcomes) == 1, outcomes
    assert isinstance(outcomes[0], BatchRejected), outcomes
    assert "already used" in str(outcomes[0])
    assert summary["counts"]["minted"] == 30
    assert len(batches.tokens("overlap")) == 30


# --- The Step Functions path (chunks, then a summary) --------------------------------------------


def test_chunks_and_the_final_summary_through_the_handler(batches: Batches) -> None:
    rows = [{"user_id": f"u{n}", "redirect_url": "", "metadata": ""} for n in range(5)]
    rows.append({"user_id": "u1", "redirect_url": "", "metadata": '{"again": true}'})  # in both chunks
    rows.append({"user_id": "", "redirect_url": "", "metadata": ""})
    base = {"batch_id": "distributed", "expires_in_seconds": None, "org_id": None}
    first = batches.invoke({**base, "chunk_index": 0, "users": rows[:4]})
    second = batches.invoke({**base, "chunk_index": 4, "users": rows[4:]})
    assert first["counts"] == {"requested": 4, "minted": 4, "already_minted": 0, "failed": 0, "duplicates": 0}
    assert second["counts"] == {"requested": 3, "minted": 1, "already_minted": 1, "failed": 1, "duplicates": 0}
    assert first["chunk_index"] == 0
    assert first["results"].endswith("/results/distributed/chunk-000000000.jsonl")
    lines = batches.results(second["results"])
    assert [line["status"] for line in lines] == ["minted", "already_minted", "failed"]
    assert len(batches.tokens("distributed")) == 5
    assert Counter(m["user_id"] for m in batches.minted()) == Counter({f"u{n}": 1 for n in range(5)})
    assert batches.summaries() == []  # chunks publish no batch summary

    # A retried chunk (the state machine's Retry) changes nothing: within the idempotency window
    # (the stored summary), and later (the completed header).
    assert batches.invoke({**base, "chunk_index": 4, "users": rows[4:]}) == second
    assert len(batches.minted()) == 5
    batches.forget_idempotency()
    retried = batches.invoke({**base, "chunk_index": 4, "users": rows[4:]})
    assert retried["redelivery"] is True
    assert len(batches.minted()) == 5

    trimmed = [{"status": c["status"], "counts": c["counts"], "results": c["results"]} for c in (first, second)]
    summary = batches.invoke({"batch_id": "distributed", "chunks": trimmed})
    assert summary["counts"] == {"requested": 7, "minted": 5, "already_minted": 1, "failed": 1, "duplicates": 0}
    assert summary["status"] == "completed"
    assert summary["mode"] == "distributed"
    assert summary["chunks"] == 2
    assert summary["results"] == f"s3://{RESULTS_BUCKET}/results/distributed/"
    assert batches.summaries() == [summary]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"batch_id": "d", "users": [{"user_id": "u"}]}, "chunk_index"),
        ({"batch_id": "d", "chunk_index": -1, "users": [{"user_id": "u"}]}, "chunk_index"),
        ({"batch_id": "d", "chunk_index": "3", "users": [{"user_id": "u"}]}, "chunk_index"),
        ({"batch_id": "d", "chunk_index": 0, "manifest": "s3://b/k.csv"}, "manifest"),
        ({"batch_id": "d", "chunks": [{"counts": {"minted": "7"}}]}, "chunks"),
        ({"batch_id": "d", "chunks": "all"}, "chunks"),
    ],
)
def test_malformed_chunk_payloads_are_rejected(batches: Batches, payload: dict[str, Any], param: str) -> None:
    with pytest.raises(BatchRejected) as caught:
        batches.invoke(payload)
    assert caught.value.param == param
    assert batches.all_items("d") == []
    assert batches.events() == []


def test_http_events_still_reach_the_api(batches: Batches) -> None:
    event = load_event("create_sign_in_token.json")
    event["body"] = json.dumps({"user_id": "user_http"})
    response = batches.handler()(event, batches.context)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["user_id"] == "user_http"
