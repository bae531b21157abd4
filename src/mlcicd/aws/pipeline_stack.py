"""`mlcicd aws deploy`'s work: a project's pipeline as a stack, with its Lambda code and
webhook secret.

:mod:`mlcicd.aws.template` generates the template and :mod:`mlcicd.aws.stack` applies any
template; between them, this module supplies what only a deploy of *this* pipeline knows:
where CodeBuild finds buildspec.yml in the repository, the orchestrator Lambdas' package
(built and uploaded under its sha256, so the functions change exactly when their code does),
and a webhook secret generated at random for a stack that has none yet. The CLI parses,
calls :func:`publish_lambda_code` and :func:`deploy_pipeline` and prints what they report.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd.aws.package import build_lambda_package
from mlcicd.aws.stack import (
    OnEvent,
    StackResult,
    default_code_bucket,
    deploy_stack,
    upload_lambda_package,
    upload_template,
)
from mlcicd.aws.template import TEMPLATE_BODY_LIMIT, build_template, template_body
from mlcicd.aws.template.parameters import WEBHOOK_SECRET
from mlcicd.errors import ProjectError
from mlcicd.project import Project

CODE_BUCKET = "LambdaCodeBucket"
CODE_KEY = "LambdaCodeKey"


@dataclass(frozen=True)
class LambdaCode:
    """The Lambda package a deploy uploaded: where it is, and what it holds."""

    bucket: str
    key: str
    files: int
    sha256: str


@dataclass(frozen=True)
class PipelineDeployment:
    stack: StackResult
    code: LambdaCode | None  # None when the parameters named the code (LambdaCodeKey)

    @property
    def webhook_secret_generated(self) -> bool:
        """This deploy set WebhookSecret at random (the stack had none, none was given)."""
        return WEBHOOK_SECRET in self.stack.first_values


def _buildspec(project: Project) -> str:
    """buildspec.yml's path from the repository root, where CodeBuild starts."""
    try:
        rel = project.rel
    except ProjectError:  # not (yet) a git repository: the project will be its root
        rel = ""
    return f"{rel}/buildspec.yml" if rel else "buildspec.yml"


def pipeline_template(project: Project, *, stack_name: str, approval: bool) -> dict[str, Any]:
    """The stack `mlcicd aws template` prints and `mlcicd aws deploy` applies."""
    return build_template(
        project.config, stack_name=stack_name, approval=approval, buildspec=_buildspec(project)
    )


def publish_lambda_code(
    parameters: Mapping[str, str], code_bucket: str | None = None
) -> LambdaCode | None:
    """Build the Lambda package in a temporary directory and upload it, unless ``parameters``
    name the code already (LambdaCodeKey; then None). It goes to LambdaCodeBucket, else
    ``code_bucket``, else ``mlcicd-lambda-code-<account>-<region>`` (created if missing)."""
    if CODE_KEY in parameters:
        return None
    bucket = parameters.get(CODE_BUCKET) or code_bucket or default_code_bucket()
    with tempfile.TemporaryDirectory(prefix="mlcicd-package-") as tmp:
        package = build_lambda_package(Path(tmp) / "lambdas.zip")
        key = upload_lambda_package(package, bucket)
    return LambdaCode(bucket, key, package.files, package.sha256)


def deploy_pipeline(
    project: Project,
    template: dict[str, Any],
    parameters: Mapping[str, str],
    code: LambdaCode | None,
    *,
    stack_name: str,
    on_event: OnEvent | None = None,
) -> PipelineDeployment:
    """Create or update ``stack_name`` to ``template`` (:func:`pipeline_template`'s, made
    first so that a bad config fails before anything is uploaded); wait for CloudFormation.

    ``code`` is what :func:`publish_lambda_code` uploaded (None: ``parameters`` name it).
    Parameters not given keep their values on an update. A template past CloudFormation's
    inline limit (``api:`` with the rest can pass it) goes to S3 first, beside the Lambda
    code — the one bucket a deploy writes before the stack exists — and CloudFormation reads
    it from there.
    """
    given = dict(parameters)
    if code is not None:
        given.update({CODE_BUCKET: code.bucket, CODE_KEY: code.key})
    # 256 random bits, URL-safe: used only if the stack has no WebhookSecret yet. It is never
    # returned: CloudFormation keeps it (NoEcho) and CodePipeline registers it with GitHub.
    generated = {WEBHOOK_SECRET: secrets.token_urlsafe(32)}
    body = template_body(template)
    template_url = None
    if len(body.encode("utf-8")) > TEMPLATE_BODY_LIMIT:
        template_url = upload_template(body, given.get(CODE_BUCKET) or default_code_bucket())
    result = deploy_stack(
        stack_name,
        body,
        template,
        given,
        first_values=generated,
        on_event=on_event,
        tags={"mlcicd:pipeline": project.config.pipeline},
        template_url=template_url,
    )
    return PipelineDeployment(result, code)


__all__ = [
    "LambdaCode",
    "PipelineDeployment",
    "deploy_pipeline",
    "pipeline_template",
    "publish_lambda_code",
]
