"""cfn-lint and checkov on the template generated from examples/iris, as it is, deploying
canary with rollback alarms and data capture, with the testing stage, autoscaled behind an
API with keys in a VPC, and serverless behind an IAM-authorised API (all offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlcicd.aws.template import build_template, to_yaml
from mlcicd.config import Config
from tests.aws.conftest import iris_with, pipeline_with
from tests.conftest import REPO

pytestmark = pytest.mark.integration

# Every check the template suppresses, on which resource. Each suppression carries its reason
# in the template (resource Metadata → checkov → skip → comment); this list makes adding one a
# visible decision.
SUPPRESSED = {
    ("CKV_AWS_18", "AWS::S3::Bucket.AccessLogBucket"),  # the access-log bucket does not log itself
    ("CKV_AWS_117", "AWS::Lambda::Function.TrainingFunction"),  # calls only AWS APIs: no VPC
    ("CKV_AWS_117", "AWS::Lambda::Function.DeployFunction"),
    ("CKV_AWS_120", "AWS::ApiGateway::Stage.ApiStage"),  # a cache keys on headers, not bodies
}
CHECKOV_ENV = "MLCICD_CHECKOV"


@pytest.fixture(
    scope="module",
    params=[
        "without-approval",
        "with-approval",
        "canary-alarms-capture",
        "staging-with-approval",
        "scaled-api-key-vpc",
        "serverless-api-iam",
        "processing-steps",
    ],
)
def template_file(
    request: pytest.FixtureRequest,
    iris_config: Config,
    canary_config: Config,
    staging_config: Config,
    scaled_config: Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.yaml"
    config = {
        "canary-alarms-capture": canary_config,
        "staging-with-approval": staging_config,
        "scaled-api-key-vpc": scaled_config,
        "serverless-api-iam": iris_with(
            deploy={"serverless": {"memory_mb": 2048}}, api={"enabled": True, "auth": "iam"}
        ),
        "processing-steps": pipeline_with(),  # examples/pipeline: steps and data check
    }.get(request.param, iris_config)
    path.write_text(
        to_yaml(build_template(config, approval=request.param.endswith("with-approval"))),
        encoding="utf-8",
    )
    return path


def test_cfn_lint_finds_no_error_or_warning(template_file: Path) -> None:
    from cfnlint.api import lint

    matches = lint(
        template_file.read_text(encoding="utf-8"),
        regions=["us-east-1", "eu-west-1", "ap-southeast-2"],
    )
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches] == []


def _checkov() -> str:
    found = os.environ.get(CHECKOV_ENV)
    if not found:
        tools = REPO / ".venv-tools" / "bin" / "checkov"
        found = str(tools) if tools.exists() else shutil.which("checkov")
    if found:
        return found
    reason = f"checkov is not installed: `make tools` puts it in .venv-tools (or set {CHECKOV_ENV})"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must run it")
    pytest.skip(reason)


def test_checkov_fails_nothing_and_every_suppression_has_a_reason(template_file: Path) -> None:
    command = [
        _checkov(),
        "--skip-download",
        "-f",
        template_file.name,
        "--framework",
        "cloudformation",
        "-o",
        "json",
    ]
    result = subprocess.run(
        command, cwd=template_file.parent, capture_output=True, text=True, timeout=300
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one report per framework when several ran
        [report] = [r for r in report if r["check_type"] == "cloudformation"]
    results = report["results"]
    assert results["parsing_errors"] == []
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]
    ]
    assert failed == []
    skipped = results["skipped_checks"]
    suppressed = {(c["check_id"], c["resource"]) for c in skipped}
    assert suppressed <= SUPPRESSED  # the API's only with api.enabled
    assert {s for s in SUPPRESSED if "ApiGateway" not in s[1]} <= suppressed
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    assert len(results["passed_checks"]) > 50
