"""CloudFormation's intrinsic functions and IAM's policy grammar, as plain data."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

NO_VALUE: Json = {"Ref": "AWS::NoValue"}
ACCOUNT_ID: Json = {"Ref": "AWS::AccountId"}


def ref(name: str) -> Json:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> Json:
    return {"Fn::GetAtt": [resource, attribute]}


def arn_of(resource: str) -> Json:
    return get_att(resource, "Arn")


def sub(text: str) -> Json:
    return {"Fn::Sub": text}


def if_(condition: str, then: Any, otherwise: Any) -> Json:
    return {"Fn::If": [condition, then, otherwise]}


def not_empty(parameter: str) -> Json:
    return {"Fn::Not": [{"Fn::Equals": [ref(parameter), ""]}]}


def equals(parameter: str, value: str) -> Json:
    return {"Fn::Equals": [ref(parameter), value]}


def allow(
    sid: str, actions: list[str], resources: list[Any] | str, *, condition: Json | None = None
) -> Json:
    statement: Json = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def policy_document(*statements: Json) -> Json:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume_role_policy(service: str) -> Json:
    return policy_document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


def deny_insecure_transport(action: str, resources: list[Any]) -> Json:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resources,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def checkov_skips(*skips: tuple[str, str]) -> Json:
    """Resource ``Metadata`` that tells checkov a check does not apply here, and why."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in skips]}}


def pipeline_action(
    name: str,
    category: str,
    provider: str,
    configuration: Json,
    *,
    owner: str = "AWS",
    inputs: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
    run_order: int = 1,
) -> Json:
    """A CodePipeline action: its type, configuration, artifacts and place in its stage."""
    action: Json = {
        "Name": name,
        "ActionTypeId": {
            "Category": category,
            "Owner": owner,
            "Provider": provider,
            "Version": "1",
        },
        "Configuration": configuration,
        "RunOrder": run_order,
    }
    if inputs:
        action["InputArtifacts"] = [{"Name": a} for a in inputs]
    if outputs:
        action["OutputArtifacts"] = [{"Name": a} for a in outputs]
    return action
