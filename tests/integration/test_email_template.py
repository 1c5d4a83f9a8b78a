"""template.yaml's email fan-out, read as CloudFormation will see it: the email queue between the bus
and the sender, its event source mapping, the arithmetic behind its settings, the parameters that
size it, and the sender's permissions."""

from __future__ import annotations

from typing import Any

import pytest

from signin_links.email_queue import MAX_RECEIVE_COUNT, SEND_MARGIN_S, survival_seconds
from tests.cloudformation import (
    PARAMETERS,
    SOURCE,
    actions,
    resolver,
    statements,
    translated,
    violations,
)

RESOURCES: dict[str, Any] = SOURCE["Resources"]
QUEUE = RESOURCES["EmailQueue"]["Properties"]
DLQ = RESOURCES["EmailDeadLetterQueue"]["Properties"]
MAPPING = RESOURCES["SendLinkEmailQueueMapping"]["Properties"]
FUNCTION = RESOURCES["SendLinkEmailFunction"]["Properties"]
ENVIRONMENT = FUNCTION["Environment"]["Variables"]

NEW_ACCOUNT_RATE = 14  # emails/s: SES's sending rate for a new account out of the sandbox
SANDBOX_RATE = 1
WAVE = 1_000_000


def default(parameter: str) -> int:
    return int(PARAMETERS[parameter]["Default"])


def test_every_minted_link_goes_to_the_email_queue_never_straight_to_the_function() -> None:
    rule = RESOURCES["LinkMintedRule"]["Properties"]
    assert rule["EventPattern"] == {"source": ["signin-links"], "detail-type": ["SignInLinkMinted"]}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EmailDeadLetterQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
    assert not any(event["Type"] == "EventBridgeRule" for event in FUNCTION.get("Events", {}).values())
    # Only that rule may send to the queue.
    (statement,) = RESOURCES["EmailQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["LinkMintedRule", "Arn"]}}}


def test_a_million_user_batch_at_a_new_accounts_rate_fits_in_the_queues_retention() -> None:
    """The whole wave waits in the queue: 1,000,000 emails at 14/s is ~20 h, well inside 14 days,
    and the event age of Lambda's asynchronous queue (6 h, which lost ~700,000 of them) is gone."""
    seconds = WAVE / NEW_ACCOUNT_RATE
    assert seconds == pytest.approx(19.8 * 3600, rel=0.01)
    assert QUEUE["MessageRetentionPeriod"] == 14 * 24 * 3600  # SQS's maximum
    assert seconds < QUEUE["MessageRetentionPeriod"] / 10
    assert DLQ["MessageRetentionPeriod"] == QUEUE["MessageRetentionPeriod"]  # a moved message keeps its age


def test_a_message_reaches_the_dead_letter_queue_only_after_a_day_of_refusals() -> None:
    redrive = QUEUE["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["EmailDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT  # the function's arithmetic is the template's
    assert survival_seconds(redrive["maxReceiveCount"]) >= 19 * 3600
    assert survival_seconds(redrive["maxReceiveCount"]) < QUEUE["MessageRetentionPeriod"]


def test_the_mapping_invokes_the_live_alias_in_bounded_batches_at_bounded_concurrency() -> None:
    assert MAPPING["FunctionName"] == {"Ref": "SendLinkEmailFunction.Alias"}
    assert MAPPING["EventSourceArn"] == {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert MAPPING["BatchSize"] == {"Ref": "EmailBatchSize"}
    assert MAPPING["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert MAPPING["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "EmailMaximumConcurrency"}}
    assert ENVIRONMENT["EMAIL_MAXIMUM_CONCURRENCY"] == {"Ref": "EmailMaximumConcurrency"}  # the pace's divisor
    assert ENVIRONMENT["EMAIL_SEND_RATE"] == {"Ref": "EmailSendRate"}
    assert ENVIRONMENT["EMAIL_QUEUE_URL"] == {"Ref": "EmailQueue"}
    # No reserved concurrency: the mapping would receive batches the function could not take.
    assert "ReservedConcurrentExecutions" not in FUNCTION


def test_a_batch_fits_its_invocation_at_the_default_concurrency_whatever_the_accounts_rate() -> None:
    """Each invocation sends its batch at its share of the rate: EmailBatchSize * EmailMaximumConcurrency
    / rate seconds. At the defaults even the sandbox's 1 email/s fits the timeout, less the margin
    the function keeps; at 14/s a batch is ~1.4 s."""
    timeout = FUNCTION["Timeout"]
    batch, concurrency = default("EmailBatchSize"), default("EmailMaximumConcurrency")
    assert batch * concurrency / SANDBOX_RATE <= timeout - SEND_MARGIN_S
    assert batch * concurrency / NEW_ACCOUNT_RATE < 1.5
    assert QUEUE["VisibilityTimeout"] >= 6 * timeout  # Lambda's advice for an SQS event source
    # A claim outlives any invocation: nobody takes over a live claim.
    assert int(ENVIRONMENT["EMAIL_CLAIM_TIMEOUT_SECONDS"]) >= 2 * timeout


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        ("EmailSendRate", ["0", "1", "14", "99999"], ["-1", "1.5", "14/s", "0014", "100000", ""]),
        ("EmailMaximumConcurrency", ["2", "10", "999", "1000"], ["0", "1", "1001", "2.5", "", "02"]),
        ("EmailBatchSize", ["1", "5", "10"], ["0", "11", "100", "1.0", ""]),
    ],
)
def test_impossible_pacing_values_fail_the_deploy_saying_what_is_allowed(
    parameter: str, good: list[str], bad: list[str]
) -> None:
    for value in good:
        assert violations({parameter: value}) == [], value
    for value in bad:
        assert violations({parameter: value}) == [parameter], value
    assert "must be" in PARAMETERS[parameter]["ConstraintDescription"]


def test_the_sender_reads_the_quota_and_its_own_queue_only() -> None:
    template = translated()
    role = template["Resources"]["SendLinkEmailFunctionRole"]["Properties"]
    # SAM's SQS event would attach AWSLambdaSQSQueueExecutionRole: every queue of the account.
    assert not any("SQS" in str(arn) for arn in role.get("ManagedPolicyArns", []))
    found = {statement.get("Sid"): statement for statement in statements(template, "SendLinkEmailFunctionRole")}
    queue = found["ConsumeTheEmailQueue"]
    assert sorted(actions(queue)) == sorted(
        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    )
    assert queue["Resource"] == {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert actions(found["ReadTheSendingQuota"]) == ["ses:GetAccount"]  # no resource-level permission exists
    markers = found["EmailMarkers"]
    assert "dynamodb:BatchWriteItem" in actions(markers)  # "sent" markers, ten at a time
    assert markers["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["email#*"]}}
    sqs_anywhere = [
        s for s in statements(template, "SendLinkEmailFunctionRole") if any(a.startswith("sqs:") for a in actions(s))
    ]
    assert all(s["Resource"] != "*" for s in sqs_anywhere)


def test_the_email_alarms_watch_the_queue_and_the_dead_letter_queue() -> None:
    evaluate = resolver(SOURCE, EmailSender="links@example.com")
    stalled = evaluate.resolve(RESOURCES["EmailQueueStalledAlarm"]["Properties"])
    metrics = {m["Id"]: m for m in stalled["Metrics"]}
    assert {metrics[i]["MetricStat"]["Metric"]["MetricName"] for i in ("visible", "inflight", "deleted")} == {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "NumberOfMessagesDeleted",
    }
    assert stalled["EvaluationPeriods"] * 300 == 1800  # 30 minutes without a single email done
    age = RESOURCES["EmailQueueAgeAlarm"]["Properties"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert WAVE / NEW_ACCOUNT_RATE < age["Threshold"] < QUEUE["MessageRetentionPeriod"]  # a wave is not an alarm
    assert RESOURCES["EmailDeadLetterAlarm"]["Properties"]["Threshold"] == 1
