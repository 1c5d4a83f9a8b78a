"""Operations around rotation: how template.yaml wires it and alarms, and the logs' correlation ids."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import jmespath
import pytest

from local import rotation as local_rotation
from local.template import load_template
from tests.conftest import Stack, load_event, load_function

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


def depends_on(name: str) -> set[str]:
    value = RESOURCES[name].get("DependsOn") or []
    return {value} if isinstance(value, str) else set(value)


# -- template.yaml ---------------------------------------------------------------------------------


def test_both_keyrings_rotate_on_creation_and_on_a_schedule_through_the_rotation_function() -> None:
    """The ticket signing and the session keyrings; not the retired HMAC one (nothing signs with it),
    nor the verification keyring (the signing keyring's rotation writes it)."""
    schedules = of_type("AWS::SecretsManager::RotationSchedule")
    rotated = {schedule["Properties"]["SecretId"]["Ref"]: schedule["Properties"] for schedule in schedules.values()}
    assert set(rotated) == {"TicketSigningKeyringSecret", "SessionKeyringSecret"}
    for props in rotated.values():
        assert props["RotationLambdaARN"] == {"Fn::GetAtt": ["RotateKeysFunction", "Arn"]}
        assert props["RotateImmediatelyOnUpdate"] is True
        assert props["RotationRules"]["ScheduleExpression"] == {"Ref": "KeyRotationSchedule"}
    for name in schedules:  # Secrets Manager may invoke the function as soon as the schedule exists
        assert "RotateKeysPermission" in depends_on(name)


def test_serving_functions_are_created_after_their_keyrings_rotation_started() -> None:
    assert "TicketSigningKeyringRotationSchedule" in depends_on("MintLinkFunction")
    # The accept reads the public keys the signing keyring's first rotation publishes.
    assert {"TicketSigningKeyringRotationSchedule", "SessionKeyringRotationSchedule"} <= depends_on(
        "AcceptTokenFunction"
    )


def test_rotation_function_is_least_privileged() -> None:
    permission = RESOURCES["RotateKeysPermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["FunctionName"] == {"Fn::GetAtt": ["RotateKeysFunction", "Arn"]}
    (policy,) = RESOURCES["RotateKeysFunction"]["Properties"]["Policies"]
    statement, publish, keys = policy["Statement"]
    # Both keyrings are encrypted with customer-managed keys: read and write them through Secrets Manager.
    assert sorted(keys["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert keys["Resource"] == [
        {"Fn::GetAtt": ["TicketSigningKeyringKey", "Arn"]},
        {"Fn::GetAtt": ["SessionKeyringKey", "Arn"]},
    ]
    # The public keys: written at setSecret, read back at testSecret (the AWS managed key encrypts them).
    assert sorted(publish["Action"]) == ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    assert publish["Resource"] == {"Ref": "TicketVerificationKeyringSecret"}
    assert sorted(statement["Action"]) == [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    ]
    assert statement["Resource"] == [{"Ref": "TicketSigningKeyringSecret"}, {"Ref": "SessionKeyringSecret"}]


def test_rotation_timing_settings_reach_every_function() -> None:
    # The JWKS cache lifetime (accept) and the rotation both derive from the activation delay.
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["KEY_ACTIVATION_MARGIN_SECONDS"] == {"Ref": "KeyActivationMarginSeconds"}
    assert env["SECRETS_MAX_AGE_SECONDS"] == {"Ref": "SecretsMaxAgeSeconds"}
    accept_env = RESOURCES["AcceptTokenFunction"]["Properties"]["Environment"]["Variables"]
    rotate_env = RESOURCES["RotateKeysFunction"]["Properties"]["Environment"]["Variables"]
    assert rotate_env["SESSION_LIFETIME_SECONDS"] == accept_env["SESSION_LIFETIME_SECONDS"]


def watched_metrics(props: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(namespace, metric, dimensions) of an alarm: its one metric, or each metric of its math."""
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], props.get("Dimensions", []))]
    found = []
    for metric in props["Metrics"]:
        if "MetricStat" in metric:
            watched = metric["MetricStat"]["Metric"]
            found.append((watched["Namespace"], watched["MetricName"], watched.get("Dimensions", [])))
    return found


def test_every_function_has_errors_and_throttles_alarms() -> None:
    watched: dict[str, set[str]] = {}
    for alarm in of_type("AWS::CloudWatch::Alarm").values():
        for namespace, metric, dimensions in watched_metrics(alarm["Properties"]):
            if namespace == "AWS/Lambda" and dimensions:
                (dimension,) = dimensions
                watched.setdefault(dimension["Value"]["Ref"], set()).add(metric)
    for function in of_type("AWS::Serverless::Function"):
        if function == "EmptyResultsBucketFunction":
            continue  # runs only inside a stack operation, whose own failure reports it
        assert watched.get(function, set()) >= {"Errors", "Throttles"}, function


def test_api_5xx_alarm_and_every_alarm_notify_the_optional_topic() -> None:
    alarms = of_type("AWS::CloudWatch::Alarm")
    api = [
        (metric, dimensions[0]["Value"])
        for alarm in alarms.values()
        for namespace, metric, dimensions in watched_metrics(alarm["Properties"])
        if namespace == "AWS/ApiGateway"
    ]
    assert ("5xx", {"Ref": "HttpApi"}) in api
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == topic, name
    assert TEMPLATE["Parameters"]["AlarmTopicArn"]["Default"] == ""


# -- correlation ids -------------------------------------------------------------------------------


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every line the service logger writes, as the JSON Lambda would put in CloudWatch."""
    from signin_links.observability import logger

    records: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    yield records
    target.removeHandler(handler)


def test_mint_and_accept_log_the_api_request_id_as_correlation_id(
    stack: Stack, context: Any, log_records: list[dict[str, Any]]
) -> None:
    mint_event = load_event("create_sign_in_token.json")
    minted = json.loads(load_function("mint_link").lambda_handler(mint_event, context)["body"])
    (line,) = [r for r in log_records if r["message"] == "sign-in token minted"]
    assert line["correlation_id"] == mint_event["requestContext"]["requestId"]
    assert line["sign_in_token_id"] == minted["id"]

    accept_event = load_event("accept_token_post.json")
    accept_event["body"] = f"token={minted['token']}"
    log_records.clear()
    load_function("accept_token").lambda_handler(accept_event, context)
    assert log_records, "accept logged nothing"
    assert {r["correlation_id"] for r in log_records} == {accept_event["requestContext"]["requestId"]}


def test_a_batch_event_logs_its_batch_id_as_correlation_id(
    stack: Stack, context: Any, log_records: list[dict[str, Any]]
) -> None:
    event = load_event("mint_batch.json")
    summary = load_function("mint_link").lambda_handler(event, context)
    assert summary["counts"]["minted"] == len(event["detail"]["users"])
    assert log_records, "the batch logged nothing"
    assert {r["correlation_id"] for r in log_records} == {event["detail"]["batch_id"]}


def test_batches_correlate_on_their_batch_id() -> None:
    path = load_function("mint_link").CORRELATION_ID_PATH
    eventbridge = {"id": "7f3c-event", "detail-type": "MintSignInLinks", "detail": {"batch_id": "wave-42"}}
    chunk = {"batch_id": "wave-42", "chunk_index": 3, "users": []}
    http = load_event("create_sign_in_token.json")
    assert jmespath.search(path, eventbridge) == "wave-42"
    assert jmespath.search(path, chunk) == "wave-42"
    assert jmespath.search(path, http) == http["requestContext"]["requestId"]
    assert jmespath.search(path, {"id": "7f3c-event", "detail": {}}) == "7f3c-event"


def test_rotation_steps_log_their_client_request_token(
    stack: Stack, context: Any, log_records: list[dict[str, Any]]
) -> None:
    secret_id = stack.env["TICKET_SIGNING_KEYRING_SECRET_ID"]
    token = local_rotation.begin_rotation(secret_id)
    event = {"SecretId": secret_id, "ClientRequestToken": token, "Step": "createSecret"}
    before = int(time.time())
    load_function("rotate_keys").lambda_handler(event, context)
    created = next(r for r in log_records if r["message"] == "pending keyring created")
    assert created["correlation_id"] == token
    assert created["step"] == "createSecret"
    assert created["secret_id"] == secret_id
    assert created["activates_at"] >= before + 600  # logged ids and times, never key material
    assert {r["correlation_id"] for r in log_records} == {token}
