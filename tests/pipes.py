"""The template's ``AuditPipe`` run in this process against the ``stack`` fixture's moto (integration
and robustness tests): ``local.pipes.PipeEmulator`` reading the table's stream, its enrichment the
real ``functions/audit_events`` handler, its target the stack's bus. ``drain()`` delivers what the
stream holds; an SQS queue subscribed to the bus (:func:`bus_queue`) shows what was delivered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from local.intrinsics import LOCAL_DEPLOY, Resolver, parameter_values
from local.pipes import PipeEmulator, PipeSpec
from local.template import load_template
from tests.conftest import REGION, Stack, load_function

PIPE = "AuditPipe"
ENRICHMENT_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:audit-events"


class _Context:
    function_name = "audit-events"
    aws_request_id = "pipe-request"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def audit_pipe(
    stack: Stack,
    *,
    events: Any = None,
    enrich: Callable[[str, list[dict[str, Any]]], Any] | None = None,
    sleep: Callable[[float], None] = lambda seconds: None,
    log: Callable[[str], None] | None = None,
) -> PipeEmulator:
    """``AuditPipe`` with its properties resolved against the fixture's resources."""
    template = load_template()
    table = stack.dynamodb.describe_table(TableName=stack.table_name)["Table"]
    bus = stack.events.describe_event_bus(Name=stack.env["EVENT_BUS_NAME"])
    attributes = {
        ("TokensTable", "StreamArn"): table["LatestStreamArn"],
        ("EventBus", "Arn"): bus["Arn"],
        ("AuditEventsFunction", "Arn"): ENRICHMENT_ARN,
    }
    resolver = Resolver(
        template,
        parameter_values(template, LOCAL_DEPLOY),
        ref_of=lambda name: f"local-{name}",
        att_of=lambda name, attr: attributes.get((name, attr), f"arn:aws:local:{REGION}:123456789012:{name}/{attr}"),
    )
    props = resolver.resolve(template["Resources"][PIPE]["Properties"])
    spec = PipeSpec.from_properties(PIPE, "audit-pipe", f"arn:aws:pipes:{REGION}:123456789012:pipe/audit-pipe", props)
    handler = load_function("audit_events").lambda_handler

    def enrichment(arn: str, batch: list[dict[str, Any]]) -> Any:
        assert arn in (ENRICHMENT_ARN, f"{ENRICHMENT_ARN}:live")  # the function, or its published alias
        return json.loads(json.dumps(handler(json.loads(json.dumps(batch)), _Context())))

    return PipeEmulator(
        spec,
        # moto in process knows streams.dynamodb.<region>, not botocore's account endpoint for an ARN
        streams=boto3.client("dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled")),
        events=events if events is not None else stack.events,
        enrich=enrich or enrichment,
        sleep=sleep,
        log=log,
    )


def bus_queue(stack: Stack, name: str = "audit") -> Callable[[], list[dict[str, Any]]]:
    """An SQS queue receiving every event with source ``signin-links`` on the stack's bus; the
    returned function reads (and removes) what has arrived, in order."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env["EVENT_BUS_NAME"]
    stack.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["signin-links"]}))
    stack.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return received
