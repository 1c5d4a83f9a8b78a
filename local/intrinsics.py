"""CloudFormation's evaluation of a template, locally: parameter values, conditions, intrinsic
functions (``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ...) resolved against local names, and the order
in which resources refer to one another."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.account import ACCOUNT_ID, REGION

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
