"""The deploy Lambda's staging actions (``staging:``; mlcicd/aws/template/staging.py).

An action's UserParameters choose the staging endpoint — ``{"endpoint": "staging"}`` deploys
the model to it with production's settings, ``{"endpoint": "staging", "action": "delete"}``
deletes it — but never name it: the name is the function's environment's
(``MLCICD_STAGING_ENDPOINT_NAME``), the one endpoint besides production's its role may touch,
and the only one it may delete.

A staging endpoint is disposable, so what stops a production deploy does not stop this one:
an endpoint left Failed (or being deleted) by an earlier execution is deleted and created
anew instead of failing the job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from mlcicd.aws import names as n
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.codepipeline import PipelineJob
from mlcicd.aws.hosting import FAILED, describe_endpoint
from mlcicd.aws.lambdas.runtime import log
from mlcicd.errors import ConfigError, EndpointError

DELETING = "Deleting"
_WHERE = "the action's UserParameters"


@dataclass(frozen=True)
class Target:
    """Which endpoint an invocation of the deploy Lambda works on, and what it does."""

    staging: bool = False
    action: Literal["deploy", "delete"] = "deploy"

    @classmethod
    def from_job(cls, job: PipelineJob) -> Target:
        """Production's deploy for a job without UserParameters (the Deploy action's)."""
        raw = (job.user_parameters or "").strip()
        if not raw:
            return cls()
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{raw[:100]!r} is not JSON: {exc}", path=_WHERE) from exc
        if (
            not isinstance(value, dict)
            or value.get("endpoint") != "staging"
            or value.get("action", "deploy") not in ("deploy", "delete")
            or set(value) - {"endpoint", "action"}
        ):
            raise ConfigError(
                f"{raw[:100]!r} is not a staging action of the deploy function",
                path=_WHERE,
                hint='the stack writes {"endpoint": "staging"} and '
                '{"action": "delete", "endpoint": "staging"}: redeploy it with `mlcicd aws deploy`',
            )
        return cls(staging=True, action=value.get("action", "deploy"))


def staging_endpoint(raw: str | None) -> str:
    """The staging endpoint's name from the function's environment; a ConfigError when the
    stack set none (it was made from an mlcicd.yaml without ``staging:``)."""
    if not raw:
        raise ConfigError(
            f"{n.ENV_STAGING_ENDPOINT_NAME} is not set, and the pipeline asks for the staging "
            "endpoint",
            path="the function's environment",
            hint="add staging: to mlcicd.yaml and redeploy the stack with `mlcicd aws deploy`",
        )
    return raw


def clear_leftover(sagemaker: AwsClient, endpoint: str) -> bool:
    """True when ``endpoint`` may be created or updated now. An endpoint left Failed by an
    earlier execution cannot be updated: it is deleted (False: come back when it is gone)."""
    described = describe_endpoint(sagemaker, endpoint)
    if described is None:
        return True
    if described["EndpointStatus"] == FAILED:
        reason = described.get("FailureReason") or "no reason given"
        log(f"staging endpoint {endpoint} is Failed ({reason}); deleting it")
        sagemaker.delete_endpoint(EndpointName=endpoint)
        return False
    return bool(described["EndpointStatus"] != DELETING)


def delete_step(job: PipelineJob, endpoint: str) -> None:
    """One step of DeleteStaging: delete the endpoint, then return the continuation token
    until SageMaker no longer knows it."""
    sagemaker = client("sagemaker")
    described = describe_endpoint(sagemaker, endpoint)
    if described is None:
        log(f"staging endpoint {endpoint} is deleted")
        job.succeed(summary=f"{endpoint} deleted", external_id=endpoint)
        return
    status = str(described["EndpointStatus"])
    if status != DELETING:
        if job.continuation is not None and job.continuation.get("deleting"):
            # Asked once already, and SageMaker says it is something else now.
            raise EndpointError(f"staging endpoint {endpoint} is {status}, not deleted")
        log(f"deleting staging endpoint {endpoint} ({status})")
        sagemaker.delete_endpoint(EndpointName=endpoint)  # AWS's refusal fails the job
    job.continue_later({"deleting": endpoint}, summary=f"deleting {endpoint}", external_id=endpoint)
