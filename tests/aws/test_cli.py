"""`mlcicd aws template`, in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

import mlcicd.cli.aws  # noqa: F401  (registers `mlcicd aws`)
from mlcicd.cli import cli
from tests.conftest import IRIS


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["aws", "template", *args])
    return result.exit_code, result.output


def test_prints_the_template_as_yaml() -> None:
    code, output = _run(str(IRIS))
    assert code == 0, output
    template = yaml.safe_load(output)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Resources"]["Pipeline"]["Properties"]["Name"] == "ml-cicd-pipeline"
    assert template["Parameters"]["RequireApproval"]["Default"] == "false"
    # examples/iris sits in a subdirectory of its repository; CodeBuild starts at the root.
    assert (
        template["Resources"]["BuildProject"]["Properties"]["Source"]["BuildSpec"]
        == "examples/iris/buildspec.yml"
    )


def test_json_approval_and_stack_name() -> None:
    code, output = _run(str(IRIS), "--json", "--approval", "--stack-name", "fraud-cicd")
    assert code == 0, output
    template = json.loads(output)
    assert template["Parameters"]["RequireApproval"]["Default"] == "true"
    assert (
        template["Resources"]["BuildLogGroup"]["Properties"]["LogGroupName"]
        == "/aws/codebuild/fraud-cicd-build"
    )


def test_project_at_the_root_of_its_repository(iris_project: Path) -> None:
    code, output = _run(str(iris_project))
    assert code == 0, output
    assert (
        yaml.safe_load(output)["Resources"]["BuildProject"]["Properties"]["Source"]["BuildSpec"]
        == "buildspec.yml"
    )


def test_project_outside_git(tmp_path: Path) -> None:
    project = tmp_path / "iris"
    shutil.copytree(IRIS, project, ignore=shutil.ignore_patterns(".mlcicd"))
    code, output = _run(str(project))
    assert code == 0, output
    assert (
        yaml.safe_load(output)["Resources"]["BuildProject"]["Properties"]["Source"]["BuildSpec"]
        == "buildspec.yml"
    )


def test_bad_stack_name_is_one_line_and_exit_code_2() -> None:
    code, output = _run(str(IRIS), "--stack-name", "ml_cicd")
    assert code == 2
    assert output.startswith("error: --stack-name: 'ml_cicd' is not a usable stack name")
    assert len(output.strip().splitlines()) == 1


def test_help() -> None:
    result = CliRunner().invoke(cli, ["aws", "--help"])
    assert result.exit_code == 0
    assert "template" in result.output


def _explaining(tmp_path: Path) -> Path:
    """examples/iris with explain:, which only `mlcicd run` runs."""
    project = tmp_path / "iris"
    shutil.copytree(IRIS, project, ignore=shutil.ignore_patterns(".mlcicd", "__pycache__"))
    config = yaml.safe_load((project / "mlcicd.yaml").read_text())
    config["explain"] = {"rows": 50}
    (project / "mlcicd.yaml").write_text(yaml.safe_dump(config))
    return project


def test_a_project_with_a_section_the_stack_does_not_run_is_refused_with_exit_code_2(
    tmp_path: Path,
) -> None:
    code, output = _run(str(_explaining(tmp_path)))
    assert code == 2, output
    assert output.startswith("error: mlcicd.yaml: explain: the AWS pipeline does not explain ")
    assert "`mlcicd run`" in output
    assert "Resources" not in output  # nothing generated
    assert len(output.strip().splitlines()) == 1


def test_the_pipeline_example_generates_with_its_steps_and_data_check() -> None:
    # examples/pipeline: prepare → train → evaluate, data_check: fail — all in the stack now.
    code, output = _run(str(IRIS.parent / "pipeline"))
    assert code == 0, output
    function = yaml.safe_load(output)["Resources"]["TrainingFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert [s["name"] for s in json.loads(variables["MLCICD_PROCESSING"])["steps"]] == [
        "prepare",
        "evaluate",
    ]
    assert json.loads(variables["MLCICD_DATA_CHECK"])["mode"] == "fail"


def test_deploy_refuses_the_same_project_before_it_packages_or_calls_aws(tmp_path: Path) -> None:
    # No AWS here: a deploy that got past the template would fail on credentials instead.
    result = CliRunner().invoke(
        cli,
        ["aws", "deploy", str(_explaining(tmp_path)), "-p", "GitHubOwner=ada"],
        env={
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_CONFIG_FILE": "/dev/null",
            **dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")),
        },
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: mlcicd.yaml: explain: the AWS pipeline ")
    assert "Lambda package" not in result.output
