"""Scaffolding every test package shares: one of each, so that a fix reaches every test.

- ``train_iris``: a small real model, saved and packed as an endpoint serves it (the
  session-scoped ``iris`` and ``flipped`` fixtures in tests/conftest.py train it once).
- ``mlcicd``: the CLI in-process, as a user types it; ``as_json`` its JSON output;
  ``set_yaml`` edits a project's mlcicd.yaml; ``drop_staging`` removes its staging stage.
- ``StageRecorder``: a pipeline reporter that keeps what it was told, for asserting on.
- ``wait_for``: a wait on a condition; its deadline only guards against hanging, so a slow
  machine makes a test slower, never red.
- ``register_model`` / ``record_endpoint``: a registry and an endpoint record, without
  training or serving anything.
- ``delete_endpoints`` / ``kill_tree``: the teardown of the endpoints a test started.
- ``free_port``: a port for a server that a test starts on a port it names.
- ``as_foreground_job``: for a process a test stops with Ctrl-C (SIGINT), as a terminal's
  foreground job is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from click.testing import CliRunner, Result
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlcicd.archive import pack_dir
from mlcicd.cli import cli

if TYPE_CHECKING:
    from mlcicd.endpoints.local import LocalEndpointBackend
    from mlcicd.project import Project
    from mlcicd.state import State

WAIT = 240.0  # generous: a first build installs the environment; reached only when hanging


@dataclass(frozen=True)
class IrisModel:
    model: LogisticRegression
    X: np.ndarray
    model_dir: Path
    archive: Path
    sha256: str


def train_iris(directory: Path, *, C: float = 1.0, flip: bool = False) -> IrisModel:
    """Train on iris, save model.joblib into ``directory/model`` and pack it.

    ``flip`` reverses the labels, so the model predicts differently from the default one.
    """
    X, y = load_iris(return_X_y=True)
    if flip:
        y = 2 - y
    model = LogisticRegression(C=C, max_iter=500).fit(X, y)
    model_dir = directory / "model"
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.joblib")
    archive = directory / "model.tar.gz"
    sha = pack_dir(model_dir, archive)
    return IrisModel(model, X, model_dir, archive, sha)


def register_model(state: State, sha: str, version: int) -> None:
    """An Approved iris-classifier model package (the ``version``-th), of commit ``sha``."""
    state.register_model_package(
        group_name="iris-classifier",
        status="Approved",
        model_uri=f"file:///m/{version}",
        model_sha256=f"{version}" * 64,
        metrics={},
        training_job=None,
        build_digest=None,
        commit_sha=sha,
        run_id=None,
        lineage={"commit": {"commit": sha, "tree": "0" * 40}},
    )


def record_endpoint(state: State, name: str, version: int) -> None:
    """The record of local endpoint ``name`` InService with iris-classifier/``version``."""
    from mlcicd.state import EndpointRecord

    now = time.time()
    state.upsert_endpoint(
        EndpointRecord(
            name=name,
            backend="local",
            status="InService",
            url=None,
            port=None,
            pid=None,
            config_name=None,
            model_group="iris-classifier",
            model_version=version,
            model_sha256=f"{version}" * 64,
            failure_reason=None,
            created_at=now,
            updated_at=now,
        )
    )


def mlcicd(project: Path | Project | None, *args: str, catch_exceptions: bool = False) -> Result:
    """Run ``mlcicd -C PROJECT ARGS…`` in-process (no ``-C`` when ``project`` is None).

    Unexpected exceptions propagate by default, so a bug shows its traceback in the test.
    """
    if project is None:
        where: list[str] = []
    else:
        where = ["-C", str(project if isinstance(project, Path) else project.root)]
    return CliRunner().invoke(cli, [*where, *args], catch_exceptions=catch_exceptions)


def as_json(result: Result) -> Any:
    """The JSON a successful command printed (its output shown when it failed)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def set_yaml(project: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) by ``new`` in the project's mlcicd.yaml."""
    path = project / "mlcicd.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def drop_staging(project: Path) -> None:
    """Remove the ``staging:`` section of the project's mlcicd.yaml: for tests whose point is
    elsewhere, a run without a staging endpoint is seconds shorter."""
    path = project / "mlcicd.yaml"
    text, count = re.subn(r"(?m)^staging:.*\n(?:(?:[ \t].*|#.*|)\n)*", "", path.read_text())
    assert count == 1, "mlcicd.yaml has no staging: section"
    path.write_text(text)


class StageRecorder:
    """A :class:`~mlcicd.pipeline.Reporter` keeping ``(what, stage)``: "started", "log", or
    the status a stage finished with."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, stage: str) -> None:
        self.events.append(("started", stage))

    def log(self, stage: str, line: str) -> None:
        self.events.append(("log", stage))

    def stage_finished(self, stage: str, status: str, elapsed: float, message: str) -> None:
        self.events.append((status, stage))

    @property
    def started(self) -> list[str]:
        return [stage for what, stage in self.events if what == "started"]


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = WAIT, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that.

    ``timeout`` is a deadline against hanging, not a measurement: when it passes the test
    fails naming ``what`` it waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def kill_tree(pids: Iterable[int]) -> None:
    """Best-effort SIGKILL of processes a test started (cleanup on failure)."""
    for pid in pids:
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def delete_endpoints(backend: LocalEndpointBackend) -> None:
    """Delete every endpoint under ``backend`` (they outlive the test by design).

    An endpoint that cannot be deleted in order has its supervisor and workers killed, so a
    failed test leaves no process behind.
    """
    from mlcicd.endpoints.local import _read

    if not backend.root.is_dir():
        return
    for endpoint in backend.root.iterdir():
        if not endpoint.is_dir():
            continue
        try:
            backend.delete(endpoint.name)
        except Exception:
            status = _read(endpoint / "status.json") or {}
            kill_tree([status.get("pid", 0), *(w["pid"] for w in status.get("workers", []))])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now, for a server a test starts on a port it names.

    Not ``bind(0)``'s answer: that port is in the ephemeral range, where any other process's
    ``bind(0)`` or outgoing connection may take it between this pick and the server's bind
    (the other xdist worker's servers and clients, other test sessions on the machine). Below
    the range only another explicit pick can, and the picks are random.
    """
    for _ in range(100):
        port = random.randrange(10000, _ephemeral_low())
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port below the ephemeral range")


def as_foreground_job() -> None:
    """``preexec_fn`` of a process that a test stops with SIGINT, its Ctrl-C: SIGINT at its
    default, as a terminal starts its foreground job.

    A test runner started in the background of a non-interactive shell (``pytest … &`` in a
    script: POSIX has such a job ignore SIGINT and SIGQUIT) passes SIG_IGN on to every process
    it starts, through xdist's workers, and Python keeps an inherited SIG_IGN rather than
    raising KeyboardInterrupt (as a shell's background job should): the process under test
    would never see the Ctrl-C and run on to its end. (A handler of the runner's own would
    not leak: exec resets a caught signal to its default, never an ignored one.)"""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
