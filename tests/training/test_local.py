"""The local backend, end to end: real scripts, real processes, a real job directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlcicd.archive import safe_extract
from mlcicd.errors import TrainingError
from mlcicd.fsutil import sha256_file
from mlcicd.training import Channel, LocalTrainingBackend, MetricDefinition
from tests.training.conftest import DUMP_SCRIPT, SAVE_MODEL, make_spec, process_gone, write_source

pytestmark = pytest.mark.integration

HPS = {
    "epochs": 3,
    "learning-rate": 0.1,
    "optimizer": "adam",
    "use_bn": True,
    "layers": [1, 2],
    "extra": {"b": 2, "a": "x"},
    "C": 1.5,
}


def test_script_sees_the_sagemaker_environment_and_arguments(
    backend: LocalTrainingBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SM_STALE", "from the parent")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("1\n")
    (data / "sub" / "b.csv").write_text("2\n")
    single = tmp_path / "extra.txt"
    single.write_text("x")
    spec = make_spec(
        write_source(tmp_path, DUMP_SCRIPT),
        hyperparameters=HPS,
        channels=[Channel("train", data), Channel("extra", single)],
        environment={"MY_SETTING": "on"},
    )
    result = backend.run(spec)
    assert result.status == "Completed", result.failure_reason
    assert result.model_artifact is not None
    safe_extract(result.model_artifact, tmp_path / "model", expected_sha256=result.model_sha256)
    seen = json.loads((tmp_path / "model" / "seen.json").read_text())
    env: dict[str, str] = seen["env"]
    job = backend.job_dir("job-1")
    assert result.job_dir == job

    assert seen["argv"] == [
        "train.py",
        "-C",
        "1.5",
        "--epochs",
        "3",
        "--extra",
        "a=x,b=2",
        "--layers",
        "[1, 2]",
        "--learning-rate",
        "0.1",
        "--optimizer",
        "adam",
        "--use_bn",
        "True",
    ]
    assert Path(seen["cwd"]).resolve() == (job / "code").resolve()
    assert seen["channels"] == {"train": ["a.csv", "sub/b.csv"], "extra": ["extra.txt"]}

    expected = {
        "SM_MODEL_DIR": str(job / "model"),
        "SM_CHANNELS": '["extra","train"]',
        "SM_CHANNEL_TRAIN": str(job / "input" / "data" / "train"),
        "SM_CHANNEL_EXTRA": str(job / "input" / "data" / "extra"),
        "SM_OUTPUT_DIR": str(job / "output"),
        "SM_OUTPUT_DATA_DIR": str(job / "output" / "data"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(job / "output" / "intermediate"),
        "SM_INPUT_DIR": str(job / "input"),
        "SM_INPUT_CONFIG_DIR": str(job / "input" / "config"),
        "SM_HP_EPOCHS": "3",
        "SM_HP_LEARNING-RATE": "0.1",
        "SM_HP_LEARNING_RATE": "0.1",
        "SM_HP_OPTIMIZER": "adam",
        "SM_HP_USE_BN": "true",
        "SM_HP_LAYERS": "[1,2]",
        "SM_HP_EXTRA": '{"a":"x","b":2}',
        "SM_HP_C": "1.5",
        "SM_NUM_CPUS": str(os.cpu_count()),
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOST_COUNT": "1",
        "SM_CURRENT_INSTANCE_TYPE": "local",
        "SM_MODULE_NAME": "train",
        "SM_MODULE_DIR": str(job / "code"),
        "SM_USER_ENTRY_POINT": "train.py",
        "SM_LOG_LEVEL": "20",
        "SM_FRAMEWORK_MODULE": "",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_IS_HETERO": "false",
        "SAGEMAKER_PROGRAM": "train.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": str(job / "code"),
        "TRAINING_JOB_NAME": "job-1",
        "PYTHONUNBUFFERED": "1",
        "MY_SETTING": "on",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert json.loads(env["SM_HPS"]) == HPS
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"][1:]
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == json.loads(
        (job / "input" / "config" / "inputdataconfig.json").read_text()
    )
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == HPS
    assert training_env["job_name"] == "job-1"
    assert training_env["channel_input_dirs"]["train"] == expected["SM_CHANNEL_TRAIN"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(job / "code")
    assert "SM_STALE" not in env


def test_config_files_match_what_sagemaker_writes(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1\n")
    spec = make_spec(
        write_source(tmp_path, SAVE_MODEL),
        hyperparameters={"epochs": 3, "optimizer": "adam", "use_bn": True, "layers": [1, 2]},
        channels=[Channel("train", data)],
        instance_type="ml.m5.large",
    )
    result = backend.run(spec)
    assert result.status == "Completed", result.failure_reason
    config = result.job_dir / "input" / "config"
    code = str(result.job_dir / "code")
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert hyperparameters == {
        "epochs": "3",
        "optimizer": '"adam"',
        "use_bn": "true",
        "layers": "[1, 2]",
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": json.dumps(code),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": '"job-1"',
    }
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1"
    assert resources["hosts"] == ["algo-1"]
    assert resources["network_interface_name"] == "eth0"
    assert resources["current_instance_type"] == "ml.m5.large"
    assert json.loads((config / "inputdataconfig.json").read_text()) == {
        "train": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    }
    for directory in ("model", "output/data", "output/intermediate", "checkpoints", "code"):
        assert (result.job_dir / directory).is_dir(), directory
    description = json.loads((result.job_dir / "description.json").read_text())
    assert description["HyperParameters"] == hyperparameters
    assert description["ResourceConfig"]["InstanceType"] == "ml.m5.large"


def test_channel_files_are_hard_linked(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1\n")
    result = backend.run(
        make_spec(write_source(tmp_path, SAVE_MODEL), channels=[Channel("train", data)])
    )
    linked = result.job_dir / "input" / "data" / "train" / "rows.csv"
    assert linked.read_text() == "1\n"
    assert os.stat(linked).st_ino == os.stat(data / "rows.csv").st_ino


METRICS_SCRIPT = """
import json, os
for line in ["epoch 1 loss=0.9 acc=0.5", "epoch 2 loss=0.5 acc=0.7", "loss=nan", "loss=oops"]:
    print(line, flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("w")
"""
DEFINITIONS = [MetricDefinition("loss", r"loss=(\S+)"), MetricDefinition("acc", r"acc=([0-9.]+)")]


def test_metrics_from_the_log(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    lines: list[str] = []
    descriptions: list[dict[str, str]] = []

    def on_log(line: str) -> None:
        lines.append(line)
        descriptions.append(json.loads((backend.job_dir("job-1") / "description.json").read_text()))

    spec = make_spec(write_source(tmp_path, METRICS_SCRIPT), metric_definitions=DEFINITIONS)
    result = backend.run(spec, on_log=on_log)
    assert result.status == "Completed", result.failure_reason
    assert lines == [
        "epoch 1 loss=0.9 acc=0.5",
        "epoch 2 loss=0.5 acc=0.7",
        "loss=nan",
        "loss=oops",
    ]
    assert result.log_path.read_text().splitlines() == lines
    assert descriptions[0]["TrainingJobStatus"] == "InProgress"
    assert descriptions[0]["SecondaryStatus"] == "Training"

    assert result.metrics == {"loss": 0.5, "acc": 0.7}  # the last match wins
    assert [(name, value) for name, value, _ in result.metric_series] == [
        ("loss", 0.9),
        ("acc", 0.5),
        ("loss", 0.5),
        ("acc", 0.7),
    ]
    stamps = [at for _, _, at in result.metric_series]
    assert stamps == sorted(stamps)
    assert result.started_at <= stamps[0] <= stamps[-1] <= result.ended_at
    description = json.loads((result.job_dir / "description.json").read_text())
    final = {m["MetricName"]: m["Value"] for m in description["FinalMetricDataList"]}
    assert final == {"loss": 0.5, "acc": 0.7}
    assert description["AlgorithmSpecification"]["MetricDefinitions"][0] == {
        "Name": "loss",
        "Regex": r"loss=(\S+)",
    }


def test_metrics_file_is_authoritative_for_its_names(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    script = (
        METRICS_SCRIPT
        + """
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
    json.dump({"acc": 0.9, "f1": 1}, f)
"""
    )
    spec = make_spec(write_source(tmp_path, script), metric_definitions=DEFINITIONS)
    result = backend.run(spec)
    assert result.status == "Completed", result.failure_reason
    assert result.metrics == {"loss": 0.5, "acc": 0.9, "f1": 1.0}
    assert ("acc", 0.9) not in [(name, value) for name, value, _ in result.metric_series]


def test_malformed_metrics_file_fails_the_job(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    script = (
        SAVE_MODEL
        + """
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
    f.write('{"acc": "high"}')
"""
    )
    result = backend.run(make_spec(write_source(tmp_path, script)))
    assert result.status == "Failed"
    assert result.failure_reason is not None
    assert "metrics.json" in result.failure_reason and "'acc'" in result.failure_reason
    assert result.model_artifact is None


def test_model_is_packed_with_its_digest(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    script = """
import os
model = os.environ["SM_MODEL_DIR"]
os.makedirs(os.path.join(model, "sub"))
open(os.path.join(model, "weights.bin"), "wb").write(bytes(range(256)))
open(os.path.join(model, "sub", "config.json"), "w").write("{}")
"""
    result = backend.run(make_spec(write_source(tmp_path, script)))
    assert (result.status, result.secondary_status, result.exit_code) == (
        "Completed",
        "Completed",
        0,
    )
    assert result.failure_reason is None
    assert result.model_artifact == result.job_dir / "output" / "model.tar.gz"
    assert result.model_sha256 == sha256_file(result.model_artifact)
    out = tmp_path / "extracted"
    safe_extract(result.model_artifact, out, expected_sha256=result.model_sha256)
    assert (out / "weights.bin").read_bytes() == bytes(range(256))
    assert (out / "sub" / "config.json").read_text() == "{}"
    assert (result.job_dir / "output" / "success").exists()
    description = json.loads((result.job_dir / "description.json").read_text())
    assert description["TrainingJobStatus"] == "Completed"
    assert description["ModelArtifacts"] == {"S3ModelArtifacts": str(result.model_artifact)}
    assert description["LocalJob"]["ModelSha256"] == result.model_sha256
    assert [t["Status"] for t in description["SecondaryStatusTransitions"]] == [
        "Starting",
        "Training",
        "Uploading",
        "Completed",
    ]


def test_failure_file_is_the_failure_reason(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    script = (
        SAVE_MODEL
        + """
import sys
open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("bad data: no rows\\n")
sys.exit(3)
"""
    )
    result = backend.run(make_spec(write_source(tmp_path, script)))
    assert (result.status, result.secondary_status, result.exit_code) == ("Failed", "Failed", 3)
    assert result.failure_reason == "bad data: no rows"
    assert result.model_artifact is None and result.model_sha256 is None
    assert not (result.job_dir / "output" / "model.tar.gz").exists()
    description = json.loads((result.job_dir / "description.json").read_text())
    assert description["FailureReason"] == "bad data: no rows"
    assert "ModelArtifacts" not in description


def test_an_uncaught_exception_fails_with_the_log_tail(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    script = """
for i in range(30):
    print(f"line {i}")
raise ValueError("boom 42")
"""
    result = backend.run(make_spec(write_source(tmp_path, script)))
    assert (result.status, result.exit_code) == ("Failed", 1)
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("AlgorithmError:")
    assert "exit code 1" in result.failure_reason
    assert "ValueError: boom 42" in result.failure_reason
    assert "line 29" in result.failure_reason and "line 5\n" not in result.failure_reason


def test_an_empty_model_dir_fails_the_job(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    result = backend.run(make_spec(write_source(tmp_path, "print('trained, but saved nothing')")))
    assert (result.status, result.exit_code) == ("Failed", 0)
    assert result.failure_reason is not None and "SM_MODEL_DIR" in result.failure_reason
    assert result.model_artifact is None


# The script and its child both ignore SIGTERM and never end by themselves: only the
# SIGKILL after the grace ends them, so the job returning at all shows it was stopped.
STUBBORN_SCRIPT = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('child up', flush=True); time.sleep(3600)"])
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(3600)
"""


def test_max_runtime_stops_the_whole_process_group(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    spec = make_spec(write_source(tmp_path, STUBBORN_SCRIPT), max_runtime_seconds=1)
    result = backend.run(spec)  # returns only once both are killed (pytest-timeout: a hang)
    assert (result.status, result.secondary_status) == ("Stopped", "MaxRuntimeExceeded")
    assert result.failure_reason is not None and "max_runtime_seconds=1" in result.failure_reason
    assert result.exit_code == -9
    assert result.model_artifact is None
    script_pid, child_pid = map(
        int, (result.job_dir / "output" / "data" / "pids").read_text().split()
    )
    assert process_gone(script_pid) and process_gone(child_pid)
    assert "child up" in result.log_path.read_text()
    description = json.loads((result.job_dir / "description.json").read_text())
    assert (description["TrainingJobStatus"], description["SecondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )


def test_a_child_left_behind_is_stopped_with_the_job(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    script = (
        SAVE_MODEL
        + """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "pid"), "w").write(str(child.pid))
"""
    )
    result = backend.run(make_spec(write_source(tmp_path, script)))
    assert result.status == "Completed", result.failure_reason
    assert process_gone(int((result.job_dir / "output" / "data" / "pid").read_text()))


def test_ctrl_c_stops_the_job_and_propagates(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    script = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
print("ready", flush=True)
time.sleep(60)
"""

    def on_log(line: str) -> None:
        if line == "ready":
            raise KeyboardInterrupt  # what Ctrl-C raises in the waiting thread

    with pytest.raises(KeyboardInterrupt):
        backend.run(make_spec(write_source(tmp_path, script)), on_log=on_log)
    job = backend.job_dir("job-1")
    pids = map(int, (job / "output" / "data" / "pids").read_text().split())
    assert all(process_gone(pid) for pid in pids)
    description = json.loads((job / "description.json").read_text())
    assert (description["TrainingJobStatus"], description["SecondaryStatus"]) == (
        "Stopped",
        "Interrupted",
    )
    assert "interrupted" in description["FailureReason"]
    assert description["TrainingEndTime"] is not None


def test_missing_entry_point_fails_before_anything_runs(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    source = write_source(tmp_path, SAVE_MODEL, name="other.py")
    with pytest.raises(TrainingError) as info:
        backend.run(make_spec(source))
    assert "'train.py'" in str(info.value)
    assert str((source / "train.py").absolute()) in str(info.value)
    assert not backend.job_dir("job-1").exists()


def test_missing_python_or_channel_fails_before_anything_runs(
    backend: LocalTrainingBackend, tmp_path: Path
) -> None:
    source = write_source(tmp_path, SAVE_MODEL)
    with pytest.raises(TrainingError, match="python interpreter"):
        backend.run(make_spec(source, python=tmp_path / "nope"))
    with pytest.raises(TrainingError, match="channel 'train'"):
        backend.run(make_spec(source, channels=[Channel("train", tmp_path / "no-data")]))
    assert not backend.job_dir("job-1").exists()


def test_job_names_are_unique(backend: LocalTrainingBackend, tmp_path: Path) -> None:
    source = write_source(tmp_path, SAVE_MODEL)
    first = backend.run(make_spec(source))
    assert first.status == "Completed"
    before = (first.job_dir / "description.json").read_bytes()
    with pytest.raises(TrainingError, match="already exists"):
        backend.run(make_spec(source))
    assert (first.job_dir / "description.json").read_bytes() == before


def test_python_found_on_path_and_relative_jobs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    backend = LocalTrainingBackend(Path("jobs"))
    source = write_source(tmp_path, DUMP_SCRIPT)
    result = backend.run(make_spec(source, python=Path(Path(sys.executable).name)))
    assert result.status == "Completed", result.failure_reason
    assert result.job_dir == tmp_path / "jobs" / "job-1"
