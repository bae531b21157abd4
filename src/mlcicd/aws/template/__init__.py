"""The reference architecture as a CloudFormation template, generated from mlcicd.yaml.

``build_template`` returns the template as plain data (dicts, lists, strings), so tests and
tools can read it; ``to_yaml`` writes it out. Applying it is a separate step. A section of
mlcicd.yaml the stack does not run is refused first (``check_stack_runs``).

    storage.py      KMS key, artifacts/models/access-log buckets, ECR repository
    monitoring.py   log groups, SNS topic, dead-letter queue, CloudWatch alarms
    iam.py          one least-privilege role per component (training jobs and endpoints apart)
    pipeline.py     CodeBuild project, orchestrator Lambdas, CodePipeline (+ webhook)
    staging.py      the testing stage (staging:): its actions, test project and build spec
    parameters.py   parameters, conditions, rules
    _cfn.py         CloudFormation's intrinsic functions and IAM's policy grammar, as data
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mlcicd.aws.names import DEFAULT_STACK_NAME, StackNames
from mlcicd.aws.template import api, iam, monitoring, network, parameters, pipeline, storage
from mlcicd.aws.template._cfn import Json, arn_of, get_att, ref
from mlcicd.config import CONFIG_FILE, Config, check_sagemaker_deploy, check_sagemaker_hosting
from mlcicd.errors import ConfigError

TEMPLATE_VERSION = "2010-09-09"


def build_template(
    config: Config,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    approval: bool = False,
    buildspec: str = "buildspec.yml",
) -> Json:
    """The stack for ``config``. ``approval`` sets the default of the RequireApproval
    parameter; ``buildspec`` is the build spec's path from the repository root."""
    check_stack_runs(config)
    names = StackNames.from_config(config, stack_name)
    # The pipeline deploys to SageMaker whatever deploy.backend says: SageMaker's limits hold.
    check_sagemaker_deploy(config.deploy)
    check_sagemaker_hosting(config, CONFIG_FILE)
    resources: Json = {
        **storage.resources(names),
        **monitoring.resources(names),
        **iam.resources(
            names,
            rollback_alarms=pipeline.rollback_alarm_names(config, names),
            capture_prefix=pipeline.capture_prefix(config),
            staging_cleanup=config.staging is not None and not config.staging.keep,
            autoscaled=config.deploy.autoscaling is not None,
            network=config.network,
            data_check=config.data_check != "off",
        ),
        **pipeline.resources(config, names, buildspec=buildspec),
        **api.resources(config, names),
        **network.resources(config.network),
    }
    return {
        "AWSTemplateFormatVersion": TEMPLATE_VERSION,
        "Description": f"mlcicd: CI/CD for the {config.pipeline} model - GitHub, CodePipeline, "
        "CodeBuild, "
        f"ECR, Lambda and SageMaker (generated from mlcicd.yaml by `mlcicd aws template`)",
        "Metadata": parameters.interface(),
        "Parameters": parameters.parameters(config, names, approval=approval),
        "Rules": parameters.rules(),
        "Conditions": parameters.conditions(),
        "Resources": resources,
        "Outputs": _outputs(config),
    }


def check_stack_runs(config: Config, source: str = CONFIG_FILE) -> None:
    """Refuse a section of mlcicd.yaml the stack's pipeline does not run (yet).

    The pipeline is build → (process) → train → (evaluate) → gate → register → (staging) →
    deploy, done by CodeBuild and the two orchestrator Lambdas; a section only ``mlcicd run``
    implements would otherwise be dropped without a word, and the stack would deploy models
    the project's own gate, data check or evaluation never saw. Every stack path (``mlcicd aws
    template``, ``deploy``) generates the template, so this one check, before anything is
    generated, covers them all.
    """
    run = "or run the pipeline with `mlcicd run`, which does"
    if config.gate.challenger is not None:
        raise ConfigError(
            "the AWS pipeline does not compare the new model with the production one yet: "
            "its gate would pass on the thresholds alone",
            path=source,
            key="gate.challenger",
            hint=f"for the stack, remove gate.challenger; {run}",
        )
    if config.transform is not None:
        raise ConfigError(
            "the AWS pipeline does not run the batch transform stage yet",
            path=source,
            key="transform",
            hint=f"for the stack, remove transform:; {run} (transform.backend: sagemaker runs "
            "a SageMaker transform job)",
        )
    if config.explain is not None:
        raise ConfigError(
            "the AWS pipeline does not explain the models it registers yet",
            path=source,
            key="explain",
            hint=f"for the stack, remove explain:; {run} (at register)",
        )


def _outputs(config: Config) -> Json:
    outputs: dict[str, tuple[str, Any]] = {
        "ArtifactsBucketName": ("Pipeline artifacts bucket", ref(storage.ARTIFACTS_BUCKET)),
        "ModelsBucketName": ("Model artifacts bucket", ref(storage.MODELS_BUCKET)),
        "RepositoryUri": (
            "ECR repository of the training and serving image",
            get_att(storage.REPOSITORY, "RepositoryUri"),
        ),
        "PipelineName": ("CodePipeline pipeline", ref(pipeline.PIPELINE)),
        "NotificationTopicArn": ("SNS topic for approvals and alarms", ref(monitoring.TOPIC)),
        "SageMakerRoleArn": ("Execution role of the training jobs", arn_of(iam.SAGEMAKER_ROLE)),
        "EndpointRoleArn": (
            "Execution role of the endpoints (reads models, never writes them)",
            arn_of(iam.ENDPOINT_ROLE),
        ),
        "TrainingFunctionName": ("Training orchestrator Lambda", ref(pipeline.TRAINING_FUNCTION)),
        "DeployFunctionName": ("Deploy orchestrator Lambda", ref(pipeline.DEPLOY_FUNCTION)),
        "EncryptionKeyArn": ("KMS key of the stack's data", arn_of(storage.KEY)),
        **api.outputs(config),
    }
    return {
        key: {"Description": description, "Value": value}
        for key, (description, value) in outputs.items()
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # CloudFormation rejects YAML anchors and aliases


def to_yaml(template: Json) -> str:
    """CloudFormation YAML, in the template's own key order (intrinsics in long form)."""
    return yaml.dump(
        template,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=120,
        allow_unicode=True,
    )


# CloudFormation's limit on a template passed inline (TemplateBody); beyond it, only from S3.
TEMPLATE_BODY_LIMIT = 51_200


def template_body(template: Json) -> str:
    """What ``mlcicd aws deploy`` sends CloudFormation: compact JSON. The YAML printed for
    people has room to read; with every stage (staging:, approval, canary with alarms and
    capture) it is past the inline limit, the same template as JSON well within it."""
    return json.dumps(template, separators=(",", ":"))


__all__ = [
    "DEFAULT_STACK_NAME",
    "TEMPLATE_BODY_LIMIT",
    "build_template",
    "check_stack_runs",
    "template_body",
    "to_yaml",
]
