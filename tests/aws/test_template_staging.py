"""The testing stage in the generated stack (mlcicd/aws/template/staging.py): its place in the
pipeline, its names, the least privilege of the roles it adds to, and its build spec — read
as data, and its build phase run in bash against moto's server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcicd.aws.load_check import _parser
from mlcicd.aws.template import build_template
from mlcicd.aws.template.staging import INSTALL_COMMANDS, LOAD_CHECK_MODULE
from mlcicd.config import Config
from tests.aws.conftest import STAGING, AwsClient, clients, iris_with, reset
from tests.aws.stack import CONNECTION, create_stack, for_moto, stack_resources

STAGING_ENDPOINT = "iris-classifier-endpoint-staging"
PRODUCTION_ENDPOINT = "iris-classifier-endpoint"


def _stages(template: dict[str, Any], *, approval: bool) -> list[dict[str, Any]]:
    """The pipeline's stages with CloudFormation's ApprovalRequired condition decided."""
    stages = []
    for stage in template["Resources"]["Pipeline"]["Properties"]["Stages"]:
        if "Fn::If" in stage:
            _, when_true, when_false = stage["Fn::If"]
            stage = when_true if approval else when_false
            if stage == {"Ref": "AWS::NoValue"}:
                continue
        stages.append(stage)
    return stages


def _statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"] if "Sid" in s}  # not Fn::If


def _arns(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    return [r["Fn::Sub"] for r in (resources if isinstance(resources, list) else [resources])]


def _resource(arn: str) -> str:
    """``endpoint/<name>`` of ``arn:${AWS::Partition}:…:${AWS::AccountId}:endpoint/<name>``."""
    return arn.split("${AWS::AccountId}:", 1)[1]


def _buildspec(template: dict[str, Any]) -> dict[str, Any]:
    source = template["Resources"]["StagingTestProject"]["Properties"]["Source"]
    assert source["Type"] == "CODEPIPELINE"
    spec = yaml.safe_load(source["BuildSpec"])
    assert isinstance(spec, dict)
    return spec


def test_the_stage_runs_after_training_and_before_the_approval_and_production(
    staging_config: Config,
) -> None:
    template = build_template(staging_config)
    stages = _stages(template, approval=True)
    assert [s["Name"] for s in stages] == [
        "Source",
        "Build",
        "Train",
        "Staging",
        "Approval",
        "Deploy",
    ]
    assert [s["Name"] for s in _stages(template, approval=False)][3:] == ["Staging", "Deploy"]
    approve = stages[4]["Actions"][0]["Configuration"]["CustomData"]
    assert f"passed its gate and its tests on {STAGING_ENDPOINT}" in approve
    actions = {a["Name"]: a for a in stages[3]["Actions"]}
    assert [(a["Name"], a["RunOrder"]) for a in stages[3]["Actions"]] == [
        ("DeployStaging", 1),
        ("TestStaging", 2),
        ("DeleteStaging", 3),
    ]
    # The deploy Lambda, told only which of its two endpoints (the name is its environment's).
    deploy_staging = actions["DeployStaging"]
    assert deploy_staging["Configuration"]["FunctionName"] == {"Ref": "DeployFunction"}
    assert json.loads(deploy_staging["Configuration"]["UserParameters"]) == {"endpoint": "staging"}
    assert deploy_staging["InputArtifacts"] == [{"Name": "ModelOutput"}]
    assert json.loads(actions["DeleteStaging"]["Configuration"]["UserParameters"]) == {
        "endpoint": "staging",
        "action": "delete",
    }
    test = actions["TestStaging"]
    assert test["ActionTypeId"]["Provider"] == "CodeBuild"
    assert test["Configuration"] == {"ProjectName": {"Ref": "StagingTestProject"}}
    assert test["InputArtifacts"] == [{"Name": "SourceOutput"}]  # the project's tests
    environment = template["Resources"]["DeployFunction"]["Properties"]["Environment"]
    assert environment["Variables"]["MLCICD_STAGING_ENDPOINT_NAME"] == STAGING_ENDPOINT
    assert environment["Variables"]["MLCICD_ENDPOINT_NAME"] == PRODUCTION_ENDPOINT


def test_the_test_project_calls_the_staging_endpoint_through_the_runtime(
    staging_config: Config,
) -> None:
    template = build_template(staging_config)
    project = template["Resources"]["StagingTestProject"]["Properties"]
    assert project["Name"] == "ml-cicd-pipeline-staging-test"
    assert project["ServiceRole"] == {"Fn::GetAtt": ["StagingTestRole", "Arn"]}
    assert project["Environment"]["PrivilegedMode"] is False
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert variables == {
        "MLCICD_ENDPOINT_NAME": STAGING_ENDPOINT,
        "MLCICD_ENDPOINT_URL": {
            "Fn::Sub": "https://runtime.sagemaker.${AWS::Region}.${AWS::URLSuffix}"
            f"/endpoints/{STAGING_ENDPOINT}/invocations"
        },
    }
    assert project["LogsConfig"]["CloudWatchLogs"]["GroupName"] == {"Ref": "StagingTestLogGroup"}
    groups = {
        r["Properties"]["LogGroupName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert {
        "/aws/codebuild/ml-cicd-pipeline-staging-test",
        f"/aws/sagemaker/Endpoints/{STAGING_ENDPOINT}",
    } <= groups
    assert project["TimeoutInMinutes"] == 10 + 15  # staging.timeout (600 s) and the install


def test_the_test_role_may_invoke_and_delete_the_staging_endpoint_and_nothing_else(
    staging_config: Config,
) -> None:
    template = build_template(staging_config)
    statements = _statements(template, "StagingTestRole")
    sagemaker = {
        sid: s
        for sid, s in statements.items()
        if any(a.startswith("sagemaker:") for a in s["Action"])
    }
    staging_arn = (
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
        f"endpoint/{STAGING_ENDPOINT}"
    )
    assert {sid: (s["Action"], _arns(s)) for sid, s in sagemaker.items()} == {
        "InvokeTheStagingEndpoint": (["sagemaker:InvokeEndpoint"], [staging_arn]),
        "DeleteTheStagingEndpointWhenItsTestsFail": (
            ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"],
            [staging_arn],
        ),
    }
    # It reads the source, and writes nothing to S3.
    assert not [s for s in statements.values() if "s3:PutObject" in s["Action"]]
    pipeline = _statements(template, "PipelineRole")["RunTheBuild"]
    assert [_resource(a) for a in _arns(pipeline)] == [
        "project/ml-cicd-pipeline-build",
        "project/ml-cicd-pipeline-staging-test",
    ]


def test_the_deploy_lambda_may_delete_the_staging_endpoint_alone(staging_config: Config) -> None:
    template = build_template(staging_config)
    statements = _statements(template, "DeployFunctionRole")
    deleting = {
        arn
        for s in statements.values()
        if "sagemaker:DeleteEndpoint" in s["Action"]
        for arn in _arns(s)
    }
    assert {_resource(a) for a in deleting} == {f"endpoint/{STAGING_ENDPOINT}"}
    configs = statements["MakeTheStagingEndpointsConfigs"]
    assert [_resource(a) for a in _arns(configs)] == [f"endpoint-config/{STAGING_ENDPOINT}-*"]
    assert not [a for a in configs["Action"] if a.startswith("sagemaker:Delete")]
    # The staging endpoint runs with the endpoints' role, and logs to its own group.
    logs = _statements(template, "EndpointExecutionRole")["WriteSageMakerLogs"]
    assert {_resource(a) for a in _arns(logs)} == {
        f"log-group:/aws/sagemaker/Endpoints/{endpoint}{tail}"
        for endpoint in (STAGING_ENDPOINT, PRODUCTION_ENDPOINT)
        for tail in ("", ":*")
    }


def test_without_staging_the_pipeline_has_no_such_stage() -> None:
    template = build_template(iris_with(staging=None))
    assert "Staging" not in [s["Name"] for s in _stages(template, approval=True)]
    for resource in ("StagingTestProject", "StagingTestRole", "StagingTestLogGroup"):
        assert resource not in template["Resources"]
    assert "ManageTheStagingEndpoint" not in _statements(template, "DeployFunctionRole")
    variables = template["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MLCICD_STAGING_ENDPOINT_NAME"] == ""


def test_keep_leaves_the_staging_endpoint_serving() -> None:
    template = build_template(iris_with(staging={**STAGING, "keep": True}))
    (stage,) = [s for s in _stages(template, approval=False) if s["Name"] == "Staging"]
    assert [a["Name"] for a in stage["Actions"]] == ["DeployStaging", "TestStaging"]
    assert "post_build" not in _buildspec(template)["phases"]
    assert "DeleteTheStagingEndpointWhenItsTestsFail" not in _statements(
        template, "StagingTestRole"
    )


def test_the_buildspec_runs_the_test_then_the_load_check_and_cleans_up_on_failure(
    staging_config: Config,
) -> None:
    spec = _buildspec(build_template(staging_config))
    assert spec["env"]["variables"] == {"MLCICD_SPEC": "mlcicd[aws]"}
    # All in the build phase, whose failure still runs post_build (an install phase's would not).
    assert spec["phases"]["install"] == {"runtime-versions": {"python": "3.11"}}
    *install, test, load = spec["phases"]["build"]["commands"]  # the project is the root
    assert install == list(INSTALL_COMMANDS)
    assert shlex.split(test) == [
        "timeout",
        "--kill-after=10",
        "600",
        "bash",
        "-c",
        STAGING["test"],
    ]
    words = shlex.split(load)
    assert words[:3] == ["python", "-m", LOAD_CHECK_MODULE]
    args = _parser().parse_args(
        [w.replace("$MLCICD_ENDPOINT_NAME", STAGING_ENDPOINT) for w in words[3:]]
    )
    assert (args.endpoint_name, args.requests, args.concurrency) == (STAGING_ENDPOINT, 200, 4)
    assert (args.p99_ms, args.max_error_rate, args.content_type) == (
        250.0,
        0.01,
        "application/json",
    )
    assert args.body == staging_config.deploy.sample and args.payload is None
    (cleanup,) = spec["phases"]["post_build"]["commands"]
    assert cleanup == (
        'if [ "$CODEBUILD_BUILD_SUCCEEDING" != 1 ]; then aws sagemaker delete-endpoint '
        '--endpoint-name "$MLCICD_ENDPOINT_NAME"; fi'
    )


def test_a_project_in_a_subdirectory_runs_there_with_its_payload_file() -> None:
    config = iris_with(staging={"test": "make check", "load": {"payload": "tests/row.json"}})
    spec = _buildspec(build_template(config, buildspec="examples/iris/buildspec.yml"))
    assert spec["phases"]["build"]["commands"][0] == "cd examples/iris"
    load = shlex.split(spec["phases"]["build"]["commands"][-1])
    assert load[load.index("--payload") + 1] == "tests/row.json" and "--body" not in load


@pytest.mark.integration
def test_the_build_phase_runs_the_configured_test_and_the_load_check(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    """The build commands, as CodeBuild runs them (bash, in the source directory, with the
    project's variables), against moto's SageMaker runtime: the test sees the staging
    endpoint's name and URL, the load check sends its requests."""
    seen = tmp_path / "seen.json"
    test = (
        "python -c 'import json, os, sys; json.dump({k: os.environ[k] for k in "
        '("MLCICD_ENDPOINT_NAME", "MLCICD_ENDPOINT_URL")}, open(sys.argv[1], "w"))\' '
        + shlex.quote(str(seen))
    )
    config = iris_with(staging={"test": test, "load": {"requests": 20, "concurrency": 2}})
    spec = _buildspec(build_template(config))
    url = f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/{STAGING_ENDPOINT}/invocations"
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLCICD_ENDPOINT_NAME": STAGING_ENDPOINT,
        "MLCICD_ENDPOINT_URL": url,
    }
    commands = [c for c in spec["phases"]["build"]["commands"] if c not in INSTALL_COMMANDS]
    script = "set -e\n" + "\n".join(commands)  # mlcicd and pytest: this interpreter's
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(seen.read_text()) == {
        "MLCICD_ENDPOINT_NAME": STAGING_ENDPOINT,
        "MLCICD_ENDPOINT_URL": url,
    }
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["endpoint"], figures["requests"], figures["errors"]) == (
        STAGING_ENDPOINT,
        20,
        0,
    )


@pytest.mark.integration
def test_the_stack_with_the_stage_is_created(moto_server: str, staging_config: Config) -> None:
    """CloudFormation (moto's) creates it: the test role, the log groups, the deploy Lambda
    knowing its staging endpoint (the test project and pipeline are beyond moto: cfn-lint)."""
    reset(moto_server)
    aws = clients(moto_server)
    template, removed = for_moto(build_template(staging_config))
    assert "StagingTestProject" in removed
    stack = create_stack(aws, template, ConnectionArn=CONNECTION)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    resources = stack_resources(aws)
    assert resources["StagingTestRole"]["ResourceStatus"] == "CREATE_COMPLETE"
    role = resources["StagingTestRole"]["PhysicalResourceId"]
    assert aws("iam").get_role_policy(RoleName=role, PolicyName="least-privilege")
    groups = {g["logGroupName"] for g in aws("logs").describe_log_groups()["logGroups"]}
    assert {
        "/aws/codebuild/ml-cicd-pipeline-staging-test",
        f"/aws/sagemaker/Endpoints/{STAGING_ENDPOINT}",
    } <= groups
    function = aws("lambda").get_function_configuration(FunctionName="ml-cicd-pipeline-deploy")
    variables = function["Environment"]["Variables"]
    assert variables["MLCICD_STAGING_ENDPOINT_NAME"] == STAGING_ENDPOINT
