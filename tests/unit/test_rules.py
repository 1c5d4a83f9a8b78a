"""The local stack reads its EventBridge rules from template.yaml (``local.rules.template_rules``)."""

from __future__ import annotations

from typing import Any

import pytest

from local.async_invoke import AsyncConfig
from local.input_templates import json_path
from local.intrinsics import LOCAL_DEPLOY, Resolver, parameter_values
from local.rules import TargetSpec, input_for, template_rules
from local.template import load_template

ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"


def rules_of(template: dict[str, Any], parameters: dict[str, str] | None = None) -> list[Any]:
    deployed = {name: value for name, value in LOCAL_DEPLOY.items() if name in (template.get("Parameters") or {})}
    resolver = Resolver(
        template,
        parameter_values(template, {**deployed, **(parameters or {})}),
        ref_of=lambda logical_id: f"local-{logical_id}",
        att_of=lambda logical_id, attr: f"local-{logical_id}-{attr}",
    )

    def active(logical_id: str) -> bool:
        condition = template["Resources"][logical_id].get("Condition")
        return not condition or resolver.condition(condition)

    return template_rules(template, resolver, active=active, arn_of=ARN.format)


def test_the_templates_rules_come_with_their_patterns_and_targets() -> None:
    rules = {rule.origin: rule for rule in rules_of(load_template())}
    mint = rules["MintLinkFunction.Events.MintBatch"]
    assert mint.bus == "local-EventBus"
    assert mint.pattern == {"source": ["signin-links.batches"], "detail-type": ["MintSignInLinks"]}
    (target,) = mint.targets
    assert target.function == "MintLinkFunction"
    assert target.not_local() is None
    assert target.retry_attempts == 185
    assert target.dead_letter_arn == "local-BatchDeadLetterQueue-Arn"
    assert mint.not_local() is None

    distributed = rules["MintBatchStateMachine.Events.DistributedBatch"]
    assert distributed.targets[0].state_machine == "MintBatchStateMachine"
    assert "Step Functions" in (distributed.not_local() or "")


def test_a_parameter_in_a_pattern_is_resolved() -> None:
    rules = {rule.origin: rule for rule in rules_of(load_template(), {"BatchEventSource": "acme.batches"})}
    assert rules["MintLinkFunction.Events.MintBatch"].pattern["source"] == ["acme.batches"]


TEMPLATE: dict[str, Any] = {
    "Parameters": {"On": {"Type": "String", "Default": "yes"}},
    "Conditions": {"IsOn": {"Fn::Equals": [{"Ref": "On"}, "yes"]}},
    "Resources": {
        "Worker": {
            "Type": "AWS::Serverless::Function",
            "Condition": "IsOn",
            "Properties": {
                "Events": {
                    "Ping": {
                        "Type": "CloudWatchEvent",
                        "Properties": {
                            "Pattern": {"source": ["x"]},
                            "InputPath": "$.detail",
                            "DeadLetterConfig": {"Arn": "dlq-arn"},
                            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 60},
                        },
                    },
                    "Http": {"Type": "HttpApi", "Properties": {"Path": "/", "Method": "GET"}},
                }
            },
        },
        "Forward": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/default",
                "EventPattern": '{"source": ["aws.ses"]}',
                "Targets": [
                    {"Id": "bus", "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/mine", "RoleArn": "r"},
                    {"Id": "fn", "Arn": ARN.format("Worker"), "Input": '{"a": 1}'},
                ],
            },
        },
        "Nightly": {
            "Type": "AWS::Events::Rule",
            "Properties": {"ScheduleExpression": "rate(1 day)", "Targets": [{"Id": "t", "Arn": "x"}]},
        },
    },
}


def test_every_kind_of_rule_is_read() -> None:
    rules = {rule.logical_id: rule for rule in rules_of(TEMPLATE)}
    assert set(rules) == {"WorkerPing", "Forward", "Nightly"}
    ping = rules["WorkerPing"]
    assert ping.bus == "default"
    assert ping.targets[0].function == "Worker"
    assert (ping.targets[0].input_path, ping.targets[0].retry_attempts, ping.targets[0].max_event_age_s) == (
        "$.detail",
        3,
        60,
    )
    forward = rules["Forward"]
    assert forward.bus == "default"
    assert forward.pattern == {"source": ["aws.ses"]}
    bus, function = forward.targets
    assert bus.function is None
    assert bus.service == "events"
    assert bus.role_arn == "r"
    assert bus.not_local() is None
    assert function.function == "Worker"
    assert function.input == '{"a": 1}'
    assert "schedule" in (rules["Nightly"].not_local() or "")


def test_a_rule_of_a_resource_whose_condition_is_false_does_not_exist() -> None:
    rules = {rule.logical_id: rule for rule in rules_of(TEMPLATE, {"On": "no"})}
    assert "WorkerPing" not in rules
    (forward_function,) = [target for target in rules["Forward"].targets if target.arn == ARN.format("Worker")]
    assert forward_function.function is None  # no such function any more: an ordinary, unknown target


def test_async_invoke_config_defaults_are_lambdas() -> None:
    assert AsyncConfig.of({}) == AsyncConfig(2, 21600, None, None)
    config = AsyncConfig.of(
        {
            "EventInvokeConfig": {
                "MaximumRetryAttempts": 0,
                "MaximumEventAgeInSeconds": 60,
                "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": "q"}},
            },
            "DeadLetterQueue": {"Type": "SQS", "TargetArn": "d"},
        }
    )
    assert config == AsyncConfig(0, 60, "q", "d")


EVENT = {"id": "1", "detail": {"a": {"b": 2}}}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (TargetSpec("t", "arn"), EVENT),
        (TargetSpec("t", "arn", input='{"fixed": true}'), {"fixed": True}),
        (TargetSpec("t", "arn", input_path="$.detail"), {"a": {"b": 2}}),
        (TargetSpec("t", "arn", input_path="$.detail.a.b"), 2),
        (TargetSpec("t", "arn", input_path="$.detail.missing"), None),
        (TargetSpec("t", "arn", input_path="$"), EVENT),
    ],
)
def test_what_a_function_target_receives(target: TargetSpec, expected: Any) -> None:
    assert input_for(target, EVENT) == expected


def test_an_input_path_reads_indices_too() -> None:
    event = {"detail": {"items": [{"id": "a"}, {"id": "b"}]}}
    assert input_for(TargetSpec("t", "arn", input_path="$.detail.items[1].id"), event) == "b"
    assert input_for(TargetSpec("t", "arn", input_path="$.detail.items[2]"), event) is None


@pytest.mark.parametrize("path", ["$.detail[*]", "$..a", "detail", "$.detail[?(@.a)]", "$.detail[0:1]"])
def test_an_input_path_beyond_names_and_indices_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not supported locally"):
        json_path(EVENT, path)
    assert "not supported locally" in (TargetSpec("t", "arn", function="F", input_path=path).not_local() or "")
