"""The Step Functions path, tested as far as the emulator goes.

moto's Step Functions (an ASL interpreter ported from LocalStack) parses our definition, runs its
Pass states, and evaluates its JSONPath; it does not know ``ItemBatcher`` and cannot invoke a
Lambda function without Docker. So: the definition parses with ``ItemBatcher`` set aside, the
request defaults run in the emulator, and each chunk payload is built with the emulator's own
JSONPath from a CSV the way the Distributed Map hands it over, then goes through the real handler.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from local.template import load_template, resources
from tests.conftest import REGION, ROOT
from tests.integration.test_batch import RESULTS_BUCKET, Batches, batches  # noqa: F401 - the fixture

ASL = ROOT / "statemachine" / "mint_batch.asl.json"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:mint-link"
ROLE_ARN = "arn:aws:iam::123456789012:role/mint-batch"


def definition() -> dict[str, Any]:
    text = ASL.read_text().replace("${MintLinkFunctionArn}", FUNCTION_ARN)
    data: dict[str, Any] = json.loads(text)
    return data


def state_machine() -> dict[str, Any]:
    (props,) = resources("AWS::Serverless::StateMachine").values()
    return props


def test_the_template_points_the_state_machine_at_this_definition_and_the_mint_function() -> None:
    props = state_machine()
    assert ROOT / props["DefinitionUri"] == ASL
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(props["DefinitionSubstitutions"]) == {"MintLinkFunctionArn"}
    # The published alias, so a gradual deploy (DeploymentPreference) moves the chunks' code too.
    assert props["DefinitionSubstitutions"]["MintLinkFunctionArn"] == {"Ref": "MintLinkFunction.Alias"}
    invoke = [p for p in props["Policies"] if "LambdaInvokePolicy" in p]
    assert invoke == [{"LambdaInvokePolicy": {"FunctionName": {"Ref": "MintLinkFunction"}}}]
    functions = load_template()["Resources"]
    assert functions["MintLinkFunction"]["Type"] == "AWS::Serverless::Function"


def test_the_definition_parses_in_the_emulator() -> None:
    data = definition()
    batcher = data["States"]["MintChunks"].pop("ItemBatcher")  # not in moto's ASL grammar (it is in AWS's)
    assert batcher["MaxItemsPerBatch"] == 1000
    assert batcher["MaxInputBytesPerBatch"] <= 256 * 1024
    AmazonStateLanguageParser.parse(json.dumps(data))
    tasks = [data["States"]["Summarise"], data["States"]["MintChunks"]["ItemProcessor"]["States"]["MintChunk"]]
    for task in tasks:
        assert task["Parameters"]["FunctionName"] == FUNCTION_ARN
        assert task["Retry"][0] == {"ErrorEquals": ["BatchRejected", "ConfigError"], "MaxAttempts": 0}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"expires_in_seconds": None, "org_id": None}),
        ({"expires_in_seconds": 3600, "org_id": "org_1"}, {"expires_in_seconds": 3600, "org_id": "org_1"}),
    ],
)
def test_the_request_defaults_run_in_the_emulator(given: dict[str, Any], expected: dict[str, Any]) -> None:
    data = definition()
    states = {name: copy.deepcopy(data["States"][name]) for name in ("WithDefaults", "Request")}
    states["Request"].pop("Next")
    states["Request"]["End"] = True
    request = {"batch_id": "b1", "manifest": {"bucket": "m", "key": "users.csv"}, **given}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="defaults", definition=json.dumps({"StartAt": "WithDefaults", "States": states}), roleArn=ROLE_ARN
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(request))["executionArn"]
        for _ in range(100):
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {**request, **expected}


class Emulator:
    """Runs one-state machines in moto's ASL interpreter, so every JSONPath, intrinsic function and
    ItemSelector of our definition is evaluated by the emulator rather than by these tests."""

    def __init__(self) -> None:
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.count = 0

    def run(self, state: dict[str, Any], given: Any) -> Any:
        self.count += 1
        arn = self.sfn.create_state_machine(
            name=f"probe-{self.count}",
            definition=json.dumps({"StartAt": "Probe", "States": {"Probe": {**state, "End": True}}}),
            roleArn=ROLE_ARN,
        )["stateMachineArn"]
        execution = self.sfn.start_execution(stateMachineArn=arn, input=json.dumps(given))["executionArn"]
        for _ in range(200):
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.05)
        assert described["status"] == "SUCCEEDED", described
        return json.loads(described["output"])

    def parameters(self, parameters: dict[str, Any], given: Any) -> Any:
        return self.run({"Type": "Pass", "Parameters": parameters}, given)

    def item_selector(self, selector: dict[str, Any], items: list[Any]) -> list[Any]:
        """An inline Map with our ItemSelector: what each item becomes before batching."""
        inline = {
            "Type": "Map",
            "ItemSelector": selector,
            "ItemProcessor": {"StartAt": "Same", "States": {"Same": {"Type": "Pass", "End": True}}},
        }
        result: list[Any] = self.run(inline, items)
        return result


@pytest.fixture
def emulator(batches: Batches, monkeypatch: pytest.MonkeyPatch) -> Emulator:  # noqa: F811
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    return Emulator()


def test_chunk_payloads_built_by_the_emulator_go_through_the_handler(
    batches: Batches,  # noqa: F811
    emulator: Emulator,
) -> None:
    manifest = "user_id,redirect_url,metadata\n" + "".join(
        f"user_{n},{'https://app.example.com/go' if n % 2 else ''},{'{}' if n % 3 else ''}\n" for n in range(25)
    )
    manifest += "user_3,,\n,,\n"  # a duplicate across chunks and an empty user_id
    request = {"batch_id": "sfn-1", "manifest": {"bucket": "m", "key": "k.csv"}, "expires_in_seconds": 7200}
    data = definition()
    mint_chunks = data["States"]["MintChunks"]
    request = emulator.parameters(data["States"]["WithDefaults"]["Parameters"], request)
    request = emulator.parameters(data["States"]["Request"]["Parameters"], request)["request"]

    # ItemReader (CSV, FIRST_ROW): one object per row, every value a string.
    rows = list(csv.DictReader(io.StringIO(manifest)))
    items = emulator.item_selector(mint_chunks["ItemSelector"], rows)
    assert items[26] == {"index": 26, "user": {"user_id": "", "redirect_url": "", "metadata": ""}}
    batch_input = emulator.parameters(mint_chunks["ItemBatcher"]["BatchInput"], request)
    task = mint_chunks["ItemProcessor"]["States"]["MintChunk"]
    chunk_results = []
    for start in range(0, len(items), 10):  # ItemBatcher, with MaxItemsPerBatch 10 instead of 1000
        child = {"Items": items[start : start + 10], "BatchInput": batch_input}
        call = emulator.parameters(task["Parameters"], child)
        assert call["FunctionName"] == FUNCTION_ARN
        assert call["Payload"]["chunk_index"] == start
        response = {"Payload": batches.invoke(call["Payload"]), "StatusCode": 200}
        chunk_results.append(emulator.parameters(task["ResultSelector"], response))
    assert [c["counts"]["requested"] for c in chunk_results] == [10, 10, 7]
    summarise = data["States"]["Summarise"]
    call = emulator.parameters(summarise["Parameters"], {**request, "chunks": chunk_results})
    summary = batches.invoke(call["Payload"])
    assert summary["counts"] == {"requested": 27, "minted": 25, "already_minted": 1, "failed": 1, "duplicates": 0}
    assert summary["results"] == f"s3://{RESULTS_BUCKET}/results/sfn-1/"
    assert len(batches.tokens("sfn-1")) == 25
    assert len(batches.minted()) == 25
    assert {int(t["eis"]["N"]) for t in batches.tokens("sfn-1")} == {7200}
    assert batches.summaries() == [summary]


def test_the_template_routes_batch_events_to_mint_link_with_a_dead_letter_queue() -> None:
    template = load_template()["Resources"]
    mint = template["MintLinkFunction"]["Properties"]
    rule = mint["Events"]["MintBatch"]
    assert rule["Type"] == "EventBridgeRule"
    assert rule["Properties"]["EventBusName"] == {"Ref": "EventBus"}
    pattern = rule["Properties"]["Pattern"]
    assert pattern == {"source": [{"Ref": "BatchEventSource"}], "detail-type": ["MintSignInLinks"]}
    dlq = {"Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]}
    assert rule["Properties"]["DeadLetterConfig"] == {"Arn": dlq}
    failure = mint["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert failure == {"Type": "SQS", "Destination": dlq}
    assert mint["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    assert template["BatchDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert mint["Timeout"] >= 300
    env = mint["Environment"]["Variables"]
    assert env["RESULTS_BUCKET"] == {"Ref": "ResultsBucket"}
    assert env["BATCH_EVENT_SOURCE"] == {"Ref": "BatchEventSource"}
    deletes = [
        statement
        for policy in mint["Policies"]
        for statement in policy.get("Statement", [])
        if statement.get("Action") == "dynamodb:DeleteItem"
    ]
    assert [d["Condition"] for d in deletes] == [
        {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["batch-idempotency#*"]}}
    ]

    bucket = template["ResultsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == {"Ref": "ResultsRetentionDays"}
    (statement,) = template["ResultsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
