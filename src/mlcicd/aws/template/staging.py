"""The testing stage (``staging:``): a staging endpoint, the project's endpoint tests and the
load check against it, before the approval and the production deploy.

    Staging  DeployStaging  the deploy Lambda, {"endpoint": "staging"}: production's settings,
                            the staging endpoint's name (from its environment, never the event)
             TestStaging    CodeBuild <stack>-staging-test: staging.test, then the load check
             DeleteStaging  the deploy Lambda, {"endpoint": "staging", "action": "delete"}
                            (left out with staging.keep)

CodePipeline stops at a failed action, so DeleteStaging runs only after the tests passed; when
they fail, the test project's post_build deletes the endpoint itself (its role may delete that
one endpoint and no other), and a staging endpoint left behind anyway (an execution stopped
by hand) is updated, or replaced when Failed, by the next DeployStaging.
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

import yaml

from mlcicd.aws.names import StackNames
from mlcicd.aws.template._cfn import Json, arn_of, pipeline_action, ref, sub
from mlcicd.aws.template.iam import STAGING_TEST_ROLE
from mlcicd.aws.template.monitoring import STAGING_TEST_LOG_GROUP
from mlcicd.aws.template.storage import KEY
from mlcicd.config import Config
from mlcicd.config.schema import LoadCheckConfig, StagingConfig

STAGING = "Staging"
DEPLOY_STAGING, TEST_STAGING, DELETE_STAGING = "DeployStaging", "TestStaging", "DeleteStaging"
TEST_PROJECT = "StagingTestProject"

# What the deploy Lambda reads from an action's UserParameters (mlcicd.aws.lambdas.deploy).
STAGING_TARGET = "staging"
DELETE = "delete"
LOAD_CHECK_MODULE = "mlcicd.aws.load_check"
# What the test project installs beside the project's requirements: boto3 (for tests using
# sagemaker-runtime) and the load check. Pin it as the Dockerfile's MLCICD_SPEC is pinned.
MLCICD_SPEC = "mlcicd[aws]"
INSTALL_COMMANDS = (
    "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi",
    'pip install pytest "$MLCICD_SPEC"',
)
INSTALL_MINUTES = 15  # CodeBuild's timeout beyond staging.timeout: installing, the load check


def user_parameters(*, delete: bool = False) -> str:
    """The deploy Lambda's UserParameters for the staging actions."""
    value = {"endpoint": STAGING_TARGET, **({"action": DELETE} if delete else {})}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def runtime_url(names: StackNames) -> Json:
    """The staging endpoint's SageMaker Runtime URL (SigV4-signed requests only)."""
    return sub(
        "https://runtime.sagemaker.${AWS::Region}.${AWS::URLSuffix}"
        f"/endpoints/{names.staging_endpoint}/invocations"
    )


def resources(config: Config, names: StackNames, *, project_dir: str, image: str) -> Json:
    """The test project (none without ``staging:``); the stage's actions are :func:`stage`'s."""
    if config.staging is None or names.staging_endpoint is None:
        return {}
    return {TEST_PROJECT: _test_project(config, config.staging, names, project_dir, image)}


def _test_project(
    config: Config, staging: StagingConfig, names: StackNames, project_dir: str, image: str
) -> Json:
    return {
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": names.staging_test_project,
            "Description": f"Staging stage of {names.code_pipeline}: runs the endpoint tests and "
            f"the load check against {names.staging_endpoint}",
            "ServiceRole": arn_of(STAGING_TEST_ROLE),
            "Source": {"Type": "CODEPIPELINE", "BuildSpec": buildspec(config, project_dir)},
            "Artifacts": {"Type": "CODEPIPELINE"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_SMALL",
                "Image": image,
                "PrivilegedMode": False,  # no Docker: it only calls the endpoint
                "EnvironmentVariables": [
                    {"Name": name, "Type": "PLAINTEXT", "Value": value}
                    for name, value in (
                        ("MLCICD_ENDPOINT_NAME", names.staging_endpoint),
                        ("MLCICD_ENDPOINT_URL", runtime_url(names)),
                    )
                ],
            },
            "EncryptionKey": arn_of(KEY),
            "TimeoutInMinutes": min(math.ceil(staging.timeout / 60) + INSTALL_MINUTES, 2160),
            "LogsConfig": {
                "CloudWatchLogs": {"Status": "ENABLED", "GroupName": ref(STAGING_TEST_LOG_GROUP)}
            },
        },
    }


def buildspec(config: Config, project_dir: str) -> str:
    """The test project's build spec, as YAML text: install, ``staging.test`` (bounded by
    ``staging.timeout``), the load check; when any of them fails, delete the staging endpoint."""
    staging = config.staging
    assert staging is not None
    cd = f"cd {shlex.quote(project_dir)}" if project_dir else None
    build = []
    if staging.test is not None:
        # bash -c: the command is the project's shell line, as mlcicd.yaml has it.
        build.append(
            f"timeout --kill-after=10 {staging.timeout} bash -c {shlex.quote(staging.test)}"
        )
    if staging.load is not None:
        build.append(load_check_command(config, staging.load))
    post_build = []
    if not staging.keep:
        post_build.append(
            'if [ "$CODEBUILD_BUILD_SUCCEEDING" != 1 ]; then aws sagemaker delete-endpoint '
            '--endpoint-name "$MLCICD_ENDPOINT_NAME"; fi'
        )
    # Everything that can fail is in the build phase: a failed build phase still runs
    # post_build (a failed install phase would not), which deletes the staging endpoint.
    phases: dict[str, Any] = {
        "install": {"runtime-versions": {"python": "3.11"}},
        "build": {"commands": [*([cd] if cd else []), *INSTALL_COMMANDS, *build]},
    }
    if post_build:
        phases["post_build"] = {"commands": post_build}
    spec = {
        "version": 0.2,
        "env": {"shell": "bash", "variables": {"MLCICD_SPEC": MLCICD_SPEC}},
        "phases": phases,
    }
    return yaml.safe_dump(spec, sort_keys=False, width=1000)


def load_check_command(config: Config, load: LoadCheckConfig) -> str:
    """``python -m mlcicd.aws.load_check …`` with ``staging.load``'s figures and bounds."""
    args = [
        "python",
        "-m",
        LOAD_CHECK_MODULE,
        "--requests",
        str(load.requests),
        "--concurrency",
        str(load.concurrency),
        "--max-error-rate",
        repr(load.max_error_rate),
        "--content-type",
        load.content_type,
    ]
    if load.p99_ms is not None:
        args += ["--p99-ms", repr(load.p99_ms)]
    if load.payload is not None:
        args += ["--payload", load.payload]
    else:  # one of them is set: checked when mlcicd.yaml is loaded (staging.load.payload)
        assert config.deploy.sample is not None
        args += ["--body", config.deploy.sample]
    quoted = " ".join(shlex.quote(a) for a in args)
    return f'{quoted} --endpoint-name "$MLCICD_ENDPOINT_NAME"'


def stage(*, keep: bool, deploy_function: str, model_output: str, source_output: str) -> Json:
    """The Staging stage: deploy, test (the source holds the tests), and delete unless kept."""
    actions = [
        pipeline_action(
            DEPLOY_STAGING,
            "Invoke",
            "Lambda",
            {"FunctionName": ref(deploy_function), "UserParameters": user_parameters()},
            inputs=(model_output,),
        ),
        pipeline_action(
            TEST_STAGING,
            "Build",
            "CodeBuild",
            {"ProjectName": ref(TEST_PROJECT)},
            inputs=(source_output,),
            run_order=2,
        ),
    ]
    if not keep:
        actions.append(
            pipeline_action(
                DELETE_STAGING,
                "Invoke",
                "Lambda",
                {
                    "FunctionName": ref(deploy_function),
                    "UserParameters": user_parameters(delete=True),
                },
                run_order=3,
            )
        )
    return {"Name": STAGING, "Actions": actions}
