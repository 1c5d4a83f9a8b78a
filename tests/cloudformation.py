"""template.yaml as CloudFormation will see it, for the template tests: the source, the SAM transform
(samtranslator, offline), intrinsics evaluated for one stack, a role's statements under given
parameters, and what CloudFormation refuses before creating anything (constraints and rules)."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from typing import Any

from local.intrinsics import Resolver, parameter_values
from local.template import load_template

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "signin-links-dev"

SOURCE = load_template()
PARAMETERS: dict[str, dict[str, Any]] = SOURCE["Parameters"]
DEPLOY = {"Stage": "dev"}  # what every deploy must say (no default), as samconfig.toml's [default] does


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@functools.cache
def _translated(stage: str) -> str:
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(SOURCE)
    for resource in template["Resources"].values():  # what `sam package` does to local paths
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"
        if resource["Type"] == "AWS::Serverless::StateMachine":
            resource["Properties"]["DefinitionUri"] = "s3://bucket/definition.json"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return json.dumps(transform(template, {"Stage": stage}, _NoManagedPolicies()))


def translated(stage: str = "dev") -> dict[str, Any]:
    """The template after the SAM transform (a fresh copy)."""
    result: dict[str, Any] = json.loads(_translated(stage))
    return result


def resolver(template: dict[str, Any], **overrides: str) -> Resolver:
    """Evaluates intrinsics as CloudFormation would for stack ``STACK`` (resources by logical id)."""
    return Resolver(
        template,
        parameter_values(template, {**DEPLOY, **overrides}),
        ref_of=lambda logical_id: logical_id if logical_id in template["Resources"] else None,
        att_of=lambda logical_id, attr: f"arn:aws:{logical_id}:{attr}",
        region=REGION,
        account_id=ACCOUNT,
        stack_name=STACK,
    )


def role_arn(template: dict[str, Any], role: str) -> str:
    """The ARN a role will have (CloudFormation generates its name from the stack and logical id)."""
    path = resolver(template).resolve(template["Resources"][role]["Properties"].get("Path", "/"))
    return f"arn:aws:iam::{ACCOUNT}:role{path}{STACK}-{role}-AbCdEf123456"


def statements(template: dict[str, Any], role: str, **overrides: str) -> list[dict[str, Any]]:
    """A role's statements with these parameters: a statement under ``Fn::If`` is there or not (the
    rest is left as written, intrinsics included)."""
    evaluate = resolver(template, **overrides)
    found = []
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for written in policy["PolicyDocument"]["Statement"]:
            statement = written
            while isinstance(statement, dict) and set(statement) == {"Fn::If"}:
                condition, when_true, when_false = statement["Fn::If"]
                statement = when_true if evaluate.condition(condition) else when_false
            if statement != {"Ref": "AWS::NoValue"}:
                found.append(statement)
    return found


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def violations(values: dict[str, str], region: str = REGION) -> list[str]:
    """What CloudFormation refuses before creating anything: each parameter's AllowedValues,
    AllowedPattern (a whole match), MinValue/MaxValue, then every rule whose condition holds."""
    template = SOURCE
    found = []
    params = {name: str(spec.get("Default", "")) for name, spec in PARAMETERS.items()} | DEPLOY | values
    for name, value in params.items():
        spec = PARAMETERS[name]
        allowed = [str(item) for item in spec.get("AllowedValues", [value])]
        if value not in allowed or not re.fullmatch(spec.get("AllowedPattern", ".*"), value):
            found.append(name)
        elif spec["Type"] == "Number":
            number = float(value)
            if ("MinValue" in spec and number < spec["MinValue"]) or ("MaxValue" in spec and number > spec["MaxValue"]):
                found.append(name)
    if found:
        return found
    evaluate = resolver(template, **values)
    evaluate.region = region
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not evaluate.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate.resolve(assertion["Assert"]):
                found.append(name)
    return found
