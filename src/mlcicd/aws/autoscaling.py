"""``deploy.autoscaling`` on SageMaker: Application Auto Scaling's target tracking on each
production variant, as the deploy Lambda and ``deploy.backend: sagemaker`` both apply it.

An endpoint exists only once a run has deployed it, so the stack cannot declare its
ScalableTarget; whoever deploys registers it — a ScalableTarget per variant
(``endpoint/<endpoint>/variant/<variant>``, ``sagemaker:variant:DesiredInstanceCount``)
between ``min_instances`` and ``max_instances``, and a TargetTrackingScaling policy on
SageMakerVariantInvocationsPerInstance (invocations per instance per minute).

SageMaker refuses an UpdateEndpoint that changes the instance type of, or removes, a variant
registered for scaling. As AWS documents ("Update endpoints that use auto scaling"), an
update therefore goes: delete the policies and deregister the variants
(:func:`deregister`), update, wait for InService, register them again (:func:`register`) —
the deploy does this around every update, so a change of instance type or variants never
fails on it. While it is deregistered the endpoint keeps the instance count it had.

Removing ``deploy.autoscaling`` from the config must also remove the registration: left
behind, Application Auto Scaling would go on resizing the endpoint the config now says has a
fixed count, and refuse the next update of its instance type. So every deploy deregisters
before an update whatever the config says, and once the endpoint is InService
:func:`settle` registers the variants — or, without ``autoscaling``, deregisters what an
earlier deploy registered (the endpoint keeps the instance count it had then; the next update
sets ``deploy.instance_count``).

Each target is tagged ``mlcicd:endpoint=<endpoint>``: Application Auto Scaling's resources
are opaque ids, not endpoint names, so the stack's IAM policy lets the deploy Lambda touch
only the targets carrying its endpoint's tag (mlcicd/aws/template/iam.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.config import AutoscalingConfig
from mlcicd.errors import AwsError

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = "mlcicd-invocations-per-instance"
ENDPOINT_TAG = "mlcicd:endpoint"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def to_json(scaling: AutoscalingConfig) -> dict[str, Any]:
    """``deploy.autoscaling`` as the deploy Lambda's ``$MLCICD_AUTOSCALING``."""
    return dataclasses.asdict(scaling)


def policy(scaling: AutoscalingConfig) -> dict[str, Any]:
    """PutScalingPolicy's TargetTrackingScalingPolicyConfiguration."""
    return {
        "TargetValue": float(scaling.target_invocations_per_instance),
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        "ScaleInCooldown": scaling.scale_in_cooldown,
        "ScaleOutCooldown": scaling.scale_out_cooldown,
    }


def register(
    autoscaling: AwsClient, endpoint: str, variants: Sequence[str], scaling: AutoscalingConfig
) -> list[str]:
    """Register each variant as a scalable target and put its target-tracking policy (both
    calls update what exists, so a retried deploy repeats them harmlessly); return the
    resource ids."""
    ids = []
    for variant in variants:
        target = resource_id(endpoint, variant)
        autoscaling.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=target,
            ScalableDimension=DIMENSION,
            MinCapacity=scaling.min_instances,
            MaxCapacity=scaling.max_instances,
            Tags={ENDPOINT_TAG: endpoint},
        )
        autoscaling.put_scaling_policy(
            PolicyName=POLICY_NAME,
            ServiceNamespace=NAMESPACE,
            ResourceId=target,
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=policy(scaling),
        )
        ids.append(target)
    return ids


def registered(autoscaling: AwsClient, endpoint: str) -> list[str]:
    """The resource ids of ``endpoint``'s variants registered for scaling."""
    prefix = resource_id(endpoint, "")
    return [
        str(target["ResourceId"])
        for page in autoscaling.paginate("describe_scalable_targets", ServiceNamespace=NAMESPACE)
        for target in page.get("ScalableTargets", [])
        if str(target["ResourceId"]).startswith(prefix)
        and target.get("ScalableDimension") == DIMENSION
    ]


def deregister(autoscaling: AwsClient, endpoint: str) -> list[str]:
    """Delete the scaling policies of ``endpoint``'s variants and deregister them, before an
    UpdateEndpoint; return the resource ids that were registered."""
    targets = registered(autoscaling, endpoint)
    for target in targets:
        answer = autoscaling.describe_scaling_policies(
            ServiceNamespace=NAMESPACE, ResourceId=target, ScalableDimension=DIMENSION
        )
        for found in answer.get("ScalingPolicies", []):
            _gone_is_fine(
                autoscaling.delete_scaling_policy,
                PolicyName=found["PolicyName"],
                ServiceNamespace=NAMESPACE,
                ResourceId=target,
                ScalableDimension=DIMENSION,
            )
        _gone_is_fine(
            autoscaling.deregister_scalable_target,
            ServiceNamespace=NAMESPACE,
            ResourceId=target,
            ScalableDimension=DIMENSION,
        )
    return targets


def settle(
    autoscaling: AwsClient,
    endpoint: str,
    variants: Sequence[str],
    scaling: AutoscalingConfig | None,
) -> tuple[list[str], list[str]]:
    """Once ``endpoint`` is InService: its variants registered with ``scaling``, or — when the
    config has none — the variants an earlier deploy registered deregistered. Returns (the
    resource ids registered, those deregistered)."""
    if scaling is not None:
        return register(autoscaling, endpoint, variants, scaling), []
    return [], deregister(autoscaling, endpoint)


def _gone_is_fine(call: Any, **kwargs: Any) -> None:
    """``call``, where another deploy having removed the thing first is success."""
    try:
        call(**kwargs)
    except AwsError as exc:
        if exc.code != "ObjectNotFoundException":
            raise


__all__ = [
    "DIMENSION",
    "ENDPOINT_TAG",
    "METRIC",
    "NAMESPACE",
    "POLICY_NAME",
    "deregister",
    "policy",
    "register",
    "registered",
    "resource_id",
    "settle",
    "to_json",
]
