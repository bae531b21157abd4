"""The local processing backend: SageMaker's Processing contract as a subprocess, for real."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from mlcicd.errors import ProcessingError
from mlcicd.processing import (
    LocalProcessingBackend,
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingPaths,
)

pytestmark = pytest.mark.integration

# A script written for SageMaker: /opt/ml unless SAGEMAKER_BASE_DIR says where it is.
SCRIPT = """
import json, os, sys
from pathlib import Path
base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
config = json.loads((base / "config" / "processingjobconfig.json").read_text())
raw = base / "processing" / "input" / "raw"
seen = {
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items()},
    "inputs": sorted(p.name for p in raw.iterdir()),
    "job": config["ProcessingJobName"],
    "local_paths": [i["S3Input"]["LocalPath"] for i in config["ProcessingInputs"]],
}
out = base / "processing" / "output" / "report"
(out / "seen.json").write_text(json.dumps(seen))
if "--fail" in sys.argv:
    (base / "output" / "message").write_text("column x is text where numbers were")
    sys.exit(3)
"""


def _spec(tmp_path: Path, script: str = SCRIPT, **kwargs: object) -> ProcessingJobSpec:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "prepare.py").write_text(textwrap.dedent(script))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("a,b\n1,2\n")
    defaults: dict[str, object] = {
        "name": "prepare-1",
        "source_dir": source,
        "entry_point": "prepare.py",
        "python": Path(sys.executable),
        "inputs": (ProcessingInput("raw", data),),
        "outputs": ("report",),
        "arguments": ("--test-size", "0.2"),
        "environment": {"STEP": "prepare"},
    }
    return ProcessingJobSpec(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_a_job_sees_sagemaker_s_layout_arguments_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCICD_TOKEN", "secret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key")
    result = LocalProcessingBackend(tmp_path / "jobs").run(_spec(tmp_path))
    assert result.status == "Completed", result.failure_reason
    output = result.outputs["report"]
    seen = json.loads((output.directory / "seen.json").read_text())
    paths = ProcessingPaths(tmp_path / "jobs" / "prepare-1")
    assert seen["argv"] == ["--test-size", "0.2"]
    assert seen["inputs"] == ["rows.csv"] and seen["job"] == "prepare-1"
    assert seen["local_paths"] == [str(paths.code), str(paths.input("raw"))]
    assert seen["env"]["STEP"] == "prepare"
    assert seen["env"]["SAGEMAKER_BASE_DIR"] == str(paths.base)
    # The child's environment is child_environment's: no service token, no AWS credentials.
    assert "MLCICD_TOKEN" not in seen["env"] and "AWS_SECRET_ACCESS_KEY" not in seen["env"]
    with tarfile.open(output.archive) as tar:
        assert tar.getnames() == ["seen.json"]


def test_a_failed_job_s_reason_is_its_exit_message(tmp_path: Path) -> None:
    result = LocalProcessingBackend(tmp_path / "jobs").run(_spec(tmp_path, arguments=("--fail",)))
    assert result.status == "Failed" and result.exit_code == 3 and result.outputs == {}
    assert result.exit_message == "column x is text where numbers were"
    assert result.failure_reason == (
        "AlgorithmError: column x is text where numbers were (exit code 3)"
    )


def test_a_job_past_its_max_runtime_is_stopped(tmp_path: Path) -> None:
    script = "import time\nprint('working', flush=True)\ntime.sleep(60)\n"
    backend = LocalProcessingBackend(tmp_path / "jobs", stop_grace_seconds=0.5)
    result = backend.run(_spec(tmp_path, script=script, max_runtime_seconds=1))
    assert result.status == "Stopped"
    assert result.failure_reason is not None and "MaxRuntimeExceeded" in result.failure_reason


def test_an_output_with_a_link_out_of_it_fails_the_job(tmp_path: Path) -> None:
    script = """
    import os
    from pathlib import Path
    out = Path(os.environ["SAGEMAKER_BASE_DIR"]) / "processing" / "output" / "report"
    (out / "passwd").symlink_to("/etc/passwd")
    """
    result = LocalProcessingBackend(tmp_path / "jobs").run(_spec(tmp_path, script=script))
    assert result.status == "Failed" and result.outputs == {}
    assert result.failure_reason is not None and "links are not allowed" in result.failure_reason


def test_a_missing_input_or_a_reused_name_fails_before_anything_runs(tmp_path: Path) -> None:
    backend = LocalProcessingBackend(tmp_path / "jobs")
    with pytest.raises(ProcessingError, match="input 'raw'"):
        backend.run(_spec(tmp_path, inputs=(ProcessingInput("raw", tmp_path / "nope"),)))
    assert not (tmp_path / "jobs" / "prepare-1").exists()
    backend.run(_spec(tmp_path))
    with pytest.raises(ProcessingError, match="already exists"):
        backend.run(_spec(tmp_path))


def test_a_spec_refuses_bad_names() -> None:
    for kwargs in ({"name": "a_b"}, {"outputs": ("a.b",)}, {"entry_point": "../x.py"}):
        with pytest.raises(ProcessingError):
            ProcessingJobSpec(
                **{  # type: ignore[arg-type]
                    "name": "ok",
                    "source_dir": Path(os.curdir),
                    "entry_point": "p.py",
                    "python": Path(sys.executable),
                    **kwargs,
                }
            )
    with pytest.raises(ProcessingError, match="the script's own"):
        ProcessingJobSpec(
            name="ok",
            source_dir=Path(os.curdir),
            entry_point="p.py",
            python=Path(sys.executable),
            inputs=(ProcessingInput("code", Path(os.curdir)),),
        )
