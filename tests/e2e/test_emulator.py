"""The local stack itself: atomic conditional writes, resources and environments read from the template,
payload 2.0 events as API Gateway builds them, ``local.invoke``, and a clean stop."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.apigw import HttpRequest, Router, http_event, http_response
from local.emulator import SerialisedApp
from local.intrinsics import LOCAL_DEPLOY, Resolver, TemplateError, parameter_values
from local.secret_values import empty_keyring_kind, generate_password, localise_secret, secret_value
from local.template import ROOT, Route, function_environment, functions, http_routes, load_template, resources
from tests.e2e.conftest import LocalStackHandle, running_stack

EVENTS = ROOT / "events"


# --- The emulator serialises requests, so conditional writes are atomic -------------------------------


def test_serialised_app_lets_one_request_through_at_a_time() -> None:
    inside = 0
    most = 0
    guard = threading.Lock()

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.01)
        with guard:
            inside -= 1
        start_response("200 OK", [])
        return [b"ok"]

    app = SerialisedApp(slow_app)
    threads = [threading.Thread(target=app, args=({}, lambda *_: None)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


@pytest.mark.parametrize("round_number", range(4))
def test_concurrent_conditional_writes_on_one_item_have_one_winner(
    local_stack: LocalStackHandle, round_number: int
) -> None:
    """24 clients race to move one item from pending to their own name: exactly one may win."""
    dynamodb = local_stack.aws("dynamodb")
    key = {"pk": {"S": f"race-{round_number}-{uuid.uuid4().hex}"}}
    dynamodb.put_item(TableName=local_stack.table_name, Item={**key, "status": {"S": "pending"}})
    contenders = 24
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []

    def contend(index: int) -> None:
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=local_stack.moto_endpoint,
            region_name=local_stack.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        barrier.wait()
        try:
            client.update_item(
                TableName=local_stack.table_name,
                Key=key,
                UpdateExpression="SET #s = :winner",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":winner": {"S": f"won-{index}"}, ":pending": {"S": "pending"}},
            )
            outcomes.append(f"won-{index}")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [outcome for outcome in outcomes if outcome.startswith("won-")]
    assert len(outcomes) == contenders
    assert len(winners) == 1, outcomes
    assert outcomes.count("ConditionalCheckFailedException") == contenders - 1
    item = dynamodb.get_item(TableName=local_stack.table_name, Key=key)["Item"]
    assert item["status"]["S"] == winners[0]


def test_a_cancelled_transaction_writes_nothing_and_streams_nothing(local_stack: LocalStackHandle) -> None:
    """DynamoDB applies a TransactWriteItems whole or not at all, and streams only what it applied.
    A reader that holds a shard iterator (the AuditPipe emulation does) sees no record of a
    cancelled transaction, and sees the writes that come after it."""
    from botocore.exceptions import ClientError

    dynamodb, streams = local_stack.aws("dynamodb"), local_stack.aws("dynamodbstreams")
    table = local_stack.table_name
    stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST")[
        "ShardIterator"
    ]
    token, created, later = (f"txn-{name}-{uuid.uuid4().hex}" for name in ("token", "created", "later"))
    dynamodb.put_item(TableName=table, Item={"pk": {"S": token}, "status": {"S": "accepted"}})
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": token}},
                        "UpdateExpression": "SET #s = :accepted",
                        "ConditionExpression": "#s = :pending",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":accepted": {"S": "accepted"}, ":pending": {"S": "pending"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": created}, "status": {"S": "active"}}}},
            ]
        )
    reasons = cancelled.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["ConditionalCheckFailed", "None"]
    assert reasons[0]["Item"]["status"] == {"S": "accepted"}
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": created}})
    dynamodb.put_item(TableName=table, Item={"pk": {"S": later}, "status": {"S": "pending"}})
    seen: list[str] = []
    for _ in range(5):
        answer = streams.get_records(ShardIterator=iterator)
        seen += [record["dynamodb"]["Keys"]["pk"]["S"] for record in answer["Records"]]
        iterator = answer["NextShardIterator"]
    mine = [key for key in seen if key in (token, created, later)]
    assert mine == [token, later], seen


# --- Resources and environments come from template.yaml ------------------------------------------------


def existing(kind: str, stack: LocalStackHandle) -> dict[str, Any]:
    """The template's resources of ``kind`` whose Condition holds with the stack's parameters (the
    session's stack runs without delivery by email, so its conditional resources are absent)."""
    template = load_template()
    resolver = Resolver(template, parameter_values(template, stack.state["parameters"]))
    conditions = {name: template["Resources"][name].get("Condition") for name in template["Resources"]}
    return {
        name: props
        for name, props in resources(kind, template).items()
        if not conditions[name] or resolver.condition(str(conditions[name]))
    }


def test_every_resource_the_template_declares_exists(local_stack: LocalStackHandle) -> None:
    template = load_template()
    state = local_stack.state
    assert set(existing("AWS::SQS::Queue", local_stack)) < set(resources("AWS::SQS::Queue", template))
    tables = set(local_stack.aws("dynamodb").list_tables()["TableNames"])
    for logical_id in existing("AWS::DynamoDB::Table", local_stack):
        assert state["tables"][logical_id] in tables
    listed = {item["ARN"] for item in local_stack.aws("secretsmanager").list_secrets()["SecretList"]}
    for logical_id in existing("AWS::SecretsManager::Secret", local_stack):
        assert state["secrets"][logical_id] in listed
    buses = {bus["Name"] for bus in local_stack.aws("events").list_event_buses()["EventBuses"]}
    for logical_id in existing("AWS::Events::EventBus", local_stack):
        assert state["event_buses"][logical_id] in buses
    buckets = {bucket["Name"] for bucket in local_stack.aws("s3").list_buckets()["Buckets"]}
    for logical_id in existing("AWS::S3::Bucket", local_stack):
        assert state["buckets"][logical_id] in buckets
    queues = local_stack.aws("sqs").list_queues().get("QueueUrls", [])
    for logical_id in existing("AWS::SQS::Queue", local_stack):
        assert state["queues"][logical_id] in queues
    ttl = local_stack.aws("dynamodb").describe_time_to_live(TableName=local_stack.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"


def test_secrets_are_seeded_for_local_use(local_stack: LocalStackHandle) -> None:
    from signin_links.keyring import parse_keyring

    secrets = local_stack.aws("secretsmanager")
    values = {
        logical_id: secrets.get_secret_value(SecretId=arn)["SecretString"]
        for logical_id, arn in local_stack.state["secrets"].items()
    }
    api_keys = [json.loads(value) for value in values.values() if "secret_key" in json.loads(value)]
    assert api_keys == [{"secret_key": local_stack.secret_key}]
    keyrings = {json.loads(value)["kind"]: value for value in values.values() if "kind" in json.loads(value)}
    assert set(keyrings) == {"ed25519", "ed25519-public", "rsa", "hmac"}  # hmac: the retired ticket keyring
    for kind, raw in keyrings.items():
        assert parse_keyring(raw, kind).keys, kind
    # The verification keyring is the signing keyring's public half, as the rotation publishes it.
    signing = parse_keyring(values["TicketSigningKeyringSecret"], "ed25519")
    assert values["TicketVerificationKeyringSecret"] == signing.public().to_json()


# Secrets the functions name only when a condition holds: the retired HS256 keyring in an upgrade
# window (LegacyHs256TicketsUntil), the CloudFront origin header's secret (EdgeProtection).
OFF_LOCALLY = {"LEGACY_TICKET_KEYRING_SECRET_ID", "EDGE_SECRET_ID"}


def test_function_environments_point_at_the_local_resources(local_stack: LocalStackHandle) -> None:
    specs = {
        name: spec for name, spec in functions().items() if name in existing("AWS::Serverless::Function", local_stack)
    }
    assert set(local_stack.state["functions"]) == set(specs)
    assert "SendLinkEmailFunction" not in specs
    for logical_id, spec in specs.items():
        env = local_stack.env(logical_id)
        assert set(spec.environment) <= set(env)
        assert env["AWS_ENDPOINT_URL"] == local_stack.moto_endpoint
        assert env["AWS_ACCESS_KEY_ID"] == "testing"
        assert env["AWS_REGION"] == local_stack.region
        assert env["TABLE_NAME"] == local_stack.table_name
        assert env["ACCEPT_BASE_URL"] == local_stack.base_url
        assert local_stack.base_url in env["ALLOWED_REDIRECT_ORIGINS"].split(",")
        for name, value in env.items():
            if name in OFF_LOCALLY and not value:
                continue  # a secret behind a condition that does not hold on the local stack
            if name.endswith("_SECRET_ID"):
                assert value in local_stack.state["secrets"].values(), name


def test_a_redirect_to_the_stack_itself_is_allowed(api: httpx.Client, local_stack: LocalStackHandle) -> None:
    response = api.post("/v1/sign_in_tokens", json={"user_id": "user_r", "redirect_url": local_stack.base_url + "/x"})
    assert response.status_code == 200, response.text


def test_resolver_evaluates_intrinsics_against_local_names() -> None:
    template: dict[str, Any] = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]}},
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        },
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    }
    resolver = Resolver(
        template,
        parameter_values(template),
        ref_of={"Queue": "https://queue"}.get,
        att_of=lambda name, attr: f"arn:{name}:{attr}" if name == "Queue" else None,
    )
    assert resolver.resolve({"Fn::Sub": "q-${Stage}-${AWS::Region}-${Queue.Arn}-${!Literal}"}) == (
        "q-dev-us-east-1-arn:Queue:Arn-${Literal}"
    )
    assert resolver.resolve({"Fn::Sub": ["${A}/${Queue}", {"A": {"Ref": "Stage"}}]}) == "dev/https://queue"
    assert resolver.resolve({"Fn::If": ["NotProd", "yes", "no"]}) == "yes"
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:Queue:Arn"
    assert resolver.resolve({"Fn::Join": [",", ["a", {"Ref": "Stage"}]]}) == "a,dev"
    assert resolver.resolve({"k": {"Ref": "AWS::NoValue"}, "j": 1}) == {"j": 1}
    with pytest.raises(TemplateError, match="Missing"):
        resolver.resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError, match="Stage"):
        parameter_values(template, {"Stage": "qa"})
    with pytest.raises(TemplateError, match="Nope"):
        parameter_values(template, {"Nope": "1"})


def test_short_form_condition_tag_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("Conditions:\n  A: !And [!Condition B, !Equals [!Ref X, '']]\nResources: {}\n")
    loaded = load_template(path)
    assert loaded["Conditions"]["A"] == {"Fn::And": [{"Condition": "B"}, {"Fn::Equals": [{"Ref": "X"}, ""]}]}


def test_generated_secrets_follow_generate_secret_string() -> None:
    password = generate_password({"PasswordLength": 48, "ExcludePunctuation": True})
    assert len(password) == 48
    assert password.isalnum()
    digits = generate_password({"PasswordLength": 20, "ExcludeLowercase": True, "ExcludeUppercase": True})
    assert len(digits) == 20
    assert not any(ch.isalpha() for ch in digits)
    value = secret_value(
        {"GenerateSecretString": {"SecretStringTemplate": '{"user": "a"}', "GenerateStringKey": "pw"}}, "sk"
    )
    assert value is not None
    data = json.loads(value)
    assert data["user"] == "a"
    assert len(data["pw"]) == 32
    assert json.loads(localise_secret('{"secret_key": "generated"}', "sk_local")) == {"secret_key": "sk_local"}
    assert empty_keyring_kind('{"kind": "rsa", "keys": []}') == "rsa"
    assert empty_keyring_kind('{"kind": "ed25519", "keys": []}') == "ed25519"
    # The verification keyring is written when its signing keyring is seeded, never seeded itself.
    assert empty_keyring_kind('{"kind": "ed25519-public", "keys": []}') is None
    assert empty_keyring_kind('{"kind": "hmac", "keys": [{"kid": "k"}]}') is None
    assert secret_value({"SecretString": "plain"}, "sk") == "plain"


# --- Payload 2.0 events and responses -----------------------------------------------------------------


def test_every_route_has_an_event_file_that_routes_to_it() -> None:
    routes = http_routes()
    router = Router(routes)
    by_key: dict[str, dict[str, Any]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if isinstance(event, dict) and event.get("version") == "2.0":
            by_key.setdefault(event["routeKey"], event)
    for route in routes:
        key = f"{route.method} {route.path}"
        assert key in by_key, f"events/ has no event for {key}"
        event = by_key[key]
        match = router.match(event["requestContext"]["http"]["method"], event["rawPath"])
        assert match is not None, key
        assert match.route == route, key
        assert event["requestContext"]["routeKey"] == key
        assert (event.get("pathParameters") or {}) == match.path_parameters, key


def test_event_has_api_gateways_shape() -> None:
    request = HttpRequest(
        method="POST",
        target="/v1/sign_in_tokens/sit_a%20b/revoke?x=1&x=2&y=",
        headers=[
            ("Host", "127.0.0.1:3000"),
            ("Content-Type", "application/json"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Cookie", "a=1; b=2"),
            ("Cookie", "c=3"),
            ("User-Agent", "curl/8"),
        ],
        body=b'{"k": 1}',
    )
    router = Router([Route("F", "POST", "/v1/sign_in_tokens/{sign_in_token_id}/revoke")])
    match = router.match("POST", request.raw_path)
    assert match is not None
    event = http_event(request, match, domain_name="127.0.0.1:3000")
    reference = json.loads((EVENTS / "revoke_sign_in_token.json").read_text())
    assert set(reference) <= set(event) | {"body"}
    assert set(reference["requestContext"]) <= set(event["requestContext"])
    assert set(reference["requestContext"]["http"]) == set(event["requestContext"]["http"])
    assert event["routeKey"] == event["requestContext"]["routeKey"] == match.route_key
    assert event["rawPath"] == "/v1/sign_in_tokens/sit_a%20b/revoke"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"sign_in_token_id": "sit_a b"}
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "a,b"
    assert all(name == name.lower() for name in event["headers"])
    assert event["body"] == '{"k": 1}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["http"]["userAgent"] == "curl/8"
    other = http_event(request, match, domain_name="127.0.0.1:3000")
    assert other["requestContext"]["requestId"] != event["requestContext"]["requestId"]


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/json; charset=utf-8", False),
        ("text/html", False),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", True),
        (None, True),
    ],
)
def test_non_text_bodies_are_base64(content_type: str | None, encoded: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    request = HttpRequest(method="POST", target="/p", headers=headers, body=b"token=abc")
    match = Router([Route("F", "POST", "/p")]).match("POST", "/p")
    assert match is not None
    event = http_event(request, match, domain_name="h")
    assert event["isBase64Encoded"] is encoded
    body = base64.b64decode(event["body"]) if encoded else event["body"].encode()
    assert body == b"token=abc"


def test_router_prefers_the_most_specific_route() -> None:
    router = Router(
        [
            Route("Greedy", "ANY", "/files/{proxy+}"),
            Route("Param", "GET", "/files/{name}"),
            Route("Literal", "GET", "/files/special"),
            Route("Head", "HEAD", "/page"),
            Route("Get", "GET", "/page"),
        ]
    )

    def target(method: str, path: str) -> str | None:
        match = router.match(method, path)
        return match.route.function if match else None

    assert target("GET", "/files/special") == "Literal"
    assert target("GET", "/files/other") == "Param"
    assert target("POST", "/files/other") == "Greedy"
    assert target("GET", "/files/a/b/c") == "Greedy"
    assert router.match("GET", "/files/a/b")
    assert router.match("DELETE", "/files/a/b").path_parameters == {"proxy": "a/b"}  # type: ignore[union-attr]
    assert target("HEAD", "/page") == "Head"
    assert target("POST", "/page") is None
    assert Router([Route("Get", "GET", "/page")]).match("HEAD", "/page") is None


def test_responses_are_translated_as_api_gateway_does() -> None:
    structured = http_response(
        {
            "statusCode": 303,
            "headers": {"Location": "/next", "Content-Type": "text/html"},
            "cookies": ["__session=x; HttpOnly", "other=y"],
            "body": "<p>",
        }
    )
    assert structured.status == 303
    assert [value for name, value in structured.headers if name == "Set-Cookie"] == [
        "__session=x; HttpOnly",
        "other=y",
    ]
    assert ("Location", "/next") in structured.headers
    assert structured.body == b"<p>"
    binary = http_response({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert binary.body == b"\x00\x01"
    shorthand = http_response({"hello": "world"})
    assert shorthand.status == 200
    assert ("Content-Type", "application/json") in shorthand.headers
    assert json.loads(shorthand.body) == {"hello": "world"}
    assert http_response({"statusCode": "nope"}).status == 500


@pytest.mark.parametrize(
    "headers",
    [
        {"Location": "https://app.example.com/日本"},  # not Latin-1: http.server raised, the connection dropped
        {"Location": "https://app.example.com/\ud800"},
        {"X-Split": "a\r\nSet-Cookie: injected=1"},  # a header value must not start another header
        {"X-Nul": "a\x00b"},
        {"Bad Name": "x"},
        {"X-\u00e9": "x"},
    ],
)
def test_a_header_http_cannot_carry_is_a_500_not_a_dropped_connection(headers: dict[str, str]) -> None:
    assert http_response({"statusCode": 303, "headers": headers, "body": ""}).status == 500
    ((name, value),) = headers.items()
    if name in ("Location", "X-Split", "X-Nul"):  # a bad value (not a bad name): as a cookie too
        assert http_response({"statusCode": 200, "cookies": [f"__session={value}"], "body": ""}).status == 500


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes to the stack and read its answer (the server closes after a bad request)."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
                break
    return b"".join(chunks)


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: -5\r\n",
        b"Content-Length: 1_0\r\n",
        b"Content-Length: +10\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: 99999999999999999999999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",  # with a chunk size of -1 (read to EOF: a hung thread)
    ],
)
def test_malformed_request_framing_is_answered_not_hung(local_stack: LocalStackHandle, framing: bytes) -> None:
    body = b"-1\r\nabc\r\n0\r\n\r\n" if b"chunked" in framing else b'{"user_id": "u"}'
    request = (
        b"POST /v1/sign_in_tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + framing + b"\r\n" + body
    )
    answer = raw_exchange(local_stack.base_url, request)
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 413 Request Entity Too Large"), answer[:300]


# --- local.invoke ------------------------------------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    child_env = {**os.environ, **(env or {})}
    child_env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "local.invoke", *args],
        cwd=ROOT,
        env=child_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_invoke_mint_on_a_private_emulator() -> None:
    done = invoke("MintLinkFunction", "events/create_sign_in_token.json", "--fresh")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is the result alone; the logs went to stderr
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["status"] == "pending"
    assert body["url"].startswith("http://127.0.0.1:3000/accept-token?token=")
    assert "starting a private emulator" in done.stderr
    assert any(line.startswith('{"level":') for line in done.stderr.splitlines())  # Powertools' JSON logs


def test_invoke_reuses_a_running_stack(local_stack: LocalStackHandle) -> None:
    minted = local_stack.client().post("/v1/sign_in_tokens", json={"user_id": "user_invoke"}).json()
    event = json.loads((EVENTS / "revoke_sign_in_token.json").read_text())
    event["pathParameters"] = {"sign_in_token_id": minted["id"]}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{minted['id']}/revoke"
    state_env = {"LOCAL_STACK_STATE": str(local_stack.state_path)}
    done = invoke("MintLinkFunction", "-", env=state_env, stdin=json.dumps(event))
    assert done.returncode == 0, done.stderr
    assert "using the running local stack" in done.stderr
    result = json.loads(done.stdout)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "revoked"
    item = local_stack.item(minted["id"])
    assert item is not None
    assert item["status"]["S"] == "revoked"


def test_invoke_reports_an_exception_as_lambda_does(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    source.mkdir()
    (source / "app.py").write_text(
        "def boom(event, context):\n    raise ValueError('bad ' + event['detail-type'])\n\n"
        "def echo(event, context):\n    return {'source': event['source'], 'fn': context.function_name}\n"
    )
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Boom:\n    Type: AWS::Serverless::Function\n    Metadata: {SourceDir: fn}\n"
        "    Properties: {Handler: app.boom, Runtime: python3.13}\n"
        "  Echo:\n    Type: AWS::Serverless::Function\n    Metadata: {SourceDir: fn}\n"
        "    Properties: {Handler: app.echo, Runtime: python3.13}\n"
    )
    event = json.dumps({"source": "signin-links.batches", "detail-type": "MintSignInLinks", "detail": {}})
    template = str(tmp_path / "template.yaml")

    failed = invoke("Boom", "-", "--template", template, stdin=event)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad MintSignInLinks"
    assert error["stackTrace"]

    echoed = invoke("Echo", "-", "--template", template, stdin=event)
    assert echoed.returncode == 0, echoed.stderr
    assert json.loads(echoed.stdout) == {"source": "signin-links.batches", "fn": "signin-links-local-Echo"}

    unknown = invoke("Nope", "-", "--template", template, stdin=event)
    assert unknown.returncode == 2
    assert "Boom" in unknown.stderr


# --- Configuration and a clean stop -------------------------------------------------------------------------


def test_overrides_and_a_clean_stop_on_sigterm(tmp_path: Path) -> None:
    key = "sk_test_custom_key_for_the_e2e_suite"
    env = {"LOCAL_SECRET_KEY": key, "LOCAL_PARAMETER_AllowedRedirectOrigins": "https://app.example.com"}
    with running_stack(tmp_path, env=env) as stack:
        assert stack.secret_key == key
        origins = stack.env("MintLinkFunction")["ALLOWED_REDIRECT_ORIGINS"].split(",")
        assert origins == ["https://app.example.com", stack.base_url]
        with stack.client() as client:
            allowed = client.post(
                "/v1/sign_in_tokens", json={"user_id": "u", "redirect_url": "https://app.example.com/"}
            )
            assert allowed.status_code == 200, allowed.text
            other = client.post("/v1/sign_in_tokens", json={"user_id": "u", "redirect_url": "https://other.example/"})
            assert other.status_code == 422
        default_key = httpx.post(
            stack.base_url + "/v1/sign_in_tokens",
            json={"user_id": "u"},
            headers={"Authorization": "Bearer sk_test_local_signin_links_0001"},
            timeout=30,
        )
        assert default_key.status_code == 401
        process = stack.process
    assert process.returncode == 0
    assert not (tmp_path / "state.json").exists()
    assert "local stack stopped" in (tmp_path / "stack.log").read_text()


def test_function_environment_resolves_globals_and_own_variables() -> None:
    template = load_template()
    resolver = Resolver(
        template,
        parameter_values(template, LOCAL_DEPLOY),
        ref_of=lambda name: f"local-{name}",
        att_of=lambda n, a: f"{n}.{a}",
    )
    for spec in functions(template).values():
        env = function_environment(spec, resolver)
        assert env["TABLE_NAME"] == "local-TokensTable"
        assert env["POWERTOOLS_SERVICE_NAME"] == "signin-links"
        assert all(isinstance(value, str) for value in env.values())
