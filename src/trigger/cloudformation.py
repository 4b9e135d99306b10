"""Read a CloudFormation template and resolve it for one set of parameter values.

Enough of CloudFormation for the event source mappings of infra/aws/template.yaml (and templates
like it): the short tags (!Ref, !Sub, !If, ...), parameters with their defaults, conditions, and
the intrinsic functions Ref, Condition, Fn::If/Equals/Not/And/Or, Fn::Split/Select/Sub/GetAtt,
with AWS::NoValue removing the property. A Ref or GetAtt to a resource resolves to `<Name>` or
`<Name.Attribute>` unless `resource_value` knows better (the trigger maps a function's Arn to its
FunctionName).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import yaml

NO_VALUE = object()
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "000000000000",
          "AWS::StackName": "local", "AWS::URLSuffix": "amazonaws.com"}


class TemplateError(ValueError):
    """The template uses something this resolver does not know, or names what does not exist."""


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns !Ref/!GetAtt/!Sub/!If/... into their JSON long forms."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load_template(path: str | Path) -> dict:
    return yaml.load(Path(path).read_text(), Loader=CfnLoader)


class Stack:
    """The template resolved for one set of parameter values (strings, as CloudFormation passes them)."""

    def __init__(self, template: dict, pseudo: dict | None = None,
                 resource_value: Callable[["Stack", str, str | None], object] | None = None, **overrides: str):
        self.template = template
        self.params = {name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()}
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise TemplateError(f"not template parameters: {', '.join(sorted(unknown))}")
        self.params.update({k: str(v) for k, v in overrides.items()})
        self.pseudo = {**PSEUDO, **(pseudo or {})}
        self.resource_value = resource_value
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def _variable(self, name: str, local: dict):
        if name in local:
            return local[name]
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        resource, _, attribute = name.partition(".")
        if resource not in self.template.get("Resources", {}):
            raise TemplateError(f"${{{name}}} names nothing in the template")
        if self.resource_value is not None:
            return self.resource_value(self, resource, attribute or None)
        return f"<{name}>"

    def resolve(self, node):  # noqa: C901 - one branch per intrinsic function
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self._variable(arg, {})
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Fn::GetAtt":
                return self._variable(".".join(arg), {})
            if key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._variable(m.group(1), local)), text)
            if key.startswith("Fn::"):
                raise TemplateError(f"the resolver does not know {key}")
        if isinstance(node, dict):
            resolved = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        return node

    def resources_of_type(self, kind: str) -> list[str]:
        return [name for name, res in self.template.get("Resources", {}).items()
                if res.get("Type") == kind and ("Condition" not in res or self.condition(res["Condition"]))]

    def properties(self, resource: str) -> dict:
        return self.resolve(self.template["Resources"][resource].get("Properties") or {})
