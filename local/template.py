"""Read ``template.yaml``: the one list of routes, tables, secrets and rules.

The local stack and the test fixtures build their resources from here instead of repeating them.
CloudFormation's short-form tags (``!Ref``, ``!Sub``, ...) load as ``{"Ref": ...}`` /
``{"Fn::Sub": ...}`` so the structure is the same as in JSON templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


def resources(kind: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every resource of CloudFormation type ``kind``."""
    template = template or load_template()
    return {
        name: resource.get("Properties") or {}
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


@dataclass(frozen=True)
class Route:
    function: str  # logical id
    method: str
    path: str  # as in the template: /v1/sign_in_tokens/{sign_in_token_id}/revoke


def http_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi route of every function, in template order."""
    routes = []
    for name, props in resources("AWS::Serverless::Function", template).items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                spec = event.get("Properties") or {}
                routes.append(Route(function=name, method=spec["Method"].upper(), path=spec["Path"]))
    return routes


def create_tables(dynamodb: Any, names: dict[str, str] | None = None) -> dict[str, str]:
    """Create every ``AWS::DynamoDB::Table`` of the template on ``dynamodb`` (a boto3 client).

    Returns logical id -> table name (``names`` may fix a name per logical id).
    """
    created = {}
    for logical_id, props in resources("AWS::DynamoDB::Table").items():
        table_name = (names or {}).get(logical_id) or props.get("TableName") or logical_id
        if not isinstance(table_name, str):
            table_name = logical_id
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        created[logical_id] = table_name
    return created
