"""Reading a generated template in tests: resolve its conditions, walk its policies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

_NO_VALUE = object()


def parameter_values(
    template: dict[str, Any], overrides: dict[str, str] | None = None
) -> dict[str, str]:
    values = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    values.update(overrides or {})
    return values


def resolve(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The template as CloudFormation would see it with these parameter values: conditions
    evaluated, ``Fn::If`` taken, ``AWS::NoValue`` dropped, resources whose condition is false
    removed. Other intrinsics stay as they are."""
    values = parameter_values(template, overrides)
    conditions: dict[str, bool] = {}
    for name, expression in template.get("Conditions", {}).items():
        conditions[name] = _evaluate(expression, values, conditions)
    out = copy.deepcopy(template)
    out["Resources"] = {
        logical_id: _take_ifs(resource, conditions)
        for logical_id, resource in template["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    return out


def _evaluate(expression: Any, values: dict[str, str], conditions: dict[str, bool]) -> Any:
    if isinstance(expression, dict) and len(expression) == 1:
        [(function, args)] = expression.items()
        if function == "Ref":
            return values[args]
        if function == "Condition":
            return conditions[args]
        if function == "Fn::Equals":
            left, right = (_evaluate(a, values, conditions) for a in args)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not _evaluate(args[0], values, conditions)
        if function == "Fn::And":
            return all(_evaluate(a, values, conditions) for a in args)
        if function == "Fn::Or":
            return any(_evaluate(a, values, conditions) for a in args)
    return expression


def _take_ifs(node: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, then, otherwise = node["Fn::If"]
            return _take_ifs(then if conditions[name] else otherwise, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        items = ((k, _take_ifs(v, conditions)) for k, v in node.items())
        return {k: v for k, v in items if v is not _NO_VALUE}
    if isinstance(node, list):
        return [v for v in (_take_ifs(v, conditions) for v in node) if v is not _NO_VALUE]
    return node


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, statement) for every statement of every role's inline policies."""
    for logical_id, role in resources_of_type(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def references(node: Any) -> set[str]:
    """Logical ids that ``node`` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub" and isinstance(value, str):
                found.update(name.split(".")[0] for name in _sub_names(value))
            else:
                found |= references(value)
    elif isinstance(node, list):
        for value in node:
            found |= references(value)
    return found


def _sub_names(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.index("}", start)
        if not text.startswith("${!", start):
            yield text[start + 2 : end]
        start = text.find("${", end)
