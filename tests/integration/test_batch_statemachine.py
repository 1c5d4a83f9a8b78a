"""The Step Functions path, tested as far as the emulator goes.

moto's Step Functions (an ASL interpreter ported from LocalStack) parses our definition, runs its
Pass states, and evaluates its JSONPath; it does not know ``ItemBatcher`` and cannot invoke a
Lambda function without Docker. So: the definition parses with ``ItemBatcher`` set aside, the
request defaults run in the emulator, and each chunk payload is built with the emulator's own
JSONPath from a CSV the way the Distributed Map hands it over, then goes through the real handler;
the chunks' outputs are written to S3 as the Map's ``ResultWriter`` writes them (its documented
manifest and result files), and the summary step reads them from there.

A 1,000,000-user manifest is planned (batched as ``ItemBatcher`` batches it, each chunk summarised
as the mint function would, nothing minted) to show that every state's input and output stays under
Step Functions' 256 KB whatever the batch size.
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
from signin_links.batch.request import BatchRejected
from signin_links.manifest import MAP_RUNS_PREFIX
from tests.conftest import REGION, ROOT
from tests.integration.conftest import RESULTS_BUCKET, Batches

ASL = ROOT / "statemachine" / "mint_batch.asl.json"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:mint-link"
ROLE_ARN = "arn:aws:iam::123456789012:role/mint-batch"


def definition() -> dict[str, Any]:
    text = (
        ASL.read_text().replace("${MintLinkFunctionArn}", FUNCTION_ARN).replace("${ResultsBucketName}", RESULTS_BUCKET)
    )
    data: dict[str, Any] = json.loads(text)
    return data


def state_machine() -> dict[str, Any]:
    (props,) = resources("AWS::Serverless::StateMachine").values()
    return props


def test_the_template_points_the_state_machine_at_this_definition_and_the_mint_function() -> None:
    props = state_machine()
    assert ROOT / props["DefinitionUri"] == ASL
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(props["DefinitionSubstitutions"]) == {"MintLinkFunctionArn", "ResultsBucketName"}
    assert props["DefinitionSubstitutions"]["ResultsBucketName"] == {"Ref": "ResultsBucket"}
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
    writer = data["States"]["MintChunks"].pop("ResultWriter")  # nor WriterConfig
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    assert writer["Parameters"] == {"Bucket": RESULTS_BUCKET, "Prefix": MAP_RUNS_PREFIX.rstrip("/")}
    assert writer["WriterConfig"] == {"OutputType": "JSON", "Transformation": "COMPACT"}
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
def emulator(batches: Batches, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    return Emulator()


def test_chunk_payloads_built_by_the_emulator_go_through_the_handler(
    batches: Batches,
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
    # The Map's ResultWriter writes the outputs to S3; the Map's own output is only where they are.
    map_output = write_map_run(batches.s3, chunk_results)
    state = emulator.parameters({"request.$": "$", "map_run.$": "$.map_run"}, {**request, "map_run": map_output})
    assert state["map_run"] == map_output  # ResultPath $.map_run: the request stays, beside the run's details
    summarise = data["States"]["Summarise"]
    call = emulator.parameters(summarise["Parameters"], {**request, "map_run": map_output})
    assert call["Payload"] == {"batch_id": "sfn-1", "map_results": map_output["ResultWriterDetails"]}
    summary = batches.invoke(call["Payload"])
    assert summary["counts"] == {"requested": 27, "minted": 25, "already_minted": 1, "failed": 1, "duplicates": 0}
    assert summary["results"] == f"s3://{RESULTS_BUCKET}/results/sfn-1/"
    assert len(batches.tokens("sfn-1")) == 25
    assert len(batches.minted()) == 25
    assert {int(t["eis"]["N"]) for t in batches.tokens("sfn-1")} == {7200}
    assert batches.summaries() == [summary]


MAP_RUN_ARN = "arn:aws:states:us-east-1:123456789012:mapRun:MintBatchStateMachine-x/MintChunks:0b1c2d3e"


def write_map_run(
    s3: Any, outputs: list[Any], *, run: str = "0b1c2d3e-4f50-6a7b-8c9d-0e1f2a3b4c5d", per_file: int = 400
) -> dict[str, Any]:
    """What the Map's ResultWriter leaves (OutputType JSON, Transformation COMPACT): result files of
    the succeeded children's outputs and a manifest.json listing them; returns the Map's output."""
    directory = f"{MAP_RUNS_PREFIX}{run}/"
    files = []
    for number, start in enumerate(range(0, len(outputs), per_file)):
        key = f"{directory}SUCCEEDED_{number}.json"
        body = json.dumps(outputs[start : start + per_file]).encode()
        s3.put_object(Bucket=RESULTS_BUCKET, Key=key, Body=body)
        files.append({"Key": key, "Size": len(body)})
    manifest = {
        "DestinationBucket": RESULTS_BUCKET,
        "MapRunArn": MAP_RUN_ARN,
        "ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": files},
    }
    s3.put_object(Bucket=RESULTS_BUCKET, Key=f"{directory}manifest.json", Body=json.dumps(manifest).encode())
    return {
        "MapRunArn": MAP_RUN_ARN,
        "ResultWriterDetails": {"Bucket": RESULTS_BUCKET, "Key": f"{directory}manifest.json"},
    }


def test_the_summary_step_reads_a_thousand_chunks_from_the_map_run_and_refuses_other_objects(
    batches: Batches,
) -> None:
    outputs = [
        {
            "status": "completed" if n != 7 else "incomplete",
            "counts": {"requested": 1000, "minted": 990, "already_minted": 5, "failed": 5, "duplicates": 0},
            "results": f"s3://{RESULTS_BUCKET}/results/big/chunk-{n * 1000:09d}.jsonl",
        }
        for n in range(1000)
    ]
    where = write_map_run(batches.s3, outputs)["ResultWriterDetails"]
    summary = batches.invoke({"batch_id": "big", "map_results": where})
    assert summary["chunks"] == 1000
    assert summary["counts"] == {
        "requested": 1_000_000,
        "minted": 990_000,
        "already_minted": 5_000,
        "failed": 5_000,
        "duplicates": 0,
    }
    assert summary["status"] == "incomplete"  # chunk 7 had undelivered events
    assert batches.summaries() == [summary]
    # Only the function's own map runs: another bucket, another prefix, a file outside the run.
    for bad in (
        {"Bucket": "someone-elses", "Key": where["Key"]},
        {"Bucket": RESULTS_BUCKET, "Key": "results/big/chunk-000000000.jsonl"},
        {"Bucket": RESULTS_BUCKET, "Key": "manifests/x/manifest.json"},
    ):
        with pytest.raises(BatchRejected, match="map_results"):
            batches.invoke({"batch_id": "big", "map_results": bad})
    sneaky = {"ResultFiles": {"SUCCEEDED": [{"Key": "results/other-run/SUCCEEDED_0.json"}]}}
    key = f"{MAP_RUNS_PREFIX}sneaky/manifest.json"
    batches.s3.put_object(Bucket=RESULTS_BUCKET, Key=key, Body=json.dumps(sneaky).encode())
    with pytest.raises(BatchRejected, match="outside its run"):
        batches.invoke({"batch_id": "big", "map_results": {"Bucket": RESULTS_BUCKET, "Key": key}})


STATE_LIMIT = 256 * 1024  # Step Functions: a state's input or output, in bytes (UTF-8)


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_a_million_user_manifest_keeps_every_state_under_256_kb() -> None:
    """Plans (mints nothing) a 1,000,000-row CSV manifest through the definition: ItemReader rows,
    the ItemSelector's items, ItemBatcher's two limits, each child's input and Lambda payload, a
    chunk's largest summary (every user failed, with the longest user ids), the Map's output
    (ResultWriter: a pointer, whatever the chunk count), the summary step's input and output. Most
    rows are short; every 10th carries 4 KB of metadata (the most a user may), so that some batches
    are cut by bytes, not by count. Compact JSON sizes add up: a list's size is the sum of its items'
    plus commas, so each item is serialised once."""
    from signin_links.batch.plan import plan_batch
    from signin_links.batch.request import BatchRequest, FinalizeRequest
    from signin_links.batch.summary import distributed_summary, unit_summary
    from signin_links.config import parse_settings

    data = definition()
    batcher = data["States"]["MintChunks"]["ItemBatcher"]
    max_items, max_bytes = batcher["MaxItemsPerBatch"], batcher["MaxInputBytesPerBatch"]
    request = {
        "batch_id": "b" * 128,
        "manifest": {"bucket": "m" * 63, "key": "k" * 900 + ".csv"},
        "expires_in_seconds": 2_592_000,
        "org_id": "o" * 256,
    }
    batch_input = {"batch_id": request["batch_id"], "expires_in_seconds": 2_592_000, "org_id": request["org_id"]}
    empty_child = size({"Items": [], "BatchInput": batch_input})
    empty_payload = size({"Payload": {**batch_input, "chunk_index": 999_999_999, "users": []}})

    big = json.dumps({"note": "x" * 4070})
    # Every row's user_id has 7 digits: the two kinds of row have one size each (checked on one).
    row_size = {kind: size({"user_id": "user_0000000", "redirect_url": "", "metadata": kind}) for kind in ("", big)}
    assert row_size[big] == size({"user_id": "user_0999990", "redirect_url": "", "metadata": big})
    item_frame = len('{"index":,"user":}')  # the ItemSelector's {"index": n, "user": <row>}, less n and the row
    child_sizes, payload_sizes = [], []
    items = users = 0
    item_bytes = user_bytes = 0
    for index in range(1_000_000):
        user = row_size[big if index % 10 == 0 else ""]
        item = user + item_frame + len(str(index))
        if items and (items == max_items or empty_child + item_bytes + items + item > max_bytes):
            child_sizes.append(empty_child + item_bytes + items - 1)
            payload_sizes.append(empty_payload + user_bytes + items - 1)
            items = item_bytes = user_bytes = 0
        items += 1
        users += 1
        item_bytes += item
        user_bytes += user
    child_sizes.append(empty_child + item_bytes + items - 1)
    payload_sizes.append(empty_payload + user_bytes + items - 1)
    assert item_frame + 5 + row_size[""] == size(
        {"index": 12345, "user": {"user_id": "user_0012345", "redirect_url": "", "metadata": ""}}
    )

    assert users == 1_000_000
    assert len(child_sizes) > 1_000  # some batches are cut by bytes
    assert max(child_sizes) <= max_bytes < STATE_LIMIT
    assert max(payload_sizes) < STATE_LIMIT
    # A chunk's summary (the task's result) at its largest: 1,000 users, all failed, longest ids.
    settings = parse_settings({"TABLE_NAME": "t"})
    worst = [{"user_id": "\u00e9" * 256, "redirect_url": "javascript:x"} for _ in range(max_items)]
    plan = plan_batch(BatchRequest(request["batch_id"], users=tuple(worst), chunk=0), worst, settings)
    summary = unit_summary(BatchRequest(request["batch_id"], chunk=999_999_999), plan, [])
    assert summary["counts"]["failed"] == max_items
    assert size(summary) < STATE_LIMIT
    # The Map's output and the summary step's input: the same size for 1 chunk or 100,000.
    details = {"Bucket": RESULTS_BUCKET, "Key": f"{MAP_RUNS_PREFIX}{'0' * 36}/manifest.json"}
    assert size({**request, "map_run": {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": details}}) < STATE_LIMIT
    assert size({"batch_id": request["batch_id"], "map_results": details}) < STATE_LIMIT
    # The execution's output, the batch summary: counts only.
    chunks = tuple({"status": "completed", "counts": {"requested": 1, "minted": 1}} for _ in child_sizes)
    final = distributed_summary(FinalizeRequest(request["batch_id"], chunks), RESULTS_BUCKET)
    assert final["counts"]["requested"] == len(child_sizes)
    assert size(final) < 2048


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
