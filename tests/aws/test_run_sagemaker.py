"""`mlcicd run` with ``train.backend: sagemaker``, ``deploy.backend: sagemaker`` and the
artifact store on S3, end to end against moto's server.

Real: the CLI in-process on a git repository holding a copy of examples/iris; the source,
build (the project's environment) and register stages as always; every AWS call through
mlcicd's own boto3 clients over loopback (``MLCICD_AWS_ENDPOINT_URL``, dummy credentials) —
the uploads, CreateTrainingJob and its polling, the model's download, the Model,
EndpointConfig and endpoint.

Simulated, because moto runs nothing: the training itself. The project's train.py is run
once on this machine by the local backend (the same script-mode contract), and when moto
first reports the SageMaker job Completed, the test puts that model.tar.gz, its
output/data (metrics.json) as output.tar.gz and its log where SageMaker would have put them
(tests/aws/sagemaker_sim.py). moto's endpoints are InService at once, and nothing serves
requests behind them. The project's own tests are not run by the build stage (they are
exercised in tests/cli), to keep this test about AWS; nor is examples/iris's staging: (moto's
InvokeEndpoint answers a canned body, which no test of the model's answers accepts), except by
the test of the staging stage on SageMaker, with an endpoint test of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcicd.cli import cli
from tests.aws.conftest import AwsClient, push_image
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import sagemaker_writes, train_here
from tests.conftest import IRIS, commit_all, make_repo
from tests.helpers import drop_staging

pytestmark = pytest.mark.integration

STORE = "mlcicd-iris-runs"
ENDPOINT = "iris-classifier-endpoint"


def on_sagemaker(project: Path, staging: str = "") -> None:
    """Train and serve on SageMaker; ``staging`` replaces examples/iris's ``staging:`` (whose
    endpoint tests need the model's answers, which moto's canned ones are not)."""
    drop_staging(project)
    if staging:
        path = project / "mlcicd.yaml"
        path.write_text(path.read_text().rstrip("\n") + "\n\n" + staging)
    path = project / "mlcicd.yaml"
    text = path.read_text()
    for old, new in (
        ("test: python -m pytest -q tests", "test: python -c pass"),
        (
            "  backend: local                   # or sagemaker\n",
            f"  backend: sagemaker\n  image: {IMAGE}\n  role: {ROLE_ARN}\n"
            "  instance_type: ml.m5.large\n",
        ),
        (
            "deploy:\n  backend: local\n",
            "deploy:\n  backend: sagemaker\n  instance_type: ml.t2.medium\n",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text + f"\nstore:\n  uri: s3://{STORE}/iris\n")
    commit_all(project, "train and serve on SageMaker")


def trained_here(tmp_path: Path) -> tuple[bytes, dict[str, bytes], list[str]]:
    """What a SageMaker job running examples/iris's train.py produces."""
    return train_here(tmp_path, IRIS / "src", IRIS / "data")


def test_run_trains_and_deploys_on_sagemaker(
    aws_env: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_env("s3").create_bucket(Bucket=STORE)
    push_image(aws_env, IMAGE)
    monkeypatch.setenv("MLCICD_SAGEMAKER_POLL_SECONDS", "0.01")
    project = make_repo(tmp_path / "iris")
    on_sagemaker(project)
    path = project / "mlcicd.yaml"
    path.write_text(
        path.read_text().replace(
            "  instance_type: ml.t2.medium\n",
            "  instance_type: ml.t2.medium\n"
            "  autoscaling: {max_instances: 3, target_invocations_per_instance: 500}\n",
        )
    )
    commit_all(project, "scale the endpoint")
    model, output, log = trained_here(tmp_path)
    assert "metrics.json" in output

    with sagemaker_writes(aws_env, model=model, output=output, log=log) as served:
        first = CliRunner().invoke(cli, ["-C", str(project), "run"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    (job,) = served
    assert job.startswith("iris-classifier-")
    assert "accuracy=0.9333" in first.output  # the job's CloudWatch log, streamed to the terminal
    assert "run 1 succeeded" in first.output

    sagemaker, s3 = aws_env("sagemaker"), aws_env("s3")
    described = sagemaker.describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert (
        described["OutputDataConfig"]["S3OutputPath"]
        == f"s3://{STORE}/iris/ml-cicd-pipeline-models/iris-classifier"
    )
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"].startswith(f"{ENDPOINT}-v1-")
    (variant,) = sagemaker.describe_endpoint_config(
        EndpointConfigName=endpoint["EndpointConfigName"]
    )["ProductionVariants"]
    assert variant["InstanceType"] == "ml.t2.medium"
    # deploy.autoscaling: the variant registered, with its target-tracking policy.
    autoscaling = aws_env("application-autoscaling")
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    (policy,) = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"
    ]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 500.0
    # The registered model's bytes are the job's, stored with their digest.
    key = f"iris/ml-cicd-pipeline-models/iris-classifier/{job}/output/model.tar.gz"
    assert s3.get_object(Bucket=STORE, Key=key)["Body"].read() == model
    assert "sha256" in s3.head_object(Bucket=STORE, Key=key)["Metadata"]

    models = CliRunner().invoke(cli, ["-C", str(project), "models", "list", "--json"])
    assert models.exit_code == 0, models.output
    assert f"s3://{STORE}/{key}" in models.output

    # Unchanged: nothing is trained or deployed again.
    again = CliRunner().invoke(cli, ["-C", str(project), "run"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert f"{ENDPOINT} already serves model iris-classifier/1" in again.output

    # The endpoint commands reach it through the backend it was recorded with.
    described = CliRunner().invoke(
        cli, ["-C", str(project), "endpoints", "describe", ENDPOINT, "--json"]
    )
    assert described.exit_code == 0, described.output
    assert (
        '"backend": "sagemaker"' in described.output and '"status": "InService"' in described.output
    )


STACK_TEMPLATE = """
Resources:
  Topic:
    Type: AWS::SNS::Topic
Outputs:
  SageMakerRoleArn:
    Value: {role}
  ModelsBucketName:
    Value: {bucket}
  RepositoryUri:
    Value: 123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-model-repo
"""


def test_run_backend_aws_takes_what_it_needs_from_the_stack(
    aws_env: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlcicd.yaml says local and names no image, role or store: --backend aws --stack-name
    fills them from the stack's outputs, for this run only."""
    aws_env("s3").create_bucket(Bucket=STORE)
    aws_env("cloudformation").create_stack(
        StackName="ml-cicd-pipeline",
        TemplateBody=STACK_TEMPLATE.format(role=ROLE_ARN, bucket=STORE),
    )
    monkeypatch.setenv("MLCICD_SAGEMAKER_POLL_SECONDS", "0.01")
    project = make_repo(tmp_path / "iris")
    drop_staging(project)  # staging on SageMaker: test_run_stages_the_model_on_a_sagemaker_…
    path = project / "mlcicd.yaml"
    path.write_text(
        path.read_text().replace("test: python -m pytest -q tests", "test: python -c pass")
    )
    commit_all(project, "no project tests here")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    model, output, log = trained_here(tmp_path)
    args = ["-C", str(project), "run", "--backend", "aws", "--stack-name", "ml-cicd-pipeline"]
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-model-repo:{commit[:12]}"

    # The stack's repository, but CodeBuild never built this commit: the train stage fails
    # at once, naming the image, before anything is uploaded or asked of SageMaker.
    aws_env("ecr").create_repository(repositoryName="ml-model-repo")
    unpushed = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert unpushed.exit_code == 1, unpushed.output
    assert (
        f"error: image {image} is not in ECR: repository ml-model-repo has no image with tag "
        f"{commit[:12]}" in (unpushed.output)
    )
    assert f"docker push {image}" in unpushed.output
    assert aws_env("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert aws_env("s3").list_objects_v2(Bucket=STORE).get("KeyCount") == 0

    push_image(aws_env, image)
    with sagemaker_writes(aws_env, model=model, output=output, log=log) as served:
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"image {image} is in ECR (pushed " in result.output  # the train stage's log
    (job,) = served
    sagemaker = aws_env("sagemaker")
    described = sagemaker.describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"].endswith(
        f"/ml-model-repo:{commit[:12]}"
    )
    assert described["RoleArn"] == ROLE_ARN
    assert described["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{STORE}/")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    # What the deploy stage and the run report: the ARN and the runtime URL, no local URL or pid.
    assert f"{ENDPOINT} is InService as {endpoint['EndpointArn']}" in result.output
    assert f"/endpoints/{ENDPOINT}/invocations" in result.output
    assert "None" not in result.output.split("deploy", 1)[1]
    # mlcicd.yaml is as it was.
    assert "backend: local" in path.read_text()


def test_run_backend_aws_without_a_stack_names_the_missing_keys(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "iris")
    result = CliRunner().invoke(cli, ["-C", str(project), "run", "--backend", "aws"])
    assert result.exit_code == 2, result.output
    assert "train.image, train.role, store.uri" in result.output
    assert "--stack-name" in result.output


# What the staging test below runs as `staging.test`: what a test using boto3 sees.
PROBE = """
import json, os, sys, boto3
names = ("MLCICD_ENDPOINT_NAME", "MLCICD_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID")
seen = {n: os.environ.get(n) for n in names}
answer = boto3.client("sagemaker-runtime").invoke_endpoint(
    EndpointName=os.environ["MLCICD_ENDPOINT_NAME"], Body=b"[[5.1, 3.5, 1.4, 0.2]]",
    ContentType="application/json")
seen["answer"] = answer["Body"].read().decode()
sagemaker = boto3.client("sagemaker", endpoint_url=os.environ["MLCICD_AWS_ENDPOINT_URL"])
seen["endpoints"] = sorted(e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"])
json.dump(seen, open(sys.argv[1], "w"))
"""
STAGING_ENDPOINT = f"{ENDPOINT}-staging"


def test_run_stages_the_model_on_a_sagemaker_endpoint_before_production(
    aws_env: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """source → … → register → staging (deploy, test, load, delete) → deploy, on SageMaker:
    the test calls the staging endpoint through boto3's sagemaker-runtime, signed with
    credentials of its own (the run's keys are withheld), with the variables the stage sets;
    production does not exist yet while it runs."""
    credentials = tmp_path / "credentials"  # the endpoint test's own (moto takes any)
    credentials.write_text("[default]\naws_access_key_id = tests\naws_secret_access_key = tests\n")
    aws_env("s3").create_bucket(Bucket=STORE)
    push_image(aws_env, IMAGE)
    monkeypatch.setenv("MLCICD_SAGEMAKER_POLL_SECONDS", "0.01")
    project = make_repo(tmp_path / "iris")
    (project / "tests" / "endpoint_probe.py").write_text(PROBE)
    seen = tmp_path / "seen.json"
    on_sagemaker(
        project,
        "staging:\n"
        f"  test: python tests/endpoint_probe.py {seen}\n"
        "  load: {requests: 20, concurrency: 2}\n",
    )
    model, output, log = trained_here(tmp_path)
    # The run signs with its keys (the variables); its children find only this file.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with sagemaker_writes(aws_env, model=model, output=output, log=log):
        result = CliRunner().invoke(cli, ["-C", str(project), "run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.index("▶ staging") < result.output.index("▶ deploy")
    probe = json.loads(seen.read_text())
    assert probe == {
        "MLCICD_ENDPOINT_NAME": STAGING_ENDPOINT,
        "MLCICD_ENDPOINT_URL": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/"
        f"{STAGING_ENDPOINT}/invocations",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": None,  # the run's keys stay with the run
        "answer": "body",  # moto's canned answer: the call was signed and reached the runtime
        "endpoints": [STAGING_ENDPOINT],  # production comes after staging
    }
    # The load check went through the runtime too: 20 requests, none failed.
    assert "load check: 20 requests at concurrency 2" in result.output
    assert ", 0 errors" in result.output.split("▶ staging", 1)[1].split("▶ deploy", 1)[0]
    sagemaker = aws_env("sagemaker")
    # Staging deleted after the stage; its config, with production's, stays (they cost nothing).
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [ENDPOINT]
    configs = [
        c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
    ]
    assert sorted(c.rsplit("-", 2)[0] for c in configs) == [ENDPOINT, STAGING_ENDPOINT]
    shown = CliRunner().invoke(cli, ["-C", str(project), "runs", "show", "1"])
    assert shown.exit_code == 0, shown.output
    assert "20 requests" in shown.output and STAGING_ENDPOINT in shown.output


@pytest.mark.xfail(
    strict=True,
    reason="moto's InvokeEndpoint answers a canned body, not the model's: examples/iris's "
    "endpoint tests reach it, signed, and then find no species in the answer",
)
def test_examples_iris_endpoint_tests_pass_against_a_sagemaker_endpoint(
    aws_env: AwsClient, tmp_path: Path
) -> None:
    from mlcicd.endpoints.sagemaker_runtime import client_environment

    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{STAGING_ENDPOINT}"
    environment = {  # this process's keys (moto takes any): here, they are the tests' own
        **os.environ,
        **client_environment(arn),
        "MLCICD_ENDPOINT_NAME": STAGING_ENDPOINT,
        "MLCICD_ENDPOINT_URL": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/"
        f"{STAGING_ENDPOINT}/invocations",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/endpoint"],
        cwd=IRIS,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Signed calls that reached moto: none of them failed for want of credentials or a route.
    assert (
        "NoCredentialsError" not in result.stdout and "EndpointConnectionError" not in result.stdout
    )
    assert result.returncode == 0, result.stdout
