"""What `mlcicd run` prints and exits with, for each answer the operations can give — here
from a stand-in (:class:`Scripted`), so that the service's answers, a Ctrl-C and a failed
sample are shown without a service or an endpoint. The real operations are tested in
tests/operations/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlcicd.errors import StageError
from mlcicd.operations import RunDone, RunRequest, Sample
from mlcicd.pipeline import Reporter, RunOptions
from tests.conftest import make_repo
from tests.helpers import mlcicd

URL = "http://127.0.0.1:8765"


class Scripted:
    """Operations answering as told: ``done`` (or ``raised``) from finish_run, after telling
    ``on_wait`` what ``waits`` says."""

    def __init__(
        self,
        service_url: str | None,
        request: RunRequest | None = None,
        done: RunDone | None = None,
        raised: BaseException | None = None,
        waits: str | None = None,
    ) -> None:
        self.service_url = service_url
        self.request = request
        self.done = done
        self.raised = raised
        self.waits = waits
        self.asked: list[RunOptions] = []

    def request_run(self, options: RunOptions) -> RunRequest:
        self.asked.append(options)
        return self.request or RunRequest(options)

    def finish_run(
        self,
        request: RunRequest,
        reporter: Reporter,
        *,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunDone:
        if self.waits and on_wait is not None:
            on_wait(self.waits)
        if self.raised is not None:
            raise self.raised
        assert self.done is not None
        return self.done


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "iris")


def answering(monkeypatch: pytest.MonkeyPatch, ops: Scripted) -> None:
    monkeypatch.setattr("mlcicd.cli.run.open_operations", lambda project, **_: ops)


def queued(run_id: int = 3, **changes: object) -> RunRequest:
    fields: dict[str, object] = {
        "service_url": URL,
        "run_id": run_id,
        "commit": "0123456789abcdef",
        "status": "Queued",
    }
    return RunRequest(RunOptions(), **{**fields, **changes})  # type: ignore[arg-type]


def record(run_id: int, status: str) -> dict[str, object]:
    return {"run": {"id": run_id, "status": status}, "stages": []}


def test_a_run_queued_in_the_service_then_waiting(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = Scripted(
        URL,
        queued(superseded=[2]),
        RunDone(3, "WaitingForApproval", 1.0, record(3, "WaitingForApproval")),
        waits="run 3 is queued; it starts when the pipeline's current run ends",
    )
    answering(monkeypatch, ops)
    result = mlcicd(project, "run", "--force", "--ref", "main")
    assert result.exit_code == 0, result.output
    assert ops.asked == [RunOptions(force=True, allow_dirty=False, ref="main")]
    lines = result.output.splitlines()
    assert lines[0] == f"mlcicd run · iris-classifier · {project} · via {URL}"
    assert lines[1:4] == [
        f"run 3 of 0123456789ab queued in the service at {URL}",
        "run 2 (queued, not started) is superseded by run 3",
        "run 3 is queued; it starts when the pipeline's current run ends",
    ]
    assert lines[-1] == "run 3 is waiting for approval: `mlcicd approve 3` or `mlcicd reject 3`"


def test_the_same_commits_run_is_followed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ops = Scripted(
        URL,
        queued(existing=True, status="Running"),
        RunDone(
            3, "Succeeded", 12.34, record(3, "Succeeded"), deploy={"endpoint": "e", "url": URL}
        ),
    )
    answering(monkeypatch, ops)
    result = mlcicd(project, "run")
    assert result.exit_code == 0, result.output
    assert f"run 3 of 0123456789ab is already running in the service at {URL}; following it" in (
        result.output
    )
    assert result.output.splitlines()[-2:] == [
        "run 3 succeeded in 12.3s",
        f"endpoint e: {URL}/invocations",
    ]


def test_a_failed_run_in_the_service_exits_with_its_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = StageError("run 3 failed in gate: accuracy 0.5 < 0.9", stage="gate")
    done = RunDone(3, "Failed", 1.0, record(3, "Failed"), error=error, failed_stage="gate")
    answering(monkeypatch, Scripted(URL, queued(), done))
    result = mlcicd(project, "run", "--json")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: run 3 failed in gate: accuracy 0.5 < 0.9"
    assert '"status": "Failed"' in result.stdout and "error" not in result.stdout


def test_a_failed_run_here_shows_its_stage_log(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "train.log"
    log.write_text("epoch 1\nTraceback: boom\n12:00 FAILED: the job failed\n")
    error = StageError("training job failed", stage="train")
    done = RunDone(
        1, "Failed", 1.0, record(1, "Failed"), error=error, failed_stage="train", failed_log=log
    )
    answering(monkeypatch, Scripted(None, done=done))
    result = mlcicd(project, "run")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-4:] == [
        f"last lines of the train log ({log}):",
        "    │ epoch 1",
        "    │ Traceback: boom",
        "error: training job failed",
    ]


@pytest.mark.parametrize(
    ("service_url", "said"),
    [
        (URL, "stopped following; run 3 goes on in the service (`mlcicd runs show 3`)"),
        (None, "interrupted: the run is recorded as Stopped; the endpoint keeps serving"),
    ],
)
def test_ctrl_c(
    project: Path, monkeypatch: pytest.MonkeyPatch, service_url: str | None, said: str
) -> None:
    request = queued() if service_url else None
    answering(monkeypatch, Scripted(service_url, request, raised=KeyboardInterrupt()))
    result = mlcicd(project, "run")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == said


def test_success_here_with_its_endpoint_and_sample(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = {"endpoint": "e", "url": "http://127.0.0.1:1"}
    answered = RunDone(
        1, "Succeeded", 2.0, record(1, "Succeeded"), deploy=deploy, sample=Sample("[[1]]", "[0]")
    )
    answering(monkeypatch, Scripted(None, done=answered))
    assert mlcicd(project, "run").output.splitlines()[-2:] == [
        "endpoint e: http://127.0.0.1:1/invocations",
        "sample  [[1]] → [0]",
    ]
    failed = RunDone(
        1,
        "Succeeded",
        2.0,
        record(1, "Succeeded"),
        deploy=deploy,
        sample=Sample("[[1]]", error="e answered 500"),
    )
    answering(monkeypatch, Scripted(None, done=failed))
    assert (
        mlcicd(project, "run").output.splitlines()[-1] == "sample prediction failed: e answered 500"
    )
    on_aws = RunDone(
        1,
        "Succeeded",
        2.0,
        record(1, "Succeeded"),
        deploy={"endpoint": "e", "arn": "arn:aws:sagemaker:e", "runtime_url": "https://rt"},
    )
    answering(monkeypatch, Scripted(None, done=on_aws))
    assert mlcicd(project, "run").output.splitlines()[-2:] == [
        "endpoint e: arn:aws:sagemaker:e",
        "invoke it at https://rt (signed: boto3's sagemaker-runtime invoke_endpoint)",
    ]
