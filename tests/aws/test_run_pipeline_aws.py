"""examples/pipeline through `mlcicd run --backend aws`, end to end against moto's server:
prepare and evaluate as SageMaker ProcessingJobs, training as a SageMaker training job, the data
check, the gate on evaluate's report, the endpoint.

Real: the CLI in-process on a git repository holding a copy of examples/pipeline, with
mlcicd.yaml's backends left local (``--backend aws`` moves every stage, the processing steps
included); every AWS call through mlcicd's own clients over loopback; the processing scripts
(prepare.py, evaluate.py), run by ``sagemaker_sim.run_processing_job`` as SageMaker would run
them when moto first reports their job Completed (moto runs nothing). Simulated: the training
job's output, trained once on this machine by examples/pipeline's own train.py (as
test_run_sagemaker does for examples/iris).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mlcicd.aws.clients import client
from mlcicd.cli import cli
from tests.aws.conftest import PIPELINE_EXAMPLE, AwsClient, push_image
from tests.aws.events import IMAGE, ROLE_ARN
from tests.aws.sagemaker_sim import run_processing_job, sagemaker_writes, train_here
from tests.conftest import commit_all, make_repo

pytestmark = pytest.mark.integration

STORE = "mlcicd-pipeline-runs"


@contextmanager
def sagemaker_processes(aws: AwsClient, root: Path) -> Iterator[list[str]]:
    """While active, a processing job that moto first reports Completed is run for real
    (``run_processing_job``) before mlcicd reads the answer; yields the jobs run."""
    ran: list[str] = []

    def completed(parsed: dict[str, Any], **kwargs: Any) -> None:
        name = parsed.get("ProcessingJobName")
        if parsed.get("ProcessingJobStatus") == "Completed" and name and name not in ran:
            ran.append(name)
            run_processing_job(aws, name, root / name)

    events = client("sagemaker").meta.events
    event = "after-call.sagemaker.DescribeProcessingJob"
    events.register(event, completed, unique_id="sagemaker-processes")
    try:
        yield ran
    finally:
        events.unregister(event, completed, unique_id="sagemaker-processes")


def test_the_pipeline_example_runs_its_steps_on_sagemaker(
    aws_env: AwsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_env("s3").create_bucket(Bucket=STORE)
    push_image(aws_env, IMAGE)
    monkeypatch.setenv("MLCICD_SAGEMAKER_POLL_SECONDS", "0.01")
    project = make_repo(tmp_path / "pipeline", PIPELINE_EXAMPLE)
    path = project / "mlcicd.yaml"
    text = path.read_text().replace(
        "  backend: local\n  source_dir: src\n  entry_point: train.py\n",
        f"  backend: local\n  image: {IMAGE}\n  role: {ROLE_ARN}\n"
        "  source_dir: src\n  entry_point: train.py\n",
    )
    assert IMAGE in text
    path.write_text(text + f"\nstore:\n  uri: s3://{STORE}/pipeline\n")
    commit_all(project, "SageMaker's image and role")
    # Its train.py on its raw data, whose columns prepare's train output keeps.
    model, output, _ = train_here(
        tmp_path, PIPELINE_EXAMPLE / "src", PIPELINE_EXAMPLE / "data" / "raw"
    )

    with (
        sagemaker_processes(aws_env, tmp_path / "jobs") as ran,
        sagemaker_writes(aws_env, model=model, output=output) as trained,
    ):
        result = CliRunner().invoke(
            cli, ["-C", str(project), "run", "--backend", "aws"], catch_exceptions=False
        )
    assert result.exit_code == 0, result.output
    assert "run 1 succeeded" in result.output
    assert [name.split("-")[2] for name in ran] == ["prepare", "evaluate"]
    (job,) = trained
    sagemaker = aws_env("sagemaker")
    prepare = sagemaker.describe_processing_job(ProcessingJobName=ran[0])
    assert prepare["AppSpecification"]["ImageUri"] == IMAGE
    assert prepare["RoleArn"] == ROLE_ARN
    # Training read prepare's train output; the gate read evaluate's report.
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in sagemaker.describe_training_job(TrainingJobName=job)["InputDataConfig"]
    }
    assert set(channels) == {"training", "code"}  # network-isolated: the code is a channel
    bucket, _, prefix = channels["training"].removeprefix("s3://").partition("/")
    listed = aws_env("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert [o["Key"].rsplit("/", 1)[-1] for o in listed] == ["train.csv"]  # prepare's output
    assert "check evaluation.metrics.accuracy >= 0.85: " in result.output
    assert "data check skipped" in result.output  # the first model: nothing to check against
    assert sagemaker.describe_endpoint(EndpointName="iris-pipeline-endpoint")["EndpointStatus"] == (
        "InService"
    )
