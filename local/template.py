"""Read ``template.yaml``: the one list of routes, tables, secrets and rules.

The local stack and the test fixtures build their resources from here instead of repeating them.
CloudFormation's short-form tags (``!Ref``, ``!Sub``, ...) load as ``{"Ref": ...}`` /
``{"Fn::Sub": ...}`` so the structure is the same as in JSON templates.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
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


_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "StreamSpecification")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")


def create_table(dynamodb: Any, table_name: str, props: dict[str, Any]) -> None:
    """Create one table from its (resolved) CloudFormation properties on ``dynamodb`` (a boto3 client)."""
    kwargs: dict[str, Any] = {"TableName": table_name, "BillingMode": "PAY_PER_REQUEST"}
    kwargs.update({key: props[key] for key in _TABLE_KEYS if props.get(key)})
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(kind):
            kwargs[kind] = [{key: index[key] for key in _INDEX_KEYS if key in index} for index in props[kind]]
    if "StreamSpecification" in kwargs:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **kwargs["StreamSpecification"]}
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def create_tables(dynamodb: Any, names: dict[str, str] | None = None) -> dict[str, str]:
    """Create every ``AWS::DynamoDB::Table`` of the template on ``dynamodb`` (a boto3 client).

    Returns logical id -> table name (``names`` may fix a name per logical id).
    """
    created = {}
    for logical_id, props in resources("AWS::DynamoDB::Table").items():
        table_name = (names or {}).get(logical_id) or props.get("TableName") or logical_id
        if not isinstance(table_name, str):
            table_name = logical_id
        create_table(dynamodb, table_name, props)
        created[logical_id] = table_name
    return created


# --- Parameters, conditions and intrinsic functions -------------------------------------------------

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
NO_VALUE = object()  # AWS::NoValue: the key or list item disappears


# What the local stack and the tools that evaluate the template deploy with, beyond the defaults: the
# template's Stage has no default (every deploy names it), and a local stack is a dev stack.
LOCAL_DEPLOY = {"Stage": "dev"}


class TemplateError(ValueError):
    """The template (or an override) cannot be evaluated locally; the message says where."""


def parameter_values(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Each parameter's value: the override if given, else its ``Default``.

    ``CommaDelimitedList`` parameters become lists; ``AllowedValues`` is enforced on overrides.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(template.get("Parameters") or {}))
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            raw: Any = overrides[name]
            allowed = spec.get("AllowedValues")
            if allowed and str(raw) not in [str(item) for item in allowed]:
                raise TemplateError(f"parameter {name}: {raw!r} is not one of {allowed}")
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default: give it a value")
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
        else:
            values[name] = raw if isinstance(raw, str) else str(raw)
    return values


RefLookup = Callable[[str], "str | None"]
AttLookup = Callable[[str, str], "str | None"]


@dataclass
class Resolver:
    """Evaluates ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::If``, ``Fn::Join``, ``Fn::Select``,
    ``Fn::Split``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::ToJsonString`` and the condition functions,
    with resources looked up through ``ref_of`` / ``att_of`` (the local names of created resources).
    """

    template: dict[str, Any]
    parameters: dict[str, Any]
    ref_of: RefLookup = lambda _logical_id: None
    att_of: AttLookup = lambda _logical_id, _attr: None
    region: str = REGION
    account_id: str = ACCOUNT_ID
    stack_name: str = "signin-links-local"
    _conditions: dict[str, bool] = field(default_factory=dict)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name.startswith("AWS::"):
            value = self.pseudo(name)
            if value is None:
                raise TemplateError(f"unknown pseudo parameter {name}")
            return value
        base, dot, attribute = name.partition(".")
        if dot and attribute == "Alias":  # SAM: the alias AutoPublishAlias publishes, as its ARN
            alias = self.alias_of(base)
            arn = self.att_of(base, "Arn")
            if alias is None or arn is None:
                raise TemplateError(f"Ref {name}: {base} publishes no alias (AutoPublishAlias)")
            return f"{arn}:{alias}"
        value = self.ref_of(name)
        if value is None:
            raise TemplateError(f"Ref {name}: no such parameter or resource")
        return value

    def alias_of(self, logical_id: str) -> str | None:
        """The AutoPublishAlias of a function (its own, else the Globals'), or None."""
        resource = (self.template.get("Resources") or {}).get(logical_id) or {}
        if resource.get("Type") != "AWS::Serverless::Function":
            return None
        globals_ = ((self.template.get("Globals") or {}).get("Function")) or {}
        alias = (resource.get("Properties") or {}).get("AutoPublishAlias", globals_.get("AutoPublishAlias"))
        return str(self.resolve(alias)) if alias else None

    def get_att(self, logical_id: str, attr: str) -> str:
        value = self.att_of(logical_id, attr)
        if value is None:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attr}: unknown locally")
        return value

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(self.resolve(variables[expression]))
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attr = expression.split(".", 1)
                return self.get_att(logical_id, attr)
            return str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1] if len(arg) > 1 else {})
                return self.sub(arg, {})
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(parts[0], ".".join(str(part) for part in parts[1:]))
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in arg)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in arg)
            if key == "Fn::Join":
                delimiter, items = arg
                return str(delimiter).join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self.resolve(text)).split(delimiter)
            if key == "Fn::FindInMap":
                name, top, second = (self.resolve(item) for item in arg[:3])
                return self.template["Mappings"][name][top][second]
            if key == "Fn::Base64":
                return base64.b64encode(str(self.resolve(arg)).encode()).decode("ascii")
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if key == "Fn::GetAZs":
                return [f"{self.region}{zone}" for zone in "abc"]
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported locally")
        resolved = {name: self.resolve(item) for name, item in value.items()}
        return {name: item for name, item in resolved.items() if item is not NO_VALUE}


def references(value: Any) -> set[str]:
    """Logical ids (and parameter names) that ``value`` mentions through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg.removesuffix(".Alias"))  # SAM's Function.Alias names the function
            elif key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                found.add(str(parts[0]))
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                if isinstance(text, str):
                    found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(arg, list) and len(arg) > 1:
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def creation_order(template: dict[str, Any]) -> list[str]:
    """Logical ids of every resource, each after the resources it refers to (cycles: template order)."""
    all_resources: dict[str, Any] = template["Resources"]
    depends: dict[str, set[str]] = {}
    for logical_id, resource in all_resources.items():
        explicit = resource.get("DependsOn") or []
        explicit = [explicit] if isinstance(explicit, str) else explicit
        mentioned = references(resource.get("Properties") or {}) | set(explicit)
        depends[logical_id] = {name for name in mentioned if name in all_resources and name != logical_id}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order or logical_id in visiting:
            return
        visiting.add(logical_id)
        for dependency in sorted(depends[logical_id]):
            visit(dependency)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in all_resources:
        visit(logical_id)
    return order


# --- Functions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """What the local stack needs to run one ``AWS::Serverless::Function`` (Globals merged in)."""

    logical_id: str
    source_dir: Path  # Metadata.SourceDir, else CodeUri
    handler: str  # module.attribute, as in the template (app.lambda_handler)
    memory_mb: int
    timeout_s: int
    environment: dict[str, Any]  # unresolved: values may still hold intrinsics
    properties: dict[str, Any]

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.source_dir.joinpath(*module.split(".")).with_suffix(".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]


def functions(template: dict[str, Any] | None = None, root: Path = ROOT) -> dict[str, FunctionSpec]:
    """Logical id -> :class:`FunctionSpec` of every ``AWS::Serverless::Function``."""
    template = template or load_template()
    defaults = ((template.get("Globals") or {}).get("Function")) or {}
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**defaults, **(resource.get("Properties") or {})}
        variables = {
            **(((defaults.get("Environment") or {}).get("Variables")) or {}),
            **((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}),
        }
        metadata = resource.get("Metadata") or {}
        source = metadata.get("SourceDir") or props.get("CodeUri") or "."
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            source_dir=(root / str(source)).resolve(),
            handler=str(props.get("Handler", "app.lambda_handler")),
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=int(props.get("Timeout", 3)),
            environment=variables,
            properties=props,
        )
    return specs


def function_environment(spec: FunctionSpec, resolver: Resolver) -> dict[str, str]:
    """The function's environment variables with every intrinsic resolved to local values."""
    resolved = resolver.resolve(spec.environment)
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in resolved.items()}
