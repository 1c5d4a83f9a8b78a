"""template.yaml as CloudFormation will see it: translated by samtranslator, linted by cfn-lint,
its parameter constraints and rules evaluated, its IAM, key and bus policies read statement by
statement, and its non-Lambda resources created on moto's CloudFormation.

Nothing here needs AWS: samtranslator and cfn-lint run offline, and the SAM CLI check runs only
where ``make validate``/``make build`` installed SAM CLI (``.venv-sam``; CI does both first).
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from local.intrinsics import Resolver, parameter_values
from local.template import TEMPLATE
from signin_links import ids
from signin_links.batch.minter import IDEMPOTENCY_KEY_PREFIX
from signin_links.batch.plan import header_key, marker_key
from signin_links.config import MIN_ACTIVATION_MARGIN_SECONDS
from signin_links.rotation.policy import ACTIVATION_MARGIN_SECONDS
from tests.cloudformation import (
    ACCOUNT,
    DEPLOY,
    PARAMETERS,
    REGION,
    SOURCE,
    STACK,
    actions,
    resolver,
    role_arn,
    statements,
    translated,
    violations,
)

ROOT = TEMPLATE.parent
SERVING = ("MintLinkFunction", "AcceptTokenFunction")

# --- Lint, translation, the guided deploy ---------------------------------------------------------


def test_cfn_lint_with_informational_checks_finds_nothing() -> None:
    """cfn-lint translates the template with samtranslator and checks every condition combination
    (E3004 is the circular-dependency check: key policy -> role -> secret -> key must not close)."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE, config=ManualArgs(include_checks=["I"], regions=[REGION]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_template_translates_for_both_stages(stage: str) -> None:
    template = translated(stage)
    assert "Transform" not in template or template["Transform"] == ["AWS::LanguageExtensions"]
    aliases = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Alias"}
    assert {r["Properties"]["Name"] for r in aliases.values()} == {"live"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_resource_depends_on_itself(stage: str) -> None:
    """CloudFormation counts every reference in a resource, UpdatePolicy included (cfn-lint's E3004
    does not look there): an API alarm in a DeploymentPreference closes alias -> deployment group ->
    alarm -> API -> alias."""
    from local.intrinsics import references

    resources = translated(stage)["Resources"]
    edges = {}
    for logical_id, resource in resources.items():
        depends = resource.get("DependsOn") or []
        mentioned = references({k: v for k, v in resource.items() if k != "Type"}) | set(
            [depends] if isinstance(depends, str) else depends
        )
        edges[logical_id] = {name for name in mentioned if name in resources and name != logical_id}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, " -> ".join([*path[path.index(node) :], node])
        if node in done:
            return
        for target in sorted(edges[node]):
            visit(target, [*path, node])
        done.add(node)

    for logical_id in resources:
        visit(logical_id, [])


def test_the_http_api_declares_that_its_routes_have_no_api_gateway_authorizer() -> None:
    """What SAM CLI's guided deploy reads (samcli/commands/deploy/auth_utils.py): an HttpApi with an
    Auth property counts as configured, so it no longer asks "... has no authentication. Is this
    okay?" (default No, which aborted the deploy) once per function."""
    api = SOURCE["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"] == {"EnableIamAuthorizer": False}
    for function in SERVING:
        for event in SOURCE["Resources"][function]["Properties"]["Events"].values():
            if event["Type"] == "HttpApi":
                assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}


SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
AUTH_PER_RESOURCE = """
import json, sys
from samcli.commands.deploy.auth_utils import auth_per_resource
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
region = {"AWS::Region": "us-east-1"}
stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], parameter_overrides={}, global_parameter_overrides=region)
print(json.dumps(auth_per_resource(stacks)))
"""


@pytest.mark.skipif(not SAM_PYTHON.exists(), reason="SAM CLI is not installed here (make validate installs it)")
def test_sam_cli_guided_deploy_asks_no_authentication_question() -> None:
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", AUTH_PER_RESOURCE, str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert {name for name, _ in answers} >= set(SERVING)
    assert [name for name, configured in answers if not configured] == []  # nothing to ask


GUIDED_DEPLOY = """
import sys
import samcli.commands.deploy.guided_context as guided

class Reached(Exception):
    pass

def first_aws_call(*args, **kwargs):
    raise Reached

guided.manage_stack = first_aws_call  # looks up SAM CLI's bucket: every prompt has been answered
context = guided.GuidedContext(
    template_file=sys.argv[1], stack_name="signin-links-dev", s3_bucket=None, image_repository=None,
    image_repositories=None, s3_prefix=None, region="us-east-1", confirm_changeset=True,
    capabilities=("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"), parameter_overrides={"Stage": "dev"},
    disable_rollback=False,
)
try:
    context.guided_prompts(guided.get_template_parameters(template_file=sys.argv[1]))
except Reached:
    print("\\nREACHED the deployment step")
"""


@pytest.mark.skipif(not SAM_PYTHON.exists(), reason="SAM CLI is not installed here (make validate installs it)")
def test_sam_deploy_guided_reaches_the_deployment_when_every_answer_is_the_default() -> None:
    """`sam deploy --guided` with Enter pressed at every prompt (samconfig.toml's values as the
    CLI passes them), up to the first AWS call. Before the template declared its auth, the first
    "... has no authentication. Is this okay? [y/N]" aborted it: Security Constraints Not Satisfied."""
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", GUIDED_DEPLOY, str(TEMPLATE)],
        input="\n" * 200,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "has no authentication" not in done.stdout
    assert "REACHED the deployment step" in done.stdout.splitlines(), done.stdout[-2000:]


def test_samconfig_deploys_each_stage_without_questions() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env, stage in (("default", "dev"), ("dev", "dev"), ("prod", "prod")):
        sections = config[env]
        assert sections["global"]["parameters"]["region"], env
        assert sections["global"]["parameters"]["stack_name"], env
        assert sections["build"]["parameters"]["cached"] is True, env
        deploy = sections["deploy"]["parameters"]
        assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}, env
        assert deploy["resolve_s3"] is True, env
        assert f"Stage={stage}" in deploy["parameter_overrides"], env
        assert sections["validate"]["parameters"]["lint"] is True, env
        overrides = dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))
        # prod refuses to deploy until the owner names the topic its alarms notify (no placeholder)
        assert violations(overrides) == ([] if stage == "dev" else ["ProdNeedsAlarmTopic"]), env
    assert (
        config["default"]["global"]["parameters"]["stack_name"] != config["prod"]["global"]["parameters"]["stack_name"]
    )


# --- Parameters that cannot work fail the deploy ------------------------------------------------------


GOOD_ARN = f"arn:aws:iam::{ACCOUNT}:role/batch-producer"


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        ("ThrottleRateLimit", ["1", "100", "10000"], ["0", "-5", "10001"]),
        ("ThrottleBurstLimit", ["1", "200", "5000"], ["0", "-1", "5001"]),
        ("PublicRouteRateLimit", ["1", "1000", "10000"], ["0", "10001"]),
        ("PublicRouteBurstLimit", ["1", "2000", "5000"], ["0", "5001"]),
        ("TableWarmWriteUnitsPerSecond", ["0", "4000", "8000", "40000"], ["1", "3999", "40001", "-1", "8k", "08000"]),
        ("KeyActivationMarginSeconds", ["60", "300"], ["59", "0"]),
        ("SecretsMaxAgeSeconds", ["60", "300"], ["59"]),
        ("MaxExpiresInSeconds", ["1", "600"], ["0"]),
        ("SessionLifetimeSeconds", ["60"], ["59"]),
        ("ResultsRetentionDays", ["1"], ["0"]),
        ("WafRateLimitPerIp", ["10", "300"], ["9", "0"]),
        (
            "AlarmTopicArn",
            ["", f"arn:aws:sns:eu-west-1:{ACCOUNT}:alarms"],
            ["alarms", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q"],
        ),
        (
            "CertificateArn",
            ["", f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/ab-12"],
            ["certificate/ab", f"arn:aws:iam::{ACCOUNT}:server-certificate/x"],
        ),
        (
            "MintPrincipalArns",
            ["", GOOD_ARN, f"{GOOD_ARN},arn:aws:iam::{ACCOUNT}:role/team/*"],
            ["producer", f"{GOOD_ARN}, {GOOD_ARN}", f"{GOOD_ARN},"],
        ),
        ("KeyringReaderArns", ["", GOOD_ARN], ["*", "arn:aws:s3:::bucket"]),
        (
            "WebAclArn",
            ["", f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/edge/0a1b-2c"],
            [f"arn:aws:wafv2:eu-west-1:{ACCOUNT}:regional/webacl/x/1"],
        ),
        (
            "AllowedRedirectOrigins",
            ["", "https://app.example.com", "https://a.example.com,http://127.0.0.1:3000"],
            ["app.example.com", "https://app.example.com/path", "ftp://x"],
        ),
        ("DefaultRedirectUrl", [""], ["app.example.com/", "javascript:alert(1)"]),
        (
            "AcceptBaseUrl",
            ["", "https://app.example.com", "https://app.example.com/auth"],
            ["app.example.com", "https://x/?q=1", "https://x/#f"],
        ),
        ("SessionIssuer", ["", "https://issuer.example.com"], ["issuer"]),
        ("CustomDomainName", ["", "login.example.com"], ["https://login.example.com", "login", "-x.example.com"]),
        ("SessionCookieDomain", ["", "example.com"], [".example.com", "example.com/"]),
        ("HostedZoneId", ["", "Z0123456789ABC"], ["0123", "zone"]),
        ("KeyRotationSchedule", ["rate(30 days)", "cron(0 3 1 * ? *)"], ["30 days", "monthly"]),
        ("BatchEventSource", ["signin-links.batches", "com.example.batches"], ["", "has space"]),
        ("ManifestBucketName", ["", "my-manifests"], ["My_Bucket", "ab"]),
        ("CostCenter", ["signin-links", "team-42"], ["", "x" * 257]),
        ("LogLevel", ["DEBUG", "INFO", "WARN", "ERROR"], ["TRACE", "info"]),
        ("EdgeProtection", ["none", "cloudfront-waf"], ["waf"]),
        ("AcceptConfirmation", ["never", "cross-site", "always"], ["sometimes", "Never", ""]),
        ("RefreshReuseGraceSeconds", ["0", "10", "60"], ["-1", "61"]),
        ("MaxSessionTokenSeconds", ["5", "600", "3600"], ["4", "3601"]),
        ("Stage", ["dev", "prod"], ["staging"]),
        ("AppName", ["", "Acme", "Caf\u00e9 & Co.", "\u30a2\u30af\u30e1", "x" * 64], ["<b>Acme</b>", "A\nB", "x" * 65]),
        ("BrandColor", ["#2563eb", "#0B5FFF", "#000000"], ["", "blue", "#fff", "2563eb", "#2563eg", "#2563eb00"]),
        (
            "LogoUrl",
            ["", "https://cdn.example.com/logo.png", "https://cdn.example.com/a/logo.svg?v=2"],
            [
                "http://cdn.example.com/logo.png",
                "javascript:alert(1)",
                "data:image/png;base64,AA",
                "logo.png",
                "https://cdn.example.com/a b.png",
                'https://x/"onerror="',
            ],
        ),
        ("SupportUrl", ["", "https://example.com/help"], ["mailto:help@example.com", "http://example.com/help"]),
        ("SupportEmail", ["", "help@example.com", "first.last+links@mail.example.co"], ["help", "a@b", "<a@b.c>"]),
        ("DefaultLanguage", ["en", "de", "fr", "es", "pt-BR", "ja", "ar"], ["", "pt", "EN", "zh"]),
        ("PageTemplateDir", ["", "/opt/page-templates"], ["opt/page-templates", "/opt/my pages"]),
        ("LinkRenewal", ["auto", "application", "off"], ["email", "", "on"]),
    ],
)
def test_each_parameter_constraint_accepts_good_values_and_refuses_bad_ones(
    parameter: str, good: list[str], bad: list[str]
) -> None:
    for value in good:
        assert parameter not in violations({parameter: value}), value
    for value in bad:
        assert violations({parameter: value}) == [parameter], value


@pytest.mark.parametrize(
    ("rule", "bad", "good"),
    [
        (
            "CustomDomainNeedsCertificate",
            {"CustomDomainName": "login.example.com"},
            {
                "CustomDomainName": "login.example.com",
                "CertificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/a",
            },
        ),
        ("CertificateNeedsCustomDomain", {"CertificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/a"}, {}),
        (
            "HostedZoneNeedsCustomDomain",
            {"HostedZoneId": "Z0123456789ABC"},
            {
                "HostedZoneId": "Z0123456789ABC",
                "CustomDomainName": "login.example.com",
                "CertificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/a",
            },
        ),
        ("BatchSourceIsNotTheStacksOwn", {"BatchEventSource": "signin-links"}, {"BatchEventSource": "signin-links.x"}),
        (
            "WebAclNeedsEdgeProtection",
            {"WebAclArn": f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/edge/0a1b"},
            {
                "WebAclArn": f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/edge/0a1b",
                "EdgeProtection": "cloudfront-waf",
            },
        ),
        (
            "ProdNeedsAlarmTopic",
            {"Stage": "prod"},
            {"Stage": "prod", "AlarmTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms"},
        ),
        (
            "DefaultRedirectNeedsOrigins",
            {"DefaultRedirectUrl": "https://app.example.com/"},
            {"DefaultRedirectUrl": "https://app.example.com/", "AllowedRedirectOrigins": "https://app.example.com"},
        ),
    ],
)
def test_each_rule_refuses_a_combination_that_cannot_work(rule: str, bad: dict[str, str], good: dict[str, str]) -> None:
    assert violations(bad) == [rule]
    assert violations(good) == []


def test_the_stacks_own_web_acl_needs_the_stack_in_us_east_1() -> None:
    edge = {"EdgeProtection": "cloudfront-waf"}
    assert violations(edge, region="us-east-1") == []
    assert violations(edge, region="eu-west-1") == ["EdgeWebAclNeedsUsEast1"]
    acl = f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/edge/0a1b"
    assert violations({**edge, "WebAclArn": acl}, region="eu-west-1") == []


def test_every_rule_and_constraint_says_what_is_wrong() -> None:
    assert violations({}) == []  # the defaults deploy
    for name, spec in PARAMETERS.items():
        if {"AllowedPattern", "MinValue", "MaxValue"} & set(spec):
            assert len(spec.get("ConstraintDescription", "")) > 20, name
    for name, rule in SOURCE["Rules"].items():
        for assertion in rule["Assertions"]:
            assert len(assertion.get("AssertDescription", "")) > 20, name


def test_the_stage_has_no_default_so_no_update_can_silently_turn_prod_into_dev() -> None:
    """A Default would be used by an update that omits Stage (CloudFormation's UpdateStack, a console
    update, another tool): prod's Retain policies, deletion protection and log retention would go."""
    from local.intrinsics import TemplateError

    assert "Default" not in PARAMETERS["Stage"]
    with pytest.raises(TemplateError, match="Stage has no Default"):
        parameter_values(SOURCE)
    assert "Stage" in violations({"Stage": ""})
    for name, spec in PARAMETERS.items():  # every other parameter may be left out
        assert "Default" in spec or name == "Stage", name


def test_no_activation_delay_below_the_secrets_max_age_plus_sixty_seconds_can_be_expressed() -> None:
    """CloudFormation cannot add two parameters, so the template takes a margin, not a delay."""
    assert "KeyActivationDelaySeconds" not in PARAMETERS
    margin = PARAMETERS["KeyActivationMarginSeconds"]
    assert margin["MinValue"] == MIN_ACTIVATION_MARGIN_SECONDS == ACTIVATION_MARGIN_SECONDS == 60
    env = SOURCE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["KEY_ACTIVATION_MARGIN_SECONDS"] == {"Ref": "KeyActivationMarginSeconds"}
    assert "KEY_ACTIVATION_DELAY_SECONDS" not in env


# --- Capacity: throttles -------------------------------------------------------------------------------


def route_settings(stage: str = "dev") -> tuple[dict[str, Any], dict[str, Any]]:
    """The HTTP API stage's DefaultRouteSettings and RouteSettings, as SAM hands them to CloudFormation."""
    (stage_resource,) = [r for r in translated(stage)["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    props = stage_resource["Properties"]
    return props["DefaultRouteSettings"], props["RouteSettings"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_public_route_has_its_own_wave_sized_throttle_and_v1_the_default(stage: str) -> None:
    """A wave's clicks, open tabs and sign-outs get the public limits (1,000/s, bursts of 2,000) on a
    bucket of their own per route; /v1 (the app's backend) keeps the default limits. Every key
    names a real route (a key API Gateway does not know throttles nothing), and no public route is
    left on the /v1 default."""
    from local.template import http_routes

    default, per_route = route_settings(stage)
    assert default["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert default["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    routes = {f"{r.method} {r.path}" for r in http_routes()}
    # Clerk's Frontend API is under /v1 but public: browsers call it (sign-ins, a token per open tab).
    public = {
        f"{r.method} {r.path}"
        for r in http_routes()
        if not r.path.startswith("/v1/") or r.function == "ClerkFrontendFunction"
    }
    assert set(per_route) <= routes, set(per_route) - routes
    assert set(per_route) == public
    for key, settings in per_route.items():
        assert settings == {
            "ThrottlingRateLimit": {"Ref": "PublicRouteRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "PublicRouteBurstLimit"},
            "DetailedMetricsEnabled": True,  # on the route itself, not left to inheritance: the route alarms need it
        }, key
    assert {"POST /accept-token", "GET /accept-token", "POST /session/refresh", "GET /session.js"} <= public
    values = parameter_values(SOURCE, {"Stage": stage})
    assert (int(values["PublicRouteRateLimit"]), int(values["PublicRouteBurstLimit"])) == (1000, 2000)
    assert int(values["ThrottleRateLimit"]) < int(values["PublicRouteRateLimit"])


# --- Alarms: one for every way a wave fails ---------------------------------------------------------


def alarms() -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in SOURCE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def metric_stats(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Id -> the metric (namespace, name, dimensions) of each MetricStat of a metric-math alarm."""
    return {m["Id"]: m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m}


def fires(props: dict[str, Any], **values: float) -> bool:
    """Whether a metric-math alarm fires for one period's values, its expression evaluated as
    CloudWatch does for these operators (IF, AND, comparisons as 1/0, SERVICE_QUOTA of a metric)."""
    (expression,) = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
    python = expression.replace(" AND ", " and ").replace("IF(", "_if(")
    names = {"_if": lambda test, yes, no: yes if test else no, "SERVICE_QUOTA": lambda _metric: values["quota"]}
    value = float(eval(python, {"__builtins__": {}}, {**names, **values}))
    assert props["ComparisonOperator"] in ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold")
    if props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold":
        return value >= props["Threshold"]
    return value > props["Threshold"]


def test_canary_rollback_alarms_fire_on_an_error_rate_not_on_one_error_at_high_volume() -> None:
    """The deployment groups' alarms: at least 3 errors a minute and at least 0.1% of invocations,
    per minute (a 5-minute canary must see them within its 5 minutes)."""
    template = SOURCE["Resources"]
    rollback = {
        name: resource["Properties"]["DeploymentPreference"]["Alarms"]
        for name, resource in template.items()
        if resource["Type"] == "AWS::Serverless::Function" and "DeploymentPreference" in resource["Properties"]
    }
    assert set(rollback) >= {"MintLinkFunction", "AcceptTokenFunction", "SessionsFunction"}
    for function, refs in rollback.items():
        for ref in refs:
            props = alarms()[ref["Ref"]]
            stats = metric_stats(props)
            assert {m["MetricName"] for m in stats.values()} == {"Errors", "Invocations"}, ref
            for metric in stats.values():
                assert metric["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
            assert {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m} == {60}
            assert not fires(props, errors=1, invocations=60_000)  # one error at 1,000/s
            assert not fires(props, errors=2, invocations=10)  # two errors at a trickle
            assert not fires(props, errors=50, invocations=60_000)  # 0.08%: below the rate
            assert fires(props, errors=6_000, invocations=60_000)  # a canary failing all of its 10%
            assert fires(props, errors=3, invocations=100)


def test_api_5xx_is_a_rate_with_a_minimum_volume() -> None:
    props = alarms()["HttpApi5xxAlarm"]
    assert {m["MetricName"] for m in metric_stats(props).values()} == {"5xx", "Count"}
    assert not fires(props, errors=1, requests=300_000)
    assert not fires(props, errors=4, requests=4)
    assert not fires(props, errors=2_000, requests=300_000)  # 0.67%
    assert fires(props, errors=5, requests=100)
    assert fires(props, errors=3_000, requests=300_000)


def test_throttled_requests_are_counted_from_the_access_log_and_alarm_as_a_rate() -> None:
    """HTTP APIs publish no 429 metric: a metric filter on the access log's status field counts them."""
    resources = SOURCE["Resources"]
    access_log = resources["HttpApi"]["Properties"]["AccessLogSettings"]
    sample = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access_log["Format"]))
    assert sample["status"] == "x"  # a JSON string field: the pattern compares it with a quoted "429"
    assert '"status":"$context.status"' in access_log["Format"]
    assert access_log["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]}
    flt = resources["HttpApiThrottledRequestsFilter"]["Properties"]
    assert flt["LogGroupName"] == {"Ref": "HttpApiAccessLogs"}
    assert flt["FilterPattern"] == '{ $.status = "429" }'
    (transform,) = flt["MetricTransformations"]
    props = alarms()["HttpApiThrottledAlarm"]
    throttled = metric_stats(props)["throttled"]
    assert (throttled["Namespace"], throttled["MetricName"]) == (transform["MetricNamespace"], transform["MetricName"])
    assert "AWS::StackName" in json.dumps(transform["MetricNamespace"])  # two stacks never share it
    assert not fires(props, throttled=3, requests=100)
    assert not fires(props, throttled=50, requests=60_000)
    assert fires(props, throttled=1_000, requests=60_000)


def test_account_concurrency_near_its_quota_alarms() -> None:
    props = alarms()["LambdaConcurrencyNearLimitAlarm"]
    stats = metric_stats(props)
    assert {(m["Namespace"], m["MetricName"]) for m in stats.values()} == {
        ("AWS/Lambda", "ClaimedAccountConcurrency"),
        ("AWS/Lambda", "ConcurrentExecutions"),
    }
    assert all("Dimensions" not in m for m in stats.values())  # account-wide
    assert not fires(props, claimed=700, concurrent=650, quota=1000)
    assert fires(props, claimed=850, concurrent=120, quota=1000)  # reserved concurrency counts
    assert not fires(props, claimed=850, concurrent=800, quota=5000)  # a raised quota needs no edit


def test_the_pipe_failing_or_lagging_alarms() -> None:
    failed = metric_stats(alarms()["AuditPipeFailedAlarm"])
    assert {m["MetricName"] for m in failed.values()} == {
        "ExecutionFailed",
        "ExecutionTimeout",
        "EnrichmentStageFailed",
        "TargetStageFailed",
    }
    for metric in failed.values():
        assert metric["Namespace"] == "AWS/EventBridge/Pipes"
        assert metric["Dimensions"] == [{"Name": "PipeName", "Value": {"Ref": "AuditPipe"}}]
    lag = alarms()["AuditPipeLagAlarm"]  # the metric AuditEventsFunction publishes: tests/unit/test_audit.py
    assert lag["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AuditEventsFunction"}}]


def test_ses_reputation_alarms_fire_before_ses_reviews_the_account() -> None:
    """SES reviews an account at a 5% bounce rate or a 0.1% complaint rate (fractions in CloudWatch)."""
    for name, metric, review in (
        ("SesBounceRateAlarm", "Reputation.BounceRate", 0.05),
        ("SesComplaintRateAlarm", "Reputation.ComplaintRate", 0.001),
    ):
        props = alarms()[name]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/SES", metric)
        assert 0.5 * review <= props["Threshold"] < review, name
        assert SOURCE["Resources"][name]["Condition"] == "SendsEmail"


def test_a_failed_secrets_manager_rotation_of_any_keyring_alarms() -> None:
    """Secrets Manager's RotationFailed (a CloudTrail service event on the default bus) for every
    secret the stack rotates lands in a queue the rotation alarm watches, with the function's errors."""
    from moto.events.models import EventPattern

    resources = SOURCE["Resources"]
    rotated = {
        r["Properties"]["SecretId"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::RotationSchedule"
    }
    rule = resources["KeyRotationFailedRule"]["Properties"]
    assert "EventBusName" not in rule  # AWS services publish to the default bus
    secrets = {
        logical_id: f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{logical_id}-AbCdEf" for logical_id in rotated
    }
    listed = {item["Ref"] for item in rule["EventPattern"]["detail"]["additionalEventData"]["SecretId"]}
    assert listed == rotated

    def failed(secret_arn: str, name: str = "RotationFailed") -> dict[str, Any]:
        return {
            "source": "aws.secretsmanager",
            "detail-type": "AWS Service Event via CloudTrail",
            "detail": {
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": name,
                "errorMessage": "Error when executing lambda ... during createSecret step",
                "additionalEventData": {"SecretId": secret_arn},
            },
        }

    resolved = resolver(SOURCE)
    resolved.ref_of = lambda logical_id: secrets.get(logical_id, logical_id)
    pattern = EventPattern.load(json.dumps(resolved.resolve(rule["EventPattern"])))
    for arn in secrets.values():
        assert pattern.matches_event(failed(arn))
        assert not pattern.matches_event(failed(arn, "RotationSucceeded"))
    assert not pattern.matches_event(failed(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other-AbCdEf"))
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["KeyRotationFailuresQueue", "Arn"]}
    (statement,) = resources["KeyRotationFailuresQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["KeyRotationFailedRule", "Arn"]}}}
    props = alarms()["KeyRotationFailedAlarm"]
    stats = metric_stats(props)
    assert {(m["Namespace"], m["MetricName"]) for m in stats.values()} == {
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    }
    assert fires(props, errors=0, reported=1)
    assert fires(props, errors=1, reported=0)
    assert not fires(props, errors=0, reported=0)


def test_every_alarm_is_in_the_operations_pages_alarm_table() -> None:
    """Whoever is paged finds what the alarm means and its runbook (docs/operations.md)."""
    table = (ROOT / "docs" / "operations.md").read_text().split("**Alarms**", 1)[1].split("**Runbooks.**", 1)[0]
    rows = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`(\w+)`", line.split(" | ")[0])
    }
    assert set(alarms()) <= rows, sorted(set(alarms()) - rows)


def emitted_metric_names() -> set[str]:
    """Every metric name the code adds through Powertools (``add_metric(name="...")``, ``count("...")``)."""
    names: set[str] = set()
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Attribute, ast.Name)):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if called == "add_metric":
                names |= {k.value.value for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)}
            elif (
                called == "count"
                and (isinstance(node.func, ast.Name) or ast.unparse(node.func.value) == "observability")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):  # signin_links.observability.count, not str.count
                names.add(node.args[0].value)
    return names


def test_a_reused_refresh_token_alarms_on_the_metric_the_code_publishes() -> None:
    """A refresh token presented after its rotation (a stolen copy) pages someone: the alarm watches
    the metric the sessions code adds, under the namespace and service dimension Powertools gives it
    with the functions' environment (its EMF document, as Lambda's log line carries it)."""
    from aws_lambda_powertools import Metrics

    props = alarms()["SessionRefreshReuseAlarm"]
    assert props["MetricName"] == "SessionRefreshReuseDetected"
    assert props["MetricName"] in emitted_metric_names()
    environment = SOURCE["Globals"]["Function"]["Environment"]["Variables"]
    metrics = Metrics(
        namespace=environment["POWERTOOLS_METRICS_NAMESPACE"], service=environment["POWERTOOLS_SERVICE_NAME"]
    )
    metrics.add_metric(name=props["MetricName"], unit="Count", value=1)
    document = metrics.serialize_metric_set()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert props["Namespace"] == directive["Namespace"]
    assert [d["Name"] for d in props["Dimensions"]] == directive["Dimensions"][0]
    assert all(document[d["Name"]] == d["Value"] for d in props["Dimensions"])
    # One reuse in five minutes is enough, and minutes without any are no data, not a breach.
    assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert props["EvaluationPeriods"] == 1
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


# --- Names, first deploy ------------------------------------------------------------------------------

NAME_PROPERTIES = re.compile(r"^(Name|[A-Z][A-Za-z]*Name)$")
NOT_NAMES = {"KeyName", "AttributeName", "IndexName", "MetricName", "PolicyName", "DomainName", "ConfigName"}


def test_no_resource_has_a_fixed_name() -> None:
    """Two stacks of the same Stage in one account and region must not collide: every name is
    CloudFormation's or derived from the stack name (or from another resource's)."""
    template = translated("dev")
    fixed = []
    for logical_id, resource in template["Resources"].items():
        for key, value in (resource.get("Properties") or {}).items():
            if not NAME_PROPERTIES.match(key) or key in NOT_NAMES:
                continue
            if resource["Type"] in ("AWS::Lambda::Alias", "AWS::ApiGatewayV2::Stage"):
                continue  # "live" and "$default": names inside the stack's own function and API
            text = json.dumps(value)
            if "AWS::StackName" not in text and '"Ref"' not in text and "Fn::GetAtt" not in text and "${" not in text:
                fixed.append(f"{logical_id}.{key} = {text}")
    assert fixed == []
    assert "signin-links-${Stage}" not in TEMPLATE.read_text()


def test_the_state_machine_may_start_only_its_own_child_executions() -> None:
    template = translated("dev")
    machine = template["Resources"]["MintBatchStateMachine"]["Properties"]
    assert "StateMachineName" not in machine
    start = next(
        s for s in statements(template, "MintBatchStateMachineRole") if s.get("Sid") == "DistributedMapChildExecutions"
    )
    arn = resolver(template).resolve(start["Resource"])
    generated = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MintBatchStateMachine-a1B2c3D4e5F6"
    assert fnmatch.fnmatchcase(generated, arn)
    assert start["Condition"] == {"StringEquals": {"aws:ResourceTag/signin-links:stack": {"Ref": "AWS::StackName"}}}


def test_the_stack_publishes_its_own_url_for_links_without_a_cycle() -> None:
    """A variable naming the API would be a cycle (the API's routes name the functions): the URL
    goes to an SSM parameter the mint function reads, named from the stack name."""
    resources = SOURCE["Resources"]
    parameter = resources["AcceptBaseUrlParameter"]["Properties"]
    mint = resources["MintLinkFunction"]["Properties"]
    assert parameter["Name"] == mint["Environment"]["Variables"]["ACCEPT_BASE_URL_PARAMETER"]
    assert parameter["Name"] == {"Fn::Sub": "/${AWS::StackName}/accept-base-url"}
    evaluate = resolver(SOURCE)
    default = Resolver(
        SOURCE,
        parameter_values(SOURCE, DEPLOY),
        ref_of=lambda name: name,
        att_of=lambda name, attr: "https://abc123.execute-api.us-east-1.amazonaws.com" if name == "HttpApi" else None,
    )
    assert default.resolve(parameter["Value"]) == "https://abc123.execute-api.us-east-1.amazonaws.com"
    (read,) = [s for s in statements(translated(), "MintLinkFunctionRole") if "ssm:GetParameter" in actions(s)]
    assert actions(read) == ["ssm:GetParameter"]
    assert evaluate.resolve(read["Resource"]) == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{STACK}/accept-base-url"


# --- Teardown -----------------------------------------------------------------------------------------

KEPT_IN_PROD = {
    "TokensTable",
    "ApiKeysSecret",
    "TicketSigningKeyringSecret",
    "TicketVerificationKeyringSecret",  # rebuilt only by a rotation: without it no link verifies
    "TicketKeyringSecret",
    "SessionKeyringSecret",
    "TicketSigningKeyringKey",
    "TicketKeyringKey",
    "SessionKeyringKey",
    "ApiKeysKey",  # the retained API keys secret is unreadable without it
}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_delete_removes_everything_in_dev_and_keeps_the_state_in_prod(stage: str) -> None:
    template = translated(stage)
    evaluate = resolver(template, Stage=stage)
    kept = set()
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Version":
            continue  # SAM retains old versions for rollbacks; they go with their function
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            policy = evaluate.resolve(resource.get(attribute, "Delete"))
            assert policy in ("Delete", "Retain"), (logical_id, policy)
            if policy == "Retain":
                kept.add(logical_id)
    assert kept == (KEPT_IN_PROD if stage == "prod" else set())
    table = template["Resources"]["TokensTable"]["Properties"]
    assert evaluate.resolve(table["DeletionProtectionEnabled"]) is (stage == "prod")


def test_the_results_bucket_is_emptied_before_the_stack_deletes_it() -> None:
    resources = SOURCE["Resources"]
    emptier = resources["EmptyResultsBucketOnDelete"]
    assert emptier["Properties"] == {
        "ServiceToken": {"Fn::GetAtt": ["EmptyResultsBucketFunction", "Arn"]},
        "BucketName": {"Ref": "ResultsBucket"},
    }  # it refers to the bucket, so CloudFormation deletes it (and empties the bucket) first
    (policy,) = resources["EmptyResultsBucketFunction"]["Properties"]["Policies"]
    (statement,) = policy["Statement"]
    assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:ListBucket"]
    assert resources["ResultsBucket"]["DeletionPolicy"] == "Delete"


# --- IAM: exact actions -------------------------------------------------------------------------------


def test_the_mint_function_holds_exactly_the_actions_its_code_uses() -> None:
    """No SAM write policies: DynamoDBWritePolicy grants BatchWriteItem (which deletes any key) and
    S3WritePolicy grants PutLifecycleConfiguration (which would keep URL-bearing results forever)."""
    source = SOURCE["Resources"]["MintLinkFunction"]["Properties"]["Policies"]
    assert not [
        p
        for p in source
        if isinstance(p, dict)
        and set(p)
        & {
            "DynamoDBWritePolicy",
            "DynamoDBReadPolicy",
            "DynamoDBCrudPolicy",
            "S3WritePolicy",
            "S3ReadPolicy",
            "S3CrudPolicy",
        }
    ]
    template = translated()
    granted: dict[str, list[dict[str, Any]]] = {}
    for statement in statements(template, "MintLinkFunctionRole"):
        assert statement["Effect"] == "Allow"
        for action in actions(statement):
            granted.setdefault(action, []).append(statement)
    assert set(granted) == {
        "dynamodb:PutItem",  # create, start_batch, idempotency record
        "dynamodb:UpdateItem",  # revoke, complete_batch, add_announced, idempotency record
        "dynamodb:GetItem",  # idempotency record
        "dynamodb:BatchGetItem",  # get_batch_tokens, announced
        "dynamodb:BatchWriteItem",  # put_batch_tokens
        "dynamodb:DeleteItem",  # a failed batch's idempotency record
        "s3:GetObject",  # manifests
        "s3:PutObject",  # results
        "ssm:GetParameter",  # the stack's own URL
        "kms:Decrypt",  # the ticket signing keyring
        "secretsmanager:GetSecretValue",  # API keys, ticket signing keyring
        "events:PutEvents",  # minted links, batch summaries
        "sqs:SendMessage",  # the batch dead-letter queue (on-failure destination)
    }
    assert not any(action.endswith("*") for action in granted)


def leading_keys(statement: dict[str, Any]) -> list[str]:
    keys: list[str] = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    return keys


def test_the_mint_function_writes_only_its_own_item_kinds() -> None:
    template = translated()
    by_action = {
        a: s for s in statements(template, "MintLinkFunctionRole") for a in actions(s) if a.startswith("dynamodb:")
    }
    token, header, marker = ids.new_id(ids.SIGN_IN_TOKEN), header_key("b", -1), marker_key("b", -1, 0)
    idempotency = f"{IDEMPOTENCY_KEY_PREFIX}#abc123"
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"):
        keys = leading_keys(by_action[action])
        for key in (token, header, marker, idempotency):
            assert any(fnmatch.fnmatchcase(key, pattern) for pattern in keys), (action, key)
        assert not any(fnmatch.fnmatchcase("sess_abc", pattern) for pattern in keys), action
    # BatchWriteItem can delete: tokens only (which PutItem may overwrite anyway).
    assert leading_keys(by_action["dynamodb:BatchWriteItem"]) == ["sit_*"]
    assert leading_keys(by_action["dynamodb:DeleteItem"]) == ["batch-idempotency#*"]
    (put_object,) = [s for s in statements(template, "MintLinkFunctionRole") if "s3:PutObject" in actions(s)]
    assert resolver(template).resolve(put_object["Resource"]) == "arn:aws:ResultsBucket:Arn/results/*"


def keys_by_action(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Each DynamoDB action of a role and the leading keys every statement granting it allows."""
    found: dict[str, set[str]] = {}
    for statement in statements(template, role):
        for action in actions(statement):
            if action.startswith("dynamodb:"):
                found.setdefault(action, set()).update(leading_keys(statement))
    return found


def test_the_accept_and_state_machine_roles_hold_exact_actions() -> None:
    template = translated()
    accept = {a for s in statements(template, "AcceptTokenFunctionRole") for a in actions(s)}
    assert accept == {
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
    }  # no events:PutEvents: the audit events and renewal requests come from the table's stream (AuditPipe)
    by_action = keys_by_action(template, "AcceptTokenFunctionRole")
    token, session = ids.new_id(ids.SIGN_IN_TOKEN), ids.new_id(ids.SESSION)
    for action in ("dynamodb:UpdateItem", "dynamodb:GetItem"):
        keys = by_action[action]
        assert all(any(fnmatch.fnmatchcase(key, p) for p in keys) for key in (token, session)), action
        assert not any(fnmatch.fnmatchcase("batch_abc", p) for p in keys), action
    assert by_action["dynamodb:UpdateItem"] == {"sit_*", "sess_*"}
    assert by_action["dynamodb:GetItem"] == {"sit_*", "sess_*", "email#*"}  # email#: whether a dead link was emailed
    # The transaction's PutItem creates sessions and renewal requests: it can never overwrite a token.
    assert by_action["dynamodb:PutItem"] == {"sess_*", "renew#*"}
    assert by_action["dynamodb:ConditionCheckItem"] == {"sit_*", "email#*"}  # a renewal's checks, no write
    # Clerk's Frontend API: the accept's own actions (the same transaction), on the same item kinds, no renewals.
    frontend = {a for s in statements(template, "ClerkFrontendFunctionRole") for a in actions(s)}
    assert frontend == accept - {"dynamodb:ConditionCheckItem"}
    assert keys_by_action(template, "ClerkFrontendFunctionRole") == {
        "dynamodb:UpdateItem": {"sit_*", "sess_*"},
        "dynamodb:GetItem": {"sit_*", "sess_*"},
        "dynamodb:PutItem": {"sess_*"},
    }
    sessions = {a for s in statements(template, "SessionsFunctionRole") for a in actions(s)}
    assert sessions == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
    }
    (change,) = [s for s in statements(template, "SessionsFunctionRole") if "dynamodb:UpdateItem" in actions(s)]
    assert leading_keys(change) == ["sess_*"]
    machine = {a for s in statements(template, "MintBatchStateMachineRole") for a in actions(s)}
    assert "s3:GetObject" in machine
    # It writes only its Map's results (ResultWriter), under results/map-runs/: never a batch's results.
    for statement in statements(template, "MintBatchStateMachineRole"):
        if {a for a in actions(statement) if a.startswith("s3:")} - {"s3:GetObject"}:
            assert set(actions(statement)) == {
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload",
            }
            assert resolver(template).resolve(statement["Resource"]) == "arn:aws:ResultsBucket:Arn/results/map-runs/*"


# --- Keyring keys -------------------------------------------------------------------------------------


def decryptors(template: dict[str, Any], key: str, **overrides: str) -> list[str]:
    """Principal ARN patterns the key policy lets decrypt (all of them behind Secrets Manager)."""
    evaluate = resolver(template, **overrides)
    patterns = []
    for statement in evaluate.resolve(template["Resources"][key]["Properties"]["KeyPolicy"]["Statement"]):
        granted = actions(statement)
        assert not {"kms:*", "kms:Create*", "kms:CreateGrant"} & set(granted), statement.get("Sid")
        if "kms:Decrypt" not in granted and "kms:ReEncrypt*" not in granted:
            continue
        condition = statement["Condition"]
        assert condition["StringEquals"]["kms:ViaService"] == f"secretsmanager.{REGION}.amazonaws.com"
        patterns.extend(condition["ArnLike"]["aws:PrincipalArn"])
    return patterns


def may_decrypt(template: dict[str, Any], key: str, role: str, **overrides: str) -> bool:
    arn = role_arn(template, role)
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in decryptors(template, key, **overrides))


CMK_KEYRINGS = {
    "TicketSigningKeyringSecret": "TicketSigningKeyringKey",
    "TicketKeyringSecret": "TicketKeyringKey",
    "SessionKeyringSecret": "SessionKeyringKey",
}


def test_each_keyring_has_its_own_customer_managed_key() -> None:
    resources = SOURCE["Resources"]
    for secret, key in CMK_KEYRINGS.items():
        assert resources[secret]["Properties"]["KmsKeyId"] == {"Ref": key}
        assert resources[key]["Type"] == "AWS::KMS::Key"
        assert resources[key]["Properties"]["EnableKeyRotation"] is True
    # Public keys: nothing to hide, so the AWS managed key; who may write it is what matters (below).
    assert "KmsKeyId" not in resources["TicketVerificationKeyringSecret"]["Properties"]


def test_only_the_functions_that_need_a_keyring_may_decrypt_it() -> None:
    template = translated()
    roles = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    signing = {role for role in roles if may_decrypt(template, "TicketSigningKeyringKey", role)}
    session = {role for role in roles if may_decrypt(template, "SessionKeyringKey", role)}
    retired = {role for role in roles if may_decrypt(template, "TicketKeyringKey", role)}
    # The accept, Clerk's Frontend API and the email function verify links with public keys: they
    # cannot decrypt a signing key.
    assert signing == {"MintLinkFunctionRole", "RotateKeysFunctionRole"}
    # ClerkFrontendFunction signs sessions exactly as the accept does.
    assert session == {
        "AcceptTokenFunctionRole",
        "SessionsFunctionRole",
        "RotateKeysFunctionRole",
        "ClerkFrontendFunctionRole",
    }
    assert retired == set()  # nobody, outside an upgrade's window
    # Another stack's roles (same template, another name) and the account's own admins cannot.
    other = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-other/mint/x"
    assert not any(fnmatch.fnmatchcase(other, p) for p in decryptors(template, "TicketSigningKeyringKey"))
    admin = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    assert not any(fnmatch.fnmatchcase(admin, p) for p in decryptors(template, "TicketSigningKeyringKey"))
    # Break glass: a role named in KeyringReaderArns.
    assert admin in decryptors(template, "SessionKeyringKey", KeyringReaderArns=admin)
    assert admin in decryptors(template, "TicketSigningKeyringKey", KeyringReaderArns=admin)
    assert admin in decryptors(template, "TicketKeyringKey", KeyringReaderArns=admin)


def secret_readers(template: dict[str, Any], secret: str, **overrides: str) -> set[str]:
    """Roles whose own policies grant ``secretsmanager:GetSecretValue`` on ``secret``."""
    evaluate = resolver(template, **overrides)
    readers = set()
    for role, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in statements(template, role, **overrides):
            if not {"secretsmanager:GetSecretValue", "secretsmanager:*", "*"} & set(actions(statement)):
                continue
            resources = evaluate.resolve(statement["Resource"])
            resources = resources if isinstance(resources, list) else [resources]
            if secret in resources or "*" in resources:
                readers.add(role)
    return readers


def test_no_function_but_the_mint_and_the_rotation_can_read_a_ticket_signing_key() -> None:
    """A role that only sends links (or checks them) must not be able to mint one.
    Reading the signing keyring takes both GetSecretValue (IAM) and Decrypt (the key policy)."""
    template = translated()
    readers = secret_readers(template, "TicketSigningKeyringSecret")
    assert readers == {"MintLinkFunctionRole", "RotateKeysFunctionRole"}
    assert all(may_decrypt(template, "TicketSigningKeyringKey", role) for role in readers)
    assert secret_readers(template, "TicketVerificationKeyringSecret") == {
        "AcceptTokenFunctionRole",
        "ClerkFrontendFunctionRole",
        "SendLinkEmailFunctionRole",
        "RotateKeysFunctionRole",
    }
    assert secret_readers(template, "TicketKeyringSecret") == set()  # the retired HS256 keyring
    env = {
        name: template["Resources"][name]["Properties"]["Environment"]["Variables"]
        for name in ("MintLinkFunction", "AcceptTokenFunction", "ClerkFrontendFunction", "SendLinkEmailFunction")
    }
    assert env["MintLinkFunction"]["TICKET_SIGNING_KEYRING_SECRET_ID"] == {"Ref": "TicketSigningKeyringSecret"}
    for function in ("AcceptTokenFunction", "ClerkFrontendFunction", "SendLinkEmailFunction"):
        assert env[function]["TICKET_VERIFICATION_KEYRING_SECRET_ID"] == {"Ref": "TicketVerificationKeyringSecret"}
        assert "TICKET_SIGNING_KEYRING_SECRET_ID" not in env[function]
    assert not any("TICKET" in name for name in SOURCE["Globals"]["Function"]["Environment"]["Variables"])


def test_only_the_rotation_may_write_the_public_keys() -> None:
    """A key written into the verification keyring is trusted by the accept: its resource policy
    denies every writer but the rotation role, whatever their IAM allows."""
    template = translated()
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SecretsManager::ResourcePolicy"
                 and r["Properties"]["SecretId"] == {"Ref": "TicketVerificationKeyringSecret"}]  # fmt: skip
    evaluate = resolver(template)
    document = evaluate.resolve(policy["Properties"]["ResourcePolicy"])
    assert policy["Properties"]["BlockPublicPolicy"] is True
    (deny,) = document["Statement"]
    assert deny["Effect"] == "Deny"
    assert set(deny["Action"]) == {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"}
    pattern = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    for role in (
        "MintLinkFunctionRole",
        "AcceptTokenFunctionRole",
        "ClerkFrontendFunctionRole",
        "SendLinkEmailFunctionRole",
    ):
        assert not fnmatch.fnmatchcase(role_arn(template, role), pattern), role  # denied
    assert fnmatch.fnmatchcase(role_arn(template, "RotateKeysFunctionRole"), pattern)
    assert not fnmatch.fnmatchcase(f"arn:aws:iam::{ACCOUNT}:role/Admin", pattern)
    writers = {
        role
        for role, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for statement in statements(template, role)
        if "secretsmanager:PutSecretValue" in actions(statement)
        and "TicketVerificationKeyringSecret" in json.dumps(statement["Resource"])
    }
    assert writers == {"RotateKeysFunctionRole"}


def test_the_retired_hs256_keyring_is_readable_only_during_the_window() -> None:
    template = translated()
    window = {"LegacyHs256TicketsUntil": "2027-01-31"}
    roles = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    # The redeeming functions honour the links mailed before; the mint's previous version signs HS256
    # until the deploy has moved every request (the mint may sign anyway: no new power).
    readers = {"AcceptTokenFunctionRole", "ClerkFrontendFunctionRole", "MintLinkFunctionRole"}
    assert {role for role in roles if may_decrypt(template, "TicketKeyringKey", role, **window)} == readers
    assert secret_readers(template, "TicketKeyringSecret", **window) == readers
    evaluate = resolver(template, **window)
    for function in ("AcceptTokenFunction", "ClerkFrontendFunction"):
        env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert evaluate.resolve(env["LEGACY_TICKET_KEYRING_SECRET_ID"]) == "TicketKeyringSecret"
        assert evaluate.resolve(env["LEGACY_HS256_TICKETS_UNTIL"]) == "2027-01-31"
        assert resolver(template).resolve(env["LEGACY_TICKET_KEYRING_SECRET_ID"]) == ""
    # Not rotated any more (nothing signs with it), and kept where it was so that an upgrade keeps it.
    assert not any(
        r["Type"] == "AWS::SecretsManager::RotationSchedule"
        and r["Properties"]["SecretId"] == {"Ref": "TicketKeyringSecret"}
        for r in template["Resources"].values()
    )
    parameter = PARAMETERS["LegacyHs256TicketsUntil"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    for good in ("", "2027-01-31", "2026-12-01"):
        assert pattern.fullmatch(good), good
    for bad in ("2027-13-01", "27-01-31", "2027-01-31T00:00", "tomorrow", "2027-1-3"):
        assert not pattern.fullmatch(bad), bad


def test_the_key_policies_name_no_role_so_no_cycle_closes() -> None:
    """key -> role -> secret -> key would be a cycle: the key policies match the functions' role
    paths (RolePath, from the stack name) instead of referring to the roles."""
    for key in (*CMK_KEYRINGS.values(), "ApiKeysKey"):
        text = json.dumps(SOURCE["Resources"][key])
        assert "Role" not in re.sub(r'"Sid": "[^"]*"', "", text).replace("role/", "")
    for function, path in (
        ("MintLinkFunction", "mint"),
        ("AcceptTokenFunction", "accept"),
        ("SessionsFunction", "sessions"),
        ("RotateKeysFunction", "rotate"),
        ("SendLinkEmailFunction", "email"),
        ("ClerkFrontendFunction", "frontend"),
    ):
        assert SOURCE["Resources"][function]["Properties"]["RolePath"] == {"Fn::Sub": f"/${{AWS::StackName}}/{path}/"}


@pytest.mark.parametrize("window", ["", "2027-01-31"])
def test_the_functions_iam_names_the_keys_they_decrypt(window: str) -> None:
    template = translated()
    legacy = [{"Fn::GetAtt": ["TicketKeyringKey", "Arn"]}] if window else []
    for role, keys in (
        ("MintLinkFunctionRole", ["TicketSigningKeyringKey", "ApiKeysKey"]),
        ("AcceptTokenFunctionRole", ["SessionKeyringKey"]),
        ("SessionsFunctionRole", ["SessionKeyringKey", "ApiKeysKey"]),
        ("RotateKeysFunctionRole", ["TicketSigningKeyringKey", "SessionKeyringKey"]),
        ("SendLinkEmailFunctionRole", []),
        ("ClerkFrontendFunctionRole", ["SessionKeyringKey"]),
    ):
        found = []
        for statement in statements(template, role, LegacyHs256TicketsUntil=window):
            if "kms:Decrypt" in actions(statement):
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                found.extend(r for r in resources if "Fn::GetAtt" in r)
        expected = [{"Fn::GetAtt": [key, "Arn"]} for key in keys]
        reads_retired = role in ("AcceptTokenFunctionRole", "ClerkFrontendFunctionRole", "MintLinkFunctionRole")
        assert found == expected + (legacy if reads_retired else []), role
    (rotate,) = [s for s in statements(template, "RotateKeysFunctionRole") if "kms:Decrypt" in actions(s)]
    assert "kms:GenerateDataKey" in actions(rotate)  # PutSecretValue encrypts the new keyring


# --- The API keys secret: the key that mints for anyone ---------------------------------------------


def secret_policy_denies(template: dict[str, Any], secret: str, principal: str, action: str, **overrides: str) -> bool:
    """Whether ``secret``'s resource policy (its explicit denies) refuses ``principal`` ``action``."""
    (policy,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::ResourcePolicy" and r["Properties"]["SecretId"] == {"Ref": secret}
    ]
    assert policy["Properties"]["BlockPublicPolicy"] is True
    document = resolver(template, **overrides).resolve(policy["Properties"]["ResourcePolicy"])
    for statement in document["Statement"]:
        assert statement["Effect"] == "Deny"
        if action not in actions(statement):
            continue
        condition = statement.get("Condition") or {}
        assert set(condition) <= {"ArnNotLike"}, condition
        patterns = condition.get("ArnNotLike", {}).get("aws:PrincipalArn")
        if patterns is None or not any(fnmatch.fnmatchcase(principal, p) for p in patterns):
            return True
    return False


def test_the_api_keys_secret_is_decrypted_by_the_mint_sessions_and_named_admins_only() -> None:
    """With the AWS managed key, any principal with secretsmanager:GetSecretValue on it (or on *)
    could read the key that mints a link for anyone. Its own key decrypts for the two functions that
    check the Bearer key, and for ApiKeyAdminArns."""
    resources = SOURCE["Resources"]
    assert resources["ApiKeysSecret"]["Properties"]["KmsKeyId"] == {"Ref": "ApiKeysKey"}
    assert resources["ApiKeysKey"]["Properties"]["EnableKeyRotation"] is True
    template = translated()
    roles = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    assert {role for role in roles if may_decrypt(template, "ApiKeysKey", role)} == {
        "MintLinkFunctionRole",
        "SessionsFunctionRole",
    }
    assert secret_readers(template, "ApiKeysSecret") == {"MintLinkFunctionRole", "SessionsFunctionRole"}
    admin = f"arn:aws:iam::{ACCOUNT}:role/platform/ops"
    assert not any(fnmatch.fnmatchcase(admin, p) for p in decryptors(template, "ApiKeysKey"))
    assert any(fnmatch.fnmatchcase(admin, p) for p in decryptors(template, "ApiKeysKey", ApiKeyAdminArns=admin))


def test_the_api_keys_secret_refuses_reads_and_writes_to_everyone_else() -> None:
    """Reading the key and writing one (choosing a key you know) are the same power: the secret's
    resource policy refuses both to every principal not named, whatever their IAM allows."""
    template = translated()
    mint, sessions = role_arn(template, "MintLinkFunctionRole"), role_arn(template, "SessionsFunctionRole")
    accept = role_arn(template, "AcceptTokenFunctionRole")
    broad = f"arn:aws:iam::{ACCOUNT}:role/ci-with-SecretsManagerReadWrite"
    admin = f"arn:aws:iam::{ACCOUNT}:role/platform/ops"
    get, put = "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"
    for principal in (mint, sessions):
        assert not secret_policy_denies(template, "ApiKeysSecret", principal, get)
        assert secret_policy_denies(template, "ApiKeysSecret", principal, put)  # the functions only read it
    for principal in (accept, broad, admin):
        assert secret_policy_denies(template, "ApiKeysSecret", principal, get), principal
        assert secret_policy_denies(template, "ApiKeysSecret", principal, put), principal
    named = {"ApiKeyAdminArns": admin}
    for action in (get, put, "secretsmanager:UpdateSecretVersionStage"):
        assert not secret_policy_denies(template, "ApiKeysSecret", admin, action, **named), action
        assert secret_policy_denies(template, "ApiKeysSecret", broad, action, **named), action
    assert re.fullmatch(PARAMETERS["ApiKeyAdminArns"]["AllowedPattern"], admin)
    assert PARAMETERS["ApiKeyAdminArns"]["Default"] == ""


# --- Who may put events on the bus ------------------------------------------------------------------


def denied(template: dict[str, Any], principal: str, source: str, **overrides: str) -> bool:
    """Whether the bus policy's explicit denies refuse ``principal`` putting an event of ``source``."""
    evaluate = resolver(template, **overrides)
    policy = evaluate.resolve(template["Resources"]["EventBus"]["Properties"]["Policy"])
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Deny"
        assert statement["Action"] == "events:PutEvents"
        assert statement["Resource"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{STACK}"
        condition = statement["Condition"]
        patterns = condition["ArnNotLike"]["aws:PrincipalArn"]
        patterns = [patterns] if isinstance(patterns, str) else patterns
        matches = not any(fnmatch.fnmatchcase(principal, p) for p in patterns)
        if "ForAnyValue:StringEquals" in condition:
            matches = matches and source in condition["ForAnyValue:StringEquals"]["events:source"]
        if matches:
            return True
    return False


def test_only_the_stack_and_the_named_producers_may_put_events() -> None:
    template = translated()
    mint, accept = role_arn(template, "MintLinkFunctionRole"), role_arn(template, "AcceptTokenFunctionRole")
    producer = f"arn:aws:iam::{ACCOUNT}:role/batch-producer"
    stranger = f"arn:aws:iam::{ACCOUNT}:role/anyone-with-events-putevents"
    for role in (mint, accept):
        assert not denied(template, role, "signin-links")
    assert denied(template, stranger, "signin-links.batches")
    assert denied(template, producer, "signin-links.batches")  # not named: no batch producer at all
    assert not denied(template, producer, "signin-links.batches", MintPrincipalArns=producer)
    assert denied(template, stranger, "signin-links.batches", MintPrincipalArns=producer)
    # A producer cannot forge the events the stack publishes (SignInLinkMinted carries a live URL).
    assert denied(template, producer, "signin-links", MintPrincipalArns=producer)
    # Delivery by email: the email function publishes SignInLinkEmailFailed; SES feedback is
    # forwarded from the default bus by the stack's own role.
    assert not denied(template, role_arn(template, "SendLinkEmailFunctionRole"), "signin-links")
    assert not denied(template, role_arn(template, "EmailFeedbackRole"), "aws.ses")


# --- What each role may put on the bus -------------------------------------------------------------

# IAM's condition operators this evaluator understands; any other makes the test fail rather than
# pass a statement it cannot read.
_SET_OPERATORS = {"ForAllValues:StringEquals": all, "ForAnyValue:StringEquals": any}


def condition_holds(condition: dict[str, Any], context: dict[str, list[str]]) -> bool:
    """IAM's evaluation of a resolved ``Condition`` block against a request context (key -> values)."""
    for operator, tests in condition.items():
        for key, values in tests.items():
            wanted = [values] if isinstance(values, str) else values
            present = context.get(key)
            if operator == "Null":
                (flag,) = wanted
                holds = (present is None) == (flag == "true")
            elif operator == "StringEquals":  # a single-valued key: equal to one of the values
                holds = present is not None and len(present) == 1 and present[0] in wanted
            elif operator in _SET_OPERATORS:
                # ForAllValues holds for an absent key (the empty set): why every grant adds Null.
                holds = _SET_OPERATORS[operator](value in wanted for value in (present or []))
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
            if not holds:
                return False
    return True


def may_put(template: dict[str, Any], role: str, source: str, detail_type: str) -> bool:
    """Whether ``role``'s own policies allow one PutEvents entry (``source``, ``detail_type``) on the bus."""
    evaluate = resolver(template)
    context = {"events:source": [source], "events:detail-type": [detail_type]}
    for statement in statements(template, role):
        if not {"events:PutEvents", "events:*", "*"} & set(actions(statement)):
            continue
        assert statement["Effect"] == "Allow"
        assert evaluate.resolve(statement["Resource"]) == "arn:aws:EventBus:Arn", role
        if condition_holds(evaluate.resolve(statement.get("Condition", {})), context):
            return True
    return False


def events_sent() -> dict[str, set[tuple[str, str]]]:
    """Every role that puts events on the bus, and exactly the (source, detail-type) it sends, read
    from the code (and, for SES feedback, from the rule that forwards it)."""
    from signin_links import audit, events, link_email
    from signin_links.batch import minter

    feedback = SOURCE["Resources"]["EmailFeedbackRule"]["Properties"]["EventPattern"]
    pipe = SOURCE["Resources"]["AuditPipe"]["Properties"]["TargetParameters"]["EventBridgeEventBusParameters"]
    assert pipe["Source"] == events.SOURCE
    return {
        "MintLinkFunctionRole": {
            (events.SOURCE, events.MINTED_DETAIL_TYPE),
            (events.SOURCE, minter.COMPLETED_DETAIL_TYPE),
        },
        "SendLinkEmailFunctionRole": {(events.SOURCE, link_email.FAILED_DETAIL_TYPE)},
        "AuditPipeRole": {(events.SOURCE, change.detail_type) for change in audit.CHANGES},
        "EmailFeedbackRole": {(source, kind) for source in feedback["source"] for kind in feedback["detail-type"]},
    }


def granted_events(template: dict[str, Any], role: str) -> set[tuple[str, str]]:
    """The (source, detail-type) pairs a role's PutEvents statements name, each value exact."""
    evaluate = resolver(template)
    pairs: set[tuple[str, str]] = set()
    for statement in statements(template, role):
        if "events:PutEvents" not in actions(statement):
            continue
        condition = evaluate.resolve(statement["Condition"])
        assert condition["Null"] == {"events:source": "false", "events:detail-type": "false"}, role
        sources = condition["ForAllValues:StringEquals"]["events:source"]
        kinds = condition["StringEquals"]["events:detail-type"]
        assert not any("*" in value or "?" in value for value in [*sources, *kinds]), role
        pairs |= {(source, kind) for source in sources for kind in kinds}
    return pairs


def test_every_put_events_grant_names_exactly_the_events_its_role_sends() -> None:
    """No role may put an event it does not send: the mint role cannot forge an audit event
    (``SignInTokenAccepted``) or a batch request, the email role cannot announce a link."""
    template = translated()
    sent = events_sent()
    putters = {
        role
        for role, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        and any({"events:PutEvents", "events:*", "*"} & set(actions(s)) for s in statements(template, role))
    }
    assert putters == set(sent)
    for role, pairs in sent.items():
        assert granted_events(template, role) == pairs, role
        for source, kind in pairs:
            assert may_put(template, role, source, kind), (role, source, kind)
    for role, source, kind in (
        ("MintLinkFunctionRole", "signin-links", "SignInTokenAccepted"),  # a forged audit event
        ("MintLinkFunctionRole", "signin-links", "SessionRevoked"),
        ("MintLinkFunctionRole", "signin-links.batches", "MintSignInLinks"),  # a batch request
        ("MintLinkFunctionRole", "aws.ses", "Email Bounced"),
        ("SendLinkEmailFunctionRole", "signin-links", "SignInLinkMinted"),  # announce a link
        ("AuditPipeRole", "signin-links", "SignInLinkMinted"),
        ("EmailFeedbackRole", "signin-links", "SignInLinkMinted"),
        ("EmailFeedbackRole", "aws.ses", "Email Delivered"),
    ):
        assert not may_put(template, role, source, kind), (role, source, kind)


def test_the_evaluator_reads_conditions_as_iam_does() -> None:
    """The helper the test above relies on: an absent key passes ForAllValues (hence the Null
    checks), a multivalued request fails a StringEquals, an operator it does not know fails."""
    context = {"events:source": ["a"]}
    assert condition_holds({"ForAllValues:StringEquals": {"events:detail-type": ["x"]}}, context)
    assert not condition_holds({"Null": {"events:detail-type": "false"}}, context)
    assert condition_holds({"Null": {"events:detail-type": "true"}}, context)
    assert not condition_holds({"StringEquals": {"events:source": ["b"]}}, context)
    assert not condition_holds({"StringEquals": {"events:source": ["a"]}}, {"events:source": ["a", "b"]})
    assert not condition_holds({"ForAllValues:StringEquals": {"events:source": ["a"]}}, {"events:source": ["a", "b"]})
    with pytest.raises(AssertionError):
        condition_holds({"StringLike": {"events:source": ["*"]}}, context)


# --- Production: gradual deploys, edge, observability, tags ------------------------------------------


@pytest.mark.parametrize(("stage", "config"), [("dev", "AllAtOnce"), ("prod", "Canary10Percent5Minutes")])
def test_serving_functions_deploy_gradually_in_prod_and_roll_back_on_their_alarms(stage: str, config: str) -> None:
    template = translated(stage)
    evaluate = resolver(template, Stage=stage)
    for function, alarms in (
        ("MintLinkFunction", {"MintLinkErrorsAlarm"}),
        ("AcceptTokenFunction", {"AcceptTokenErrorsAlarm"}),
        ("SessionsFunction", {"SessionsErrorsAlarm"}),
    ):
        group = template["Resources"][f"{function}DeploymentGroup"]["Properties"]
        assert evaluate.resolve(group["DeploymentConfigName"]) == f"CodeDeployDefault.Lambda{config}"
        assert {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]} == alarms
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        alias = template["Resources"][f"{function}Aliaslive"]
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {
            "Ref": f"{function}DeploymentGroup"
        }


def test_the_optional_edge_rate_limits_each_ip_on_accept_and_v1() -> None:
    template = translated("prod")
    acl = template["Resources"]["EdgeWebAcl"]
    assert acl["Condition"] == "CreatesWebAcl"
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    for name, path, limit in (
        ("accept-token-per-ip", "/accept-token", "WafRateLimitPerIp"),
        ("v1-per-ip", "/v1/", "WafRateLimitPerIp"),
        ("session-per-ip", "/session/", "WafSessionRateLimitPerIp"),
        ("sign-out-per-ip", "/sign-out", "WafRateLimitPerIp"),
        ("frontend-per-ip", "/v1/client", "WafSessionRateLimitPerIp"),
    ):
        statement = rules[name]["Statement"]["RateBasedStatement"]
        assert statement["AggregateKeyType"] == "IP"
        assert statement["Limit"] == {"Ref": limit}
        assert path in json.dumps(statement["ScopeDownStatement"])
    managed = rules["aws-common-rules"]["Statement"]["ManagedRuleGroupStatement"]
    assert managed == {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}
    distribution = template["Resources"]["EdgeDistribution"]
    assert distribution["Condition"] == "HasEdgeProtection"
    assert PARAMETERS["EdgeProtection"]["Default"] == "none"
    # Links minted behind CloudFront point at CloudFront (through the published URL).
    value = SOURCE["Resources"]["AcceptBaseUrlParameter"]["Properties"]["Value"]
    assert "EdgeDistribution.DomainName" in json.dumps(value)


def waf_forms(path: str, transformations: list[dict[str, Any]]) -> str:
    """``path`` after WAF's text transformations, in their priority order (the ones the rules use)."""
    import posixpath
    from urllib.parse import unquote

    for step in sorted(transformations, key=lambda item: item["Priority"]):
        if step["Type"] == "URL_DECODE":
            path = unquote(path)
        elif step["Type"] == "NORMALIZE_PATH":
            path = posixpath.normpath("/" + path.lstrip("/")) + ("/" if path.endswith("/") and path != "/" else "")
        elif step["Type"] == "LOWERCASE":
            path = path.lower()
        else:
            raise AssertionError(f"unknown transformation {step['Type']}")
    return path


def waf_matches(statement: dict[str, Any], path: str) -> bool:
    """Whether a scope-down ``statement`` (the kinds the rules use) matches a request for ``path``."""
    ((kind, body),) = statement.items()
    if kind == "AndStatement":
        return all(waf_matches(part, path) for part in body["Statements"])
    if kind == "OrStatement":
        return any(waf_matches(part, path) for part in body["Statements"])
    if kind == "NotStatement":
        return not waf_matches(body["Statement"], path)
    assert kind == "ByteMatchStatement", kind
    assert body["FieldToMatch"] == {"UriPath": {}}
    assert body["PositionalConstraint"] == "STARTS_WITH"
    return waf_forms(path, body["TextTransformations"]).startswith(body["SearchString"])


def rate_rules_counting(template: dict[str, Any], path: str) -> list[str]:
    found = []
    for rule in template["Resources"]["EdgeWebAcl"]["Properties"]["Rules"]:
        rate = rule["Statement"].get("RateBasedStatement")
        if rate is None:
            continue
        assert "Block" in rule["Action"]
        if waf_matches(rate["ScopeDownStatement"], path):
            found.append(rule["Name"])
    return found


STATIC = {"GET /.well-known/jwks.json", "GET /session.js", "GET /v1/jwks", "ANY /v1/jwks"}


def test_every_route_but_the_static_ones_is_rate_limited_per_ip_under_any_spelling() -> None:
    """Every route of the API but the static GETs is counted per IP, whatever the spelling of its path
    that API Gateway could still route: the cookie routes (/session/refresh, /sign-out...) each under
    a rule of its own, Clerk's Frontend API apart from the backend's /v1."""
    template = translated("prod")
    from local.template import http_routes

    for route in http_routes():
        key = f"{route.method} {route.path}"
        path = re.sub(r"\{[^}]+\}", "sess_x", route.path).replace("sess_x+", "x")
        if key in STATIC:
            continue
        assert rate_rules_counting(template, path), key
    for cookie_route, rule in (
        ("/accept-token", "accept-token-per-ip"),
        ("/accept-token/renew", "accept-token-per-ip"),
        ("/session/refresh", "session-per-ip"),
        ("/sign-out", "sign-out-per-ip"),
        ("/v1/client/sign_ins", "frontend-per-ip"),  # clerk-js, in the browser
        ("/v1/client/sessions/sess_x/tokens", "frontend-per-ip"),
        ("/v1/environment", "frontend-per-ip"),
        ("/v1/sign_in_tokens", "v1-per-ip"),  # your backend, with its API key
        ("/v1/sessions/sess_x/revoke", "v1-per-ip"),
    ):
        for spelling in (
            cookie_route,
            cookie_route.upper(),
            "/" + cookie_route,
            "/%" + f"{ord(cookie_route[1]):02X}" + cookie_route[2:],
            "/x/.." + cookie_route,
        ):
            assert rate_rules_counting(template, spelling) == [rule], spelling


def test_with_an_edge_every_http_function_refuses_what_did_not_come_through_it() -> None:
    """CloudFront adds a header from EdgeOriginSecret; every function with HTTP routes is told the
    secret (and may read it) exactly when there is an edge (signin_links/edge.py refuses the rest)."""
    from local.template import http_routes

    template = translated("prod")
    http = {f"{route.function}Role" for route in http_routes()}
    assert http == {
        "MintLinkFunctionRole",
        "AcceptTokenFunctionRole",
        "SessionsFunctionRole",
        "ClerkFrontendFunctionRole",
    }
    (origin,) = template["Resources"]["EdgeDistribution"]["Properties"]["DistributionConfig"]["Origins"]
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"].lower() == __import__("signin_links.edge", fromlist=["HEADER"]).HEADER
    assert header["HeaderValue"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${EdgeOriginSecret}:SecretString:header_value}}"
    }
    assert template["Resources"]["EdgeOriginSecret"]["Condition"] == "HasEdgeProtection"
    for edge in ("none", "cloudfront-waf"):
        overrides = {"EdgeProtection": edge}
        evaluate = resolver(template, **overrides)
        readers = secret_readers(template, "EdgeOriginSecret", **overrides)
        assert readers == (http if edge != "none" else set()), edge
        for role in http:
            env = template["Resources"][role.removesuffix("Role")]["Properties"]["Environment"]["Variables"]
            assert evaluate.resolve(env["EDGE_SECRET_ID"]) == ("EdgeOriginSecret" if edge != "none" else ""), role


def test_the_state_machine_logs_and_is_traced() -> None:
    machine = translated()["Resources"]["MintBatchStateMachine"]["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    logging_config = machine["LoggingConfiguration"]
    assert logging_config["Level"] in ("ERROR", "ALL")
    assert logging_config["IncludeExecutionData"] is False
    assert logging_config["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["MintBatchStateMachineLogs", "Arn"]}}}
    ]


def alarm_metrics(props: dict[str, Any]) -> set[str]:
    if "MetricName" in props:
        return {props["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}


def test_the_production_alarms_watch_what_the_issue_names() -> None:
    alarms = {n: r["Properties"] for n, r in SOURCE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarm_metrics(alarms["MintBatchFailedAlarm"]) == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }
    latency = alarms["AcceptLatencyAlarm"]
    assert latency["ExtendedStatistic"] == "p99"
    assert {"Name": "Route", "Value": "POST /accept-token"} in latency["Dimensions"]
    routes = {
        d["Value"]
        for name in ("V1ClientErrorsAlarm", "V1SessionsClientErrorsAlarm")
        for m in alarms[name]["Metrics"]
        if "MetricStat" in m
        for d in m["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "Route"
    }
    # Every route of the secret-key API, in one of the two alarms (a metric math alarm reads at most
    # 10 metrics, a hard limit: more fails the deploy); Clerk's Frontend API (browsers, no key) and the
    # public /v1/jwks are ClerkFrontendFunction's, whose failures ClerkFrontendErrorsAlarm watches.
    for props in alarms.values():
        assert sum("MetricStat" in m for m in props.get("Metrics", [])) <= 10
    assert routes == {
        f"{r.method} {r.path}"
        for r in __import__("local.template", fromlist=["http_routes"]).http_routes()
        if r.path.startswith("/v1/") and r.function != "ClerkFrontendFunction"
    }
    assert alarm_metrics(alarms["TokensTableThrottlesAlarm"]) == {"ReadThrottleEvents", "WriteThrottleEvents"}
    duration = alarms["MintLinkDurationAlarm"]
    timeout = SOURCE["Resources"]["MintLinkFunction"]["Properties"]["Timeout"]
    assert duration["MetricName"] == "Duration"
    assert duration["Threshold"] == timeout * 1000 * 0.8
    assert SOURCE["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]["DetailedMetricsEnabled"] is True


def test_the_dashboard_shows_the_documented_metrics() -> None:
    body = SOURCE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = resolver(SOURCE).sub(body[0], body[1])
    dashboard = json.loads(text)
    shown = {
        metric[1] for widget in dashboard["widgets"] for metric in widget["properties"]["metrics"] if metric[0] != "..."
    }
    documented = set(re.findall(r"`(\w+)`", (ROOT / "docs" / "operations.md").read_text().split("**Metrics**", 1)[1]))
    assert {"SignInTokensMinted", "SignInTokensAccepted", "BatchSignInTokensMinted", "BatchUsersFailed"} <= shown
    assert shown & documented >= {
        "SignInTokensMinted",
        "SignInTokensRevoked",
        "SignInTokensAccepted",
        "SignInTokenRetriesAccepted",
    }
    titles = {widget["properties"]["title"] for widget in dashboard["widgets"]}
    assert titles == {
        "Links minted",
        "Accepts by outcome",
        "Latency (ms)",
        "Errors",
        "Batch progress",
        "Capacity (a wave)",
    }
    assert {"ThrottledRequests", "ClaimedAccountConcurrency", "AuditRecordAge"} <= shown  # what the wave alarms watch


def test_one_parameter_sets_lambdas_and_powertools_log_level() -> None:
    function = SOURCE["Globals"]["Function"]
    assert function["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert function["LoggingConfig"]["LogFormat"] == "JSON"  # ApplicationLogLevel needs it


@functools.cache
def taggable_types() -> dict[str, str]:
    """CloudFormation type -> "array" or "object", for every type whose schema has Tags."""
    import cfnlint

    root = Path(cfnlint.__file__).parent / "data" / "schemas" / "providers"
    index = json.loads((root / "us-east-1.json").read_text())
    found = {}
    for kind, ref in index.items():
        if not isinstance(ref, str) or not (root.parent / "resources" / f"{ref}.json").exists():
            continue
        schema = json.loads((root.parent / "resources" / f"{ref}.json").read_text())
        tags = schema.get("properties", {}).get("Tags")
        if tags and "$ref" in tags:  # e.g. AWS::Pipes::Pipe: {"$ref": "#/definitions/TagMap"}
            tags = schema.get("definitions", {}).get(tags["$ref"].rsplit("/", 1)[-1], tags)
        if tags:
            found[kind] = "object" if tags.get("type") == "object" else "array"
    return found


def test_every_taggable_resource_carries_the_stack_stage_and_cost_tags() -> None:
    template = translated("prod")
    evaluate = resolver(template, Stage="prod", CostCenter="team-42")
    want = {"signin-links:stack": STACK, "signin-links:stage": "prod", "cost-center": "team-42"}
    untagged = []
    for logical_id, resource in template["Resources"].items():
        kind = taggable_types().get(resource["Type"])
        if kind is None:
            continue
        if resource["Type"] == "AWS::Events::Rule":
            continue  # SAM's EventBridgeRule events take no tags (docs/deploying.md: use sam deploy --tags)
        props = resource.get("Properties") or {}
        if "Body" in props:  # an HttpApi: SAM writes its tags into the OpenAPI body
            found = {t["name"]: evaluate.resolve(t["x-amazon-apigateway-tag-value"]) for t in props["Body"]["tags"]}
        else:
            tags = evaluate.resolve(props.get("Tags") or ([] if kind == "array" else {}))
            found = {t["Key"]: t["Value"] for t in tags} if kind == "array" else tags
        if {k: found.get(k) for k in want} != want:
            untagged.append(logical_id)
    assert untagged == []


# --- moto's CloudFormation ----------------------------------------------------------------------------

MOTO_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::Events::EventBus",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::SSM::Parameter",
}


def test_moto_cloudformation_creates_the_stateful_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table, queue, bucket, keys, bus, parameter and log groups, as resolved for dev, created
    by moto's CloudFormation (it has no secrets; the Lambda, API and IAM resources need a real
    deploy; the local stack creates the secrets from the same template)."""
    from moto import mock_aws

    source = translated("dev")
    evaluate = resolver(source)
    kept = {
        name: r
        for name, r in source["Resources"].items()
        if r["Type"] in MOTO_TYPES and not ("Condition" in r and not evaluate.condition(r["Condition"]))
    }
    resources = {}
    for name, resource in kept.items():
        props = copy.deepcopy(resource.get("Properties") or {})
        if name == "AcceptBaseUrlParameter":
            props["Value"] = "https://abc123.execute-api.us-east-1.amazonaws.com"  # HttpApi is not created here
        if resource["Type"] in ("AWS::KMS::Key", "AWS::SSM::Parameter"):
            props.pop("Tags", None)  # moto reads these tags in its APIs' shapes, not CloudFormation's
        if name.endswith("Logs") and "LogGroupName" in props:
            props["LogGroupName"] = f"/test/{name}"  # named after functions that are not created here
        resources[name] = {
            "Type": resource["Type"],
            "Properties": props,
            "DeletionPolicy": evaluate.resolve(resource.get("DeletionPolicy", "Delete")),
        }
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": source["Parameters"],
        "Conditions": source["Conditions"],
        "Resources": resources,
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    import boto3

    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        with pytest.raises(cloudformation.exceptions.ClientError, match="Missing parameter Stage"):
            cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(body))  # no default stage
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": "Stage", "ParameterValue": "dev"}],
        )
        stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        created = {
            r["LogicalResourceId"]: r["ResourceStatus"]
            for r in cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        }
        assert set(created) == set(resources)
        assert set(created.values()) == {"CREATE_COMPLETE"}
        assert {r["Type"] for r in resources.values()} == MOTO_TYPES
        assert boto3.client("events", region_name=REGION).describe_event_bus(Name=STACK)["Name"] == STACK
        parameter = boto3.client("ssm", region_name=REGION).get_parameter(Name=f"/{STACK}/accept-base-url")
        assert parameter["Parameter"]["Value"].startswith("https://")
        cloudformation.delete_stack(StackName=STACK)  # dev: nothing is retained
        assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []


if __name__ == "__main__":  # pragma: no cover - a quick look at the translated template
    json.dump(translated(sys.argv[1] if len(sys.argv) > 1 else "dev"), sys.stdout, indent=1)


# --- Clerk's Frontend API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "host"),
    [
        ({}, f"HttpApi.execute-api.{REGION}.amazonaws.com"),
        (
            {
                "CustomDomainName": "clerk.app.example.com",
                "CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/abcd",
            },
            "clerk.app.example.com",
        ),
    ],
)
def test_the_publishable_key_output_names_the_stacks_host(overrides: dict[str, str], host: str) -> None:
    """clerk-js finds the Frontend API from the key: pk_live_ + base64 of "<host>$" (as
    frontend_wire.publishable_key makes it), for the custom domain when there is one."""
    import base64

    from signin_links.frontend_wire import publishable_key

    evaluate = resolver(SOURCE, **overrides)
    outputs = SOURCE["Outputs"]
    key = evaluate.resolve(outputs["PublishableKey"]["Value"])
    assert key == publishable_key(host)
    assert base64.b64decode(key.removeprefix("pk_live_")).decode() == f"{host}$"
    assert evaluate.resolve(outputs["FrontendApiUrl"]["Value"]) == f"https://{host}"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"EmailSender": "links@example.com"}, "email"),
        ({"EmailSender": "links@example.com", "LinkRenewal": "off"}, "off"),
        ({}, "off"),  # auto without delivery by email: nothing to renew with
        ({"LinkRenewal": "application"}, "application"),
        ({"EmailSender": "links@example.com", "LinkRenewal": "application"}, "application"),
    ],
)
def test_link_renewal_is_the_stack_s_own_only_with_delivery_by_email(params: dict[str, str], expected: str) -> None:
    evaluate = resolver(SOURCE, **params)
    environment = SOURCE["Resources"]["AcceptTokenFunction"]["Properties"]["Environment"]["Variables"]
    assert evaluate.resolve(environment["LINK_RENEWAL"]) == expected
