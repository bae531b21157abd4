"""A job's record through its life, with a real job process: Ctrl-C (SIGINT) while the
model works stops it — recorded Stopped, its workers ended, no half-written output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.state import State
from mlcicd.transform import TransformModel
from tests.helpers import IrisModel, as_foreground_job, wait_for
from tests.transform.conftest import rows
from tests.transform.test_local import HOLDING, write_csv

pytestmark = pytest.mark.integration  # a job process and its workers

RECORDED_JOB = """
import json, sys
from pathlib import Path
from mlcicd.state import State
from mlcicd.transform import TransformJobSpec, TransformModel, run_job
from mlcicd.transform.local import LocalTransformBackend
m = json.loads(sys.argv[1])
model = TransformModel(m["ref"], Path(m["file"]), m["sha"], Path(m["code"]), environment=m["env"])
spec = TransformJobSpec("stopped", model, m["input"], m["output"])
backend = LocalTransformBackend(Path(m["root"]))
run_job(State(Path(m["state"])), backend, spec, model_group="iris", model_version=1,
        log_path=str(backend.log_path(spec.name)))
"""


def test_ctrl_c_stops_the_job_and_records_it_stopped(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    (model.code_dir / "inference.py").write_text(textwrap.dedent(HOLDING))
    gate = tmp_path / "gate"
    gate.with_suffix(".hold").write_text("")
    for name, count in (("a", 20), ("b", 20), ("c", 51)):  # HOLDING holds c (51 rows)
        write_csv(tmp_path / "in" / f"{name}.csv", rows(iris, count))
    args = {
        "ref": model.ref,
        "file": str(model.model_file),
        "sha": model.model_sha256,
        "code": str(model.code_dir),
        "env": {"GATE": str(gate)},
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "root": str(tmp_path / "jobs"),
        "state": str(tmp_path / "state.db"),
    }
    job = subprocess.Popen(
        [sys.executable, "-c", RECORDED_JOB, json.dumps(args)],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
        preexec_fn=as_foreground_job,  # not SIGINT ignored, as under `pytest &`
    )
    try:
        wait_for("c's mini-batch held", gate.with_suffix(".reached").exists)
        # b's output is assembled while c's batch is already held: a Ctrl-C before that ends
        # would rightly leave b out (seen under load).
        wait_for("b's output", (tmp_path / "out" / "b.csv.out").exists)
        record = State(tmp_path / "state.db").get_transform_job("stopped")
        assert record.status == "InProgress" and record.pid == job.pid
        os.kill(job.pid, signal.SIGINT)  # the job process alone, as a terminal's Ctrl-C would
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()

    record = State(tmp_path / "state.db").get_transform_job("stopped")
    assert (record.status, record.failure_reason) == ("Stopped", "stopped (interrupted)")
    assert record.ended_at is not None and record.pid is None
    assert sorted(p.name for p in (tmp_path / "out").glob("*.out")) == ["a.csv.out", "b.csv.out"]
    assert _pids_in_session(job.pid) == []  # no worker left holding the model
    assert not list((tmp_path / "out").glob("*.mlcicd-tmp"))


def _pids_in_session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and procinfo.is_alive(int(entry.name), None):
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return found
