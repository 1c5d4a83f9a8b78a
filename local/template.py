"""Read ``template.yaml``: the one list of routes, tables, secrets and rules.

The local stack and the test fixtures build their resources from here instead of repeating them.
CloudFormation's short-form tags (``!Ref``, ``!Sub``, ...) load as ``{"Ref": ...}`` /
``{"Fn::Sub": ...}`` so the structure is the same as in JSON templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from local.intrinsics import Resolver

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
